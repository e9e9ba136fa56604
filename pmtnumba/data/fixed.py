"""Fixed splits: a data set that comes with its own train / validation / test parts.

Graph-encoder benchmarks (LightGCN's ``train.txt``/``test.txt``, RecBole's ``benchmark_filename``)
and users with their own protocol bring the split with the data. Three ways to give one:

- separate files, ``load_dataset(train, valid=..., test=...)`` (``pmtnumba fit --train F --valid F
  --test F``); each has the header format of a user's CSV/TSV (:mod:`pmtnumba.data.io`); the
  validation file is optional;
- a ``split`` column in one file, with the values ``train``, ``valid`` (or ``validation``/``val``)
  and ``test``;
- a shipped ``.npz`` with a ``split`` key (int8 per interaction: 0 train, 1 valid, 2 test), e.g.
  ``gowalla``.

The split is kept as ``Dataset.extra["split"]``; :func:`pmtnumba.data.split.make_split` uses it
instead of the random 60/20/20 draw (and holds a validation part out of train where none is
given). Rules checked on loading, each failure a :class:`~pmtnumba.errors.DataError` naming the
file and line: every user and item of the validation and test parts occurs in the training part
(an id unseen in training has no trained embedding), and no (user, item) pair is in two parts.
Duplicates within one part collapse as for any file (:func:`~pmtnumba.data.io.remap_interactions`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pmtnumba.data.dataset import Dataset
from pmtnumba.data.io import ParsedTable, dataset_from_parsed, parse_table
from pmtnumba.data.split import TEST, TRAIN, VALID
from pmtnumba.errors import DataError

#: values accepted in a ``split`` column (compared lower-case)
SPLIT_VALUES = {"train": TRAIN, "valid": VALID, "validation": VALID, "val": VALID, "test": TEST}
PART_NAMES = {TRAIN: "train", VALID: "valid", TEST: "test"}


def _show(x) -> str:
    """A raw id as the user wrote it (a Python scalar's repr, not NumPy's)."""
    return repr(x.item() if hasattr(x, "item") else x)


def check_fixed_split(users, items, labels, where) -> None:
    """Raise :class:`DataError` if a valid/test entry has a user or item absent from train, or a
    (user, item) pair occurs in two parts. ``users``/``items``: ids (raw or contiguous), one per
    entry; ``where(t)`` names entry ``t`` for the message ("file: line N")."""
    labels = np.asarray(labels)
    _, u = np.unique(np.asarray(users), return_inverse=True)
    _, i = np.unique(np.asarray(items), return_inverse=True)
    u, i = u.reshape(-1).astype(np.int64), i.reshape(-1).astype(np.int64)
    tr = labels == TRAIN
    if not tr.any():
        raise DataError(f"{where(None)}: the fixed split has no training interactions")
    for kind, ids, raw in (("user", u, users), ("item", i, items)):
        seen = np.zeros(int(ids.max()) + 1, np.bool_)
        seen[ids[tr]] = True
        bad = np.flatnonzero(~tr & ~seen[ids])
        if bad.size:
            t = int(bad[0])
            raise DataError(f"{where(t)}: {kind} {_show(np.asarray(raw)[t])} ({PART_NAMES[int(labels[t])]} part) does not "
                            f"occur in the training part ({bad.size} such {PART_NAMES[int(labels[t])]} "
                            f"interaction(s); it would have no trained embedding)")
    key = u * (int(i.max()) + 1) + i
    order = np.lexsort((np.arange(key.size), key))  # by pair, then entry order
    ks, ls = key[order], labels[order]
    same = (ks[1:] == ks[:-1]) & (ls[1:] != ls[:-1])
    if same.any():
        j = int(np.flatnonzero(same)[0])
        first, second = int(order[j]), int(order[j + 1])
        raise DataError(f"{where(second)}: (user {_show(np.asarray(users)[second])}, item {_show(np.asarray(items)[second])}) is "
                        f"in the {PART_NAMES[int(labels[second])]} part and also in the "
                        f"{PART_NAMES[int(labels[first])]} part ({where(first)}); a pair may be in one part only")


def split_column_labels(t: ParsedTable, name: str | None = None) -> Dataset:
    """The :class:`Dataset` of a file with a ``split`` column (its values give the parts)."""
    values = t.split.str.lower().to_numpy(dtype=str)
    labels = np.full(values.shape[0], -1, np.int8)
    for v, lab in SPLIT_VALUES.items():
        labels[values == v] = lab
    bad = np.flatnonzero(labels < 0)
    if bad.size:
        k = int(bad[0])
        raise DataError(f"{t.path}: line {t.lines[k]}: split {t.split.iloc[k]!r} is not one of "
                        f"train, valid (validation, val), test")
    check_fixed_split(t.users, t.items, labels,
                      lambda k: str(t.path) if k is None else f"{t.path}: line {t.lines[k]}")
    return dataset_from_parsed(t, name, labels=labels)


def _common_ids(parts: list[np.ndarray]) -> list[np.ndarray]:
    """Raw ids of several files as one type: integers where every file has integers, else strings."""
    if all(p.dtype.kind in "iu" for p in parts):
        return parts
    return [p.astype(str) for p in parts]


def load_split_files(train, valid=None, test=None, name: str | None = None) -> Dataset:
    """One :class:`Dataset` from a training file and optional validation / test files, with the
    split in ``extra["split"]``; ids are remapped over the training file's users and items."""
    given = [(TRAIN, train), (VALID, valid), (TEST, test)]
    tables = [(lab, parse_table(Path(p))) for lab, p in given if p is not None]
    if test is None:
        raise DataError(f"{train}: a fixed split from files needs a test file (--test FILE)")
    has_r = [t.ratings is not None for _, t in tables]
    has_t = [t.times is not None for _, t in tables]
    for lab, t in tables:
        if t.split is not None:
            raise DataError(f"{t.path}: line 1: has a 'split' column, but the parts are given as separate files; "
                            f"use one or the other")
    users = np.concatenate(_common_ids([t.users for _, t in tables]))
    items = np.concatenate(_common_ids([t.items for _, t in tables]))
    labels = np.concatenate([np.full(t.users.shape[0], lab, np.int8) for lab, t in tables])
    file_of = np.concatenate([np.full(t.users.shape[0], k, np.int64) for k, (_, t) in enumerate(tables)])
    lines = np.concatenate([t.lines for _, t in tables])
    paths = [str(t.path) for _, t in tables]
    check_fixed_split(users, items, labels,
                      lambda k: paths[0] if k is None else f"{paths[file_of[k]]}: line {lines[k]}")
    merged = ParsedTable(
        path=tables[0][1].path, users=users, items=items,
        ratings=np.concatenate([t.ratings for _, t in tables]) if all(has_r) else None,
        times=np.concatenate([t.times for _, t in tables]) if all(has_t) else None,
        split=None, lines=lines,
    )
    ds = dataset_from_parsed(merged, name, labels=labels)
    ds.extra["split_files"] = np.array(paths)
    return ds


def check_npz_split(users: np.ndarray, items: np.ndarray, labels: np.ndarray, path) -> None:
    """The fixed-split rules for a ``.npz`` carrying a ``split`` key (contiguous ids, no lines)."""
    check_fixed_split(users, items, labels, lambda k: f"{path}: corrupt or invalid data set file" +
                      ("" if k is None else f" (interaction {k})"))
