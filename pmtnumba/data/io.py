"""Loading data sets: the shipped ``datasets/<name>.npz`` files and a user's own CSV/TSV.

Two entry points:

- :func:`load_dataset` -- a shipped name (``office``, ``epinion``, ...) or a path to a user's
  delimited text file (or an ``.npz`` in the shipped format);
- :func:`summary_table` -- a Table-1 style summary of shipped files.

The id remapping and de-duplication rule lives in one place, :func:`remap_interactions`, which
``datasets/build.py`` imports too, so the shipped files and a user's file follow the same rule:

- users and items get contiguous ids ``0..n-1`` in sorted order of their raw ids, over the
  ids that occur in the interactions (an id without interactions is not in the row space);
- duplicate (user, item) rows collapse to one: the LAST one in time order where there is a
  time column (ties: the later line wins), else the last one in file order -- its rating wins;
- the kept interactions are stored sorted by (user, item).

Every problem with an input file raises :class:`pmtnumba.errors.DataError` whose message names
the file and, where it applies, the 1-based line number.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from pmtnumba.data.dataset import Dataset
from pmtnumba.errors import DataError

SHIPPED = ("epinion", "office", "videogame", "ciao", "lastfm", "filmtrust", "grocery", "gowalla")

#: keys every .npz must carry, and the dtype kind each must have ("i" int, "f" float, "U" str)
_REQUIRED = ("name", "n_users", "n_items", "users", "items", "user_raw", "item_raw")
_LINK_KEYS = ("social", "also_viewed", "also_bought")

# header names accepted in a user's file (compared lower-case, with spaces/dashes as '_')
USER_COLUMNS = ("user", "user_id", "userid")
ITEM_COLUMNS = ("item", "item_id", "itemid", "artist", "artist_id", "artistid")
RATING_COLUMNS = ("rating",)
TIME_COLUMNS = ("time", "timestamp")
SPLIT_COLUMNS = ("split",)  # values train / valid (validation, val) / test: a fixed split

# canonical integer literals only, so "007" and "7" stay distinct ids (then all ids are strings)
_INT_RE = re.compile(r"^-?(0|[1-9]\d{0,17})$")


# ----------------------------------------------------------------------------------------------
# shared remap / de-dup logic
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Remapped:
    """Result of :func:`remap_interactions`.

    ``keep`` indexes the input rows that survive, in output order, so any per-row column can be
    carried along as ``column[keep]``.
    """

    users: np.ndarray  # int32 [M]
    items: np.ndarray  # int32 [M]
    user_raw: np.ndarray  # [n_users] sorted raw ids
    item_raw: np.ndarray  # [n_items] sorted raw ids
    keep: np.ndarray  # int64 [M] indices into the input rows
    ratings: np.ndarray | None  # float32 [M]
    times: np.ndarray | None  # int64 [M]
    n_duplicates: int  # input rows dropped as duplicates

    @property
    def n_users(self) -> int:
        return int(self.user_raw.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_raw.shape[0])


def remap_interactions(user_ids, item_ids, ratings=None, times=None) -> Remapped:
    """Contiguous ids over the interactions, one row per distinct (user, item) pair.

    Parameters
    ----------
    user_ids, item_ids : array-like [N]
        Raw ids (integers or strings), one per input row, in file order.
    ratings : array-like [N] or None
        Explicit ratings; the kept row's rating wins.
    times : array-like [N] or None
        Timestamps (int64). With times, the latest row of a duplicated pair is kept (ties broken by
        file order, later wins); without, the last row in file order is kept.

    Returns
    -------
    Remapped
        Interactions sorted by (user, item); raw ids sorted ascending (``user_raw[u]`` is the raw
        id of contiguous user ``u``).
    """
    user_ids = np.asarray(user_ids)
    item_ids = np.asarray(item_ids)
    n = user_ids.shape[0]
    if user_ids.ndim != 1 or item_ids.shape != (n,):
        raise ValueError("user_ids and item_ids must be 1-d arrays of the same length")
    user_raw, u_inv = np.unique(user_ids, return_inverse=True)
    item_raw, i_inv = np.unique(item_ids, return_inverse=True)
    u_inv = u_inv.reshape(-1).astype(np.int64)
    i_inv = i_inv.reshape(-1).astype(np.int64)
    if times is not None:
        times = np.asarray(times, dtype=np.int64)
        if times.shape != (n,):
            raise ValueError("times must have one entry per row")
        order = np.argsort(times, kind="stable")
    else:
        order = np.arange(n, dtype=np.int64)
    key = u_inv * max(1, item_raw.shape[0]) + i_inv
    # the last occurrence in `order` = the first occurrence in reversed order
    rev = order[::-1]
    _, first = np.unique(key[rev], return_index=True)  # sorted by key = by (user, item)
    keep = rev[first].astype(np.int64)
    out_r = None
    if ratings is not None:
        ratings = np.asarray(ratings)
        if ratings.shape != (n,):
            raise ValueError("ratings must have one entry per row")
        out_r = ratings[keep].astype(np.float32)
    return Remapped(
        users=u_inv[keep].astype(np.int32),
        items=i_inv[keep].astype(np.int32),
        user_raw=user_raw,
        item_raw=item_raw,
        keep=keep,
        ratings=out_r,
        times=None if times is None else times[keep],
        n_duplicates=int(n - keep.shape[0]),
    )


def lookup_ids(raw_sorted: np.ndarray, query) -> np.ndarray:
    """Contiguous id of each raw id in ``query`` (``raw_sorted`` ascending), -1 where absent."""
    query = np.asarray(query)
    if raw_sorted.shape[0] == 0:
        return np.full(query.shape, -1, dtype=np.int64)
    if raw_sorted.dtype.kind in "iu" and query.dtype.kind not in "iu":
        # string queries against integer raw ids: only exact integer strings can match
        try:
            query = query.astype(np.int64)
        except (TypeError, ValueError):
            return np.full(query.shape, -1, dtype=np.int64)
    elif raw_sorted.dtype.kind == "U" and query.dtype.kind != "U":
        query = query.astype(str)
    pos = np.searchsorted(raw_sorted, query)
    pos = np.minimum(pos, raw_sorted.shape[0] - 1)
    found = raw_sorted[pos] == query
    return np.where(found, pos, -1).astype(np.int64)


def clean_links(src, dst, n: int | None = None) -> np.ndarray:
    """int32 [L, 2] links from contiguous ids: drop -1 (unknown) ends, self-loops, duplicates.

    Kept directed as given, sorted by (src, dst).
    """
    src = np.asarray(src, dtype=np.int64).reshape(-1)
    dst = np.asarray(dst, dtype=np.int64).reshape(-1)
    ok = (src >= 0) & (dst >= 0) & (src != dst)
    if n is not None:
        ok &= (src < n) & (dst < n)
    src, dst = src[ok], dst[ok]
    if src.size == 0:
        return np.zeros((0, 2), dtype=np.int32)
    m = int(max(src.max(), dst.max())) + 1
    key = np.unique(src * m + dst)
    return np.stack([key // m, key % m], axis=1).astype(np.int32)


def majority_category(item_idx, category_raw, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """One category per item: its most frequent raw category (ties: the smallest raw id).

    ``item_idx`` holds contiguous item ids (-1 = not in the row space, ignored) and
    ``category_raw`` the raw category of each observation. Returns ``(item_category,
    category_raw_ids)``: int32 [n_items] contiguous category ids (-1 where unknown) and the raw
    category id of each contiguous one (sorted, only categories some item ends up with).
    """
    item_idx = np.asarray(item_idx, dtype=np.int64)
    cat = np.asarray(category_raw, dtype=np.int64)
    ok = (item_idx >= 0) & (item_idx < n_items) & (cat >= 0)
    item_idx, cat = item_idx[ok], cat[ok]
    result = np.full(n_items, -1, dtype=np.int64)
    if item_idx.size:
        cats, c_inv = np.unique(cat, return_inverse=True)
        c = cats.shape[0]
        pair, count = np.unique(item_idx * c + c_inv.reshape(-1), return_counts=True)
        it, ci = pair // c, pair % c
        # sort by item, then count descending, then category ascending; take the first per item
        order = np.lexsort((ci, -count, it))
        it, ci = it[order], ci[order]
        first = np.ones(it.shape[0], dtype=bool)
        first[1:] = it[1:] != it[:-1]
        result[it[first]] = cats[ci[first]]
    used = np.unique(result[result >= 0])
    contiguous = np.full(n_items, -1, dtype=np.int32)
    has = result >= 0
    contiguous[has] = np.searchsorted(used, result[has]).astype(np.int32)
    return contiguous, used.astype(np.int64)


# ----------------------------------------------------------------------------------------------
# shipped .npz files
# ----------------------------------------------------------------------------------------------


def _repo_datasets() -> Path:
    return Path(__file__).resolve().parents[2] / "datasets"


def data_dir(explicit=None, name: str | None = None) -> Path:
    """The folder holding the shipped ``<name>.npz`` files.

    ``explicit`` if given, else ``$PMTNUMBA_DATA``, else ``<repo>/datasets`` (found relative to
    this file), else ``./datasets``. With ``name``, the first of these that holds
    ``<name>.npz`` wins (an explicit folder is used alone); without, the first existing folder.
    Raises :class:`DataError` if none qualifies.
    """
    if explicit is not None:
        candidates = [Path(explicit)]
    else:
        candidates = []
        env = os.environ.get("PMTNUMBA_DATA")
        if env:
            candidates.append(Path(env))
        candidates += [_repo_datasets(), Path.cwd() / "datasets"]
    for c in candidates:
        if name is None:
            if c.is_dir():
                return c
        elif (c / f"{name}.npz").is_file():
            return c
    what = f"{name}.npz" if name else "a datasets folder"
    tried = ", ".join(str(c) for c in candidates)
    raise DataError(
        f"cannot find {what}; looked in: {tried} "
        "(pass data_dir=..., set PMTNUMBA_DATA, or rebuild with `python datasets/build.py`)"
    )


_data_dir = data_dir  # load_dataset's argument shadows the function name


def _check(cond: bool, path, msg: str) -> None:
    if not cond:
        raise DataError(f"{path}: corrupt or invalid data set file: {msg}")


def _check_links(arr: np.ndarray, n: int, key: str, path) -> None:
    _check(arr.dtype == np.int32, path, f"'{key}' must be int32, is {arr.dtype}")
    _check(arr.ndim == 2 and arr.shape[1] == 2, path, f"'{key}' must be [L, 2], is {arr.shape}")
    if arr.size:
        _check(int(arr.min()) >= 0 and int(arr.max()) < n, path, f"'{key}' has ids outside 0..{n - 1}")


def _read_npz(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: no such data set file")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if magic != b"PK\x03\x04":
        raise DataError(f"{path}: corrupt or unreadable .npz file (not a zip archive)")
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, zipfile.LargeZipFile) as e:
        raise DataError(f"{path}: corrupt or unreadable .npz file ({type(e).__name__}: {e})") from None


def dataset_from_arrays(arrays: dict, path, name: str | None = None) -> Dataset:
    """Validate the arrays of a shipped-format .npz and build a :class:`Dataset`."""
    for k in _REQUIRED:
        _check(k in arrays, path, f"missing key '{k}'")
    try:
        n_users = int(arrays["n_users"])
        n_items = int(arrays["n_items"])
    except (TypeError, ValueError):
        raise DataError(f"{path}: corrupt or invalid data set file: n_users/n_items are not integers") from None
    _check(n_users >= 0 and n_items >= 0, path, "negative n_users/n_items")
    users, items = arrays["users"], arrays["items"]
    for k, a in (("users", users), ("items", items)):
        _check(a.dtype == np.int32 and a.ndim == 1, path, f"'{k}' must be 1-d int32, is {a.dtype} {a.shape}")
    m = users.shape[0]
    _check(items.shape[0] == m, path, "'users' and 'items' differ in length")
    if m:
        _check(int(users.min()) >= 0 and int(users.max()) < n_users, path, "user ids out of range")
        _check(int(items.min()) >= 0 and int(items.max()) < n_items, path, "item ids out of range")
        key = users.astype(np.int64) * max(1, n_items) + items
        if not bool(np.all(key[1:] > key[:-1])):  # stored sorted: strictly increasing = no dupes
            _check(np.unique(key).shape[0] == m, path, "duplicate (user, item) pairs")
    for k, nn in (("user_raw", n_users), ("item_raw", n_items)):
        a = arrays[k]
        _check(a.ndim == 1 and a.shape[0] == nn, path, f"'{k}' must have {nn} entries, has {a.shape}")
        _check(a.dtype.kind in "iuU", path, f"'{k}' must hold integers or strings, is {a.dtype}")
    ratings = arrays.get("ratings")
    if ratings is not None:
        _check(ratings.dtype == np.float32 and ratings.shape == (m,), path, "'ratings' must be float32 [M]")
        _check(bool(np.all(np.isfinite(ratings))), path, "'ratings' holds NaN/Inf")
    links = {}
    for k in _LINK_KEYS:
        a = arrays.get(k)
        if a is not None:
            _check_links(a, n_users if k == "social" else n_items, k, path)
        links[k] = a
    cat = arrays.get("item_category")
    if cat is not None:
        _check(cat.dtype == np.int32 and cat.shape == (n_items,), path, "'item_category' must be int32 [n_items]")
        if cat.size:
            _check(int(cat.min()) >= -1, path, "'item_category' has ids below -1")
    times = arrays.get("times")
    if times is not None:
        _check(times.dtype.kind in "iu" and times.shape == (m,), path, "'times' must be integer [M]")
    split = arrays.get("split")
    if split is not None:
        _check(split.dtype.kind in "iu" and split.shape == (m,), path, "'split' must be integer [M]")
        if split.size:
            _check(int(split.min()) >= 0 and int(split.max()) <= 2, path,
                   "'split' labels must be 0 (train), 1 (valid) or 2 (test)")
            from pmtnumba.data.fixed import check_npz_split

            check_npz_split(users, items, split, path)
    known = set(_REQUIRED) | set(_LINK_KEYS) | {"ratings", "item_category"}
    extra = {k: v for k, v in arrays.items() if k not in known}
    stored_name = str(arrays["name"])
    return Dataset(
        name=name or stored_name,
        n_users=n_users,
        n_items=n_items,
        users=users,
        items=items,
        ratings=ratings,
        user_raw=arrays["user_raw"],
        item_raw=arrays["item_raw"],
        social=links["social"],
        item_category=cat,
        also_viewed=links["also_viewed"],
        also_bought=links["also_bought"],
        source=str(path),
        extra=extra,
    )


def dataset_to_arrays(ds: Dataset) -> dict:
    """The .npz arrays of a :class:`Dataset` (inverse of :func:`dataset_from_arrays`)."""
    out = {
        "name": np.array(ds.name),
        "n_users": np.int64(ds.n_users),
        "n_items": np.int64(ds.n_items),
        "users": np.asarray(ds.users, dtype=np.int32),
        "items": np.asarray(ds.items, dtype=np.int32),
        "user_raw": np.asarray(ds.user_raw),
        "item_raw": np.asarray(ds.item_raw),
    }
    for k in ("ratings", "social", "item_category", "also_viewed", "also_bought"):
        v = getattr(ds, k)
        if v is not None:
            out[k] = v
    for k, v in ds.extra.items():
        out.setdefault(k, np.asarray(v))
    return out


def save_npz(ds_or_arrays, path) -> None:
    """Write a data set in the shipped format, byte-reproducibly.

    The file is what ``np.savez_compressed`` writes (a deflated zip of ``<key>.npy`` members,
    loadable with ``allow_pickle=False``), except that every member carries a fixed timestamp so
    that rebuilding from the same raw files gives the same bytes.
    """
    arrays = ds_or_arrays if isinstance(ds_or_arrays, dict) else dataset_to_arrays(ds_or_arrays)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for k, v in arrays.items():
            a = np.asanyarray(v)
            if a.dtype.hasobject:
                raise ValueError(f"key '{k}' holds Python objects; the format forbids pickles")
            info = zipfile.ZipInfo(f"{k}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, a, allow_pickle=False)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------
# a user's own delimited file
# ----------------------------------------------------------------------------------------------


def _norm(col: str) -> str:
    return re.sub(r"[\s\-]+", "_", col.strip().strip('"').strip("'").lower())


def _sniff_delimiter(header: str, second: str | None) -> str:
    """Tab, comma, semicolon, or runs of whitespace (returned as the regex ``\\s+``).

    The first of tab, comma, semicolon that occurs in the header as often as in the next line
    wins; else the first that occurs in the header; else whitespace.
    """
    seps = ("\t", ",", ";")
    for d in seps:
        if header.count(d) and (second is None or second.count(d) == header.count(d)):
            return d
    for d in seps:
        if d in header:
            return d
    return r"\s+"


def _find_column(names: list[str], accepted: Iterable[str]) -> int | None:
    for a in accepted:
        if a in names:
            return names.index(a)
    return None


def _parse_times(col, path, lines) -> np.ndarray:
    """Unix seconds from numbers (all lines) or dates (all lines); DataError naming a bad line."""
    import pandas as pd

    num = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    is_num = np.isfinite(num)
    if bool(is_num.all()):
        return np.round(num).astype(np.int64)
    # not all numeric: dates ("2014-07-22", ISO date-times) -> unix seconds
    try:
        dt = pd.to_datetime(col, errors="coerce", utc=True, format="mixed")
    except (TypeError, ValueError):
        dt = pd.to_datetime(col, errors="coerce", utc=True)
    is_date = ~dt.isna().to_numpy()
    bad = ~is_num & ~is_date
    if bool(bad.any()):
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: line {lines[i]}: time {col.iloc[i]!r} is neither a number nor a date")
    if bool(is_num.any()):
        i = int(np.flatnonzero(is_num)[0])
        raise DataError(f"{path}: line {lines[i]}: time {col.iloc[i]!r} is a number but other lines hold dates")
    secs = (dt - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta(seconds=1)
    return secs.to_numpy(dtype=np.int64)


def _raw_ids(col) -> np.ndarray:
    """int64 ids where every value is an integer literal, else strings."""
    values = col.to_numpy(dtype=str)
    if all(_INT_RE.match(v) for v in np.unique(values)):
        return values.astype(np.int64)
    return values.astype(str)


def _read_table(path: Path):
    """(header names, DataFrame of strings, delimiter, file line of each row)."""
    import pandas as pd

    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    try:
        with open(path, "r", encoding="utf-8-sig", newline="") as fh:
            first = fh.readline()
            while first and not first.strip():
                first = fh.readline()
            second = fh.readline()
            while second and not second.strip():
                second = fh.readline()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if not first.strip():
        raise DataError(f"{path}: empty file (expected a header line with user and item columns)")
    sep = _sniff_delimiter(first.rstrip("\r\n"), second.rstrip("\r\n") if second else None)
    try:
        df = pd.read_csv(
            path,
            sep=sep,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            encoding="utf-8-sig",
            engine="c",
            skipinitialspace=sep != r"\s+",
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file (expected a header line with user and item columns)") from None
    except pd.errors.ParserError as e:
        msg = str(e)
        mm = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", msg)
        if mm:
            raise DataError(
                f"{path}: line {mm.group(2)}: expected {mm.group(1)} fields, saw {mm.group(3)}"
            ) from None
        raise DataError(f"{path}: cannot parse as delimited text ({msg.strip()})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None
    # file line of each row: header is line (1 + leading blank lines); pandas keeps blank rows
    lead = 0
    with open(path, "r", encoding="utf-8-sig", newline="") as fh:
        for line in fh:
            if line.strip():
                break
            lead += 1
    lines = np.arange(df.shape[0], dtype=np.int64) + 2 + lead
    df = df.fillna("")
    return [_norm(str(c)) for c in df.columns], df, sep, lines


@dataclass
class ParsedTable:
    """The interaction columns of one delimited file, before id remapping (one entry per kept line)."""

    path: Path
    users: np.ndarray  # raw ids (int64 or str)
    items: np.ndarray
    ratings: np.ndarray | None  # float64
    times: np.ndarray | None  # int64 unix seconds
    split: object | None  # the 'split' column's strings (pandas Series) or None
    lines: np.ndarray  # int64 1-based file line of each entry


def parse_table(path: Path) -> ParsedTable:
    """Read a user's delimited file: header, user and item columns, optional rating, time and
    ``split`` columns; blank lines dropped. :class:`DataError` names the file and line of a problem."""
    import pandas as pd

    path = Path(path)
    names, df, sep, lines = _read_table(path)
    ucol = _find_column(names, USER_COLUMNS)
    icol = _find_column(names, ITEM_COLUMNS)
    if ucol is None or icol is None:
        missing = "user" if ucol is None else "item"
        acc = USER_COLUMNS if ucol is None else ITEM_COLUMNS
        raise DataError(
            f"{path}: line 1: no {missing} column in the header {names} "
            f"(accepted names: {', '.join(acc)})"
        )
    rcol = _find_column(names, RATING_COLUMNS)
    tcol = _find_column(names, TIME_COLUMNS)
    scol = _find_column(names, SPLIT_COLUMNS)
    # blank lines: every field empty -> dropped
    blank = (df == "").all(axis=1).to_numpy()
    if blank.any():
        df = df.loc[~blank]
        lines = lines[~blank]
    if df.shape[0] == 0:
        raise DataError(f"{path}: no interactions (only a header line)")
    users_s = df.iloc[:, ucol].str.strip()
    items_s = df.iloc[:, icol].str.strip()
    for label, col in (("user", users_s), ("item", items_s)):
        empty = (col == "").to_numpy()
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise DataError(f"{path}: line {lines[i]}: missing {label} id")
    ratings = None
    if rcol is not None:
        rs = df.iloc[:, rcol].str.strip()
        num = pd.to_numeric(rs, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(num)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            if rs.iloc[i] == "":
                raise DataError(f"{path}: line {lines[i]}: missing rating")
            raise DataError(f"{path}: line {lines[i]}: rating {rs.iloc[i]!r} is not a finite number")
        ratings = num
    times = None
    if tcol is not None:
        times = _parse_times(df.iloc[:, tcol].str.strip(), path, lines)
    split = None if scol is None else df.iloc[:, scol].str.strip()
    return ParsedTable(path, _raw_ids(users_s), _raw_ids(items_s), ratings, times, split, lines)


def dataset_from_parsed(t: ParsedTable, name: str | None = None, labels=None) -> Dataset:
    """Remap one parsed table into a :class:`Dataset` (``labels``: a fixed split, int8 per entry,
    carried through the de-duplication into ``extra["split"]``)."""
    rm = remap_interactions(t.users, t.items, ratings=t.ratings, times=t.times)
    extra = {}
    if rm.times is not None:
        extra["times"] = rm.times
    extra["duplicates_dropped"] = np.int64(rm.n_duplicates)
    if labels is not None:
        extra["split"] = np.asarray(labels, dtype=np.int8)[rm.keep]
    return Dataset(
        name=name or t.path.stem,
        n_users=rm.n_users,
        n_items=rm.n_items,
        users=rm.users,
        items=rm.items,
        ratings=rm.ratings,
        user_raw=rm.user_raw,
        item_raw=rm.item_raw,
        source=str(t.path),
        extra=extra,
    )


def _load_text(path: Path, name: str | None = None) -> Dataset:
    t = parse_table(path)
    if t.split is not None:  # a split column: the file carries its own split
        from pmtnumba.data.fixed import split_column_labels

        return split_column_labels(t, name)
    return dataset_from_parsed(t, name)


def _load_social_file(path: Path, user_raw: np.ndarray, n_users: int) -> np.ndarray:
    """Two columns (truster, trustee) of raw user ids; an optional header line is skipped."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with open(path, "r", encoding="utf-8-sig", errors="replace") as fh:
        first = fh.readline()
        second = fh.readline()
    if not first.strip():
        raise DataError(f"{path}: empty file (expected two columns of user ids)")
    sep = _sniff_delimiter(first.rstrip("\r\n"), second.rstrip("\r\n") if second else None)
    try:
        df = pd.read_csv(path, sep=sep, dtype=str, header=None, keep_default_na=False,
                         skip_blank_lines=True, encoding="utf-8-sig", usecols=[0, 1])
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot parse two columns of user ids ({str(e).strip()})") from None
    a = df.iloc[:, 0].str.strip().to_numpy(dtype=str)
    b = df.iloc[:, 1].str.strip().to_numpy(dtype=str)
    if a.size and _norm(a[0]) in USER_COLUMNS + ("truster", "source", "src", "from", "user1", "u"):
        a, b = a[1:], b[1:]
    src = lookup_ids(user_raw, a)
    dst = lookup_ids(user_raw, b)
    return clean_links(src, dst, n_users)


def load_dataset(name_or_path, data_dir: str | os.PathLike | None = None, social=None, valid=None,
                 test=None) -> Dataset:
    """Load a shipped data set by name, or a user's own file by path.

    Parameters
    ----------
    name_or_path : str or Path
        One of :data:`SHIPPED` (loads ``<data_dir>/<name>.npz``), or a path to a ``.npz`` in the
        shipped format, or to a delimited text file with a header naming a user column
        (``user``/``user_id``/``userId``) and an item column (``item``/``item_id``/``itemId``/
        ``artist``), optionally ``rating`` and ``time``/``timestamp``. The delimiter (tab, comma,
        semicolon or whitespace) is sniffed from the header. Ids may be strings or integers.
    data_dir : path, optional
        Folder of the shipped files (see :func:`data_dir`).
    social : path, optional
        For a user's file: a side file of user-user links, two columns of raw user ids
        (truster, trustee); links to unknown users are dropped.
    valid, test : path, optional
        A fixed split from separate files: ``name_or_path`` is then the training file and these
        the validation / test files (same format; every user and item in them must occur in the
        training file, and no pair in two parts). See :mod:`pmtnumba.data.fixed`.

    Raises
    ------
    DataError
        Missing or malformed file; the message names the file (and the line, where it applies).
    """
    key = str(name_or_path)
    if valid is not None or test is not None:
        from pmtnumba.data.fixed import load_split_files

        ds = load_split_files(name_or_path, valid=valid, test=test)
    elif key in SHIPPED:  # a shipped name wins; pass "./office" for a file of that name
        folder = _data_dir(data_dir, name=key)
        ds = dataset_from_arrays(_read_npz(folder / f"{key}.npz"), folder / f"{key}.npz")
    else:
        path = Path(name_or_path)
        if not path.exists() and not any(sep in key for sep in ("/", os.sep)) and "." not in key:
            raise DataError(
                f"{key}: unknown data set (shipped: {', '.join(SHIPPED)}) and no such file"
            )
        if path.suffix.lower() == ".npz":
            ds = dataset_from_arrays(_read_npz(path), path, name=None)
        else:
            ds = _load_text(path)
    if social is not None:
        links = _load_social_file(Path(social), ds.user_raw, ds.n_users)
        ds = Dataset(**{**ds.__dict__, "social": links})
    return ds


# ----------------------------------------------------------------------------------------------
# summary
# ----------------------------------------------------------------------------------------------


def summarize(ds: Dataset) -> dict:
    """Table-1 style figures of one data set."""
    cat = ds.item_category
    return {
        "name": ds.name,
        "users": ds.n_users,
        "items": ds.n_items,
        "interactions": ds.n_interactions,
        "density": ds.density,
        "ratings": ds.ratings is not None,
        "social": None if ds.social is None else int(ds.social.shape[0]),
        "categories": None if cat is None else int(np.unique(cat[cat >= 0]).size),
        "items_with_category": None if cat is None else int((cat >= 0).sum()),
        "also_viewed": None if ds.also_viewed is None else int(ds.also_viewed.shape[0]),
        "also_bought": None if ds.also_bought is None else int(ds.also_bought.shape[0]),
        "fixed_split": split_counts(ds),
    }


def split_counts(ds: Dataset) -> str | None:
    """``"train N / valid N / test N"`` of a data set that carries its own split (parts present), else None."""
    lab = ds.extra.get("split") if ds.extra else None
    if lab is None:
        return None
    c = np.bincount(np.asarray(lab, dtype=np.int64), minlength=3)
    return " / ".join(f"{name} {int(c[k]):,}" for k, name in enumerate(("train", "valid", "test")) if c[k])


def summary_table(names=SHIPPED, data_dir=None) -> list[dict]:
    """One :func:`summarize` dict per data set (names or paths), computed from the files.

    Keys: name, users, items, interactions, density, ratings (bool), social, categories,
    items_with_category, also_viewed, also_bought (None where the relation is absent), fixed_split
    (the counts of a data set's own split, None for a data set split at random per seed).
    """
    return [summarize(load_dataset(n, data_dir=data_dir)) for n in names]
