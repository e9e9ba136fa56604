"""The run reader: every file of a run directory read in one place, and validated.

Each reader either returns well-formed contents or raises :class:`~pmtnumba.errors.RunFileError`
with one line naming the file and what is wrong with it: missing, empty, truncated or damaged,
garbage (not JSON / not an .npz archive), a pickled object array (never loaded), a missing key,
a value of the wrong type, an array of the wrong shape or dtype, non-finite numbers. Extra keys
are tolerated (newer versions add fields to ``config.json``).

A finished run has a manifest ``run.json`` (size and SHA-256 of each file, see
:mod:`.runio`); files read from such a run are checked against it, so a file replaced or cut
after the run finished is reported as such. Runs written before manifests existed are read
without that check.

Runs remember their data: ``config.json`` has ``data = {path, size, sha256}`` of the file the
run was trained on (an absolute path, so the run works from any directory).
:func:`load_run_split` refuses a data file that changed since (and says what changed) unless
``allow_changed_data``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import RunFileError
from . import runio

# ----------------------------------------------------------------------------------------------
# generic readers
# ----------------------------------------------------------------------------------------------


def _fail(path, what: str):
    raise RunFileError(f"{path}: {what}")


def _require_file(path: Path, hint: str = "") -> None:
    if not path.exists():
        _fail(path, "missing" + (f" ({hint})" if hint else ""))
    if not path.is_file():
        _fail(path, "not a regular file")


def read_json_file(path, hint: str = ""):
    """Parse a JSON file; one-line errors for a missing, empty, non-UTF-8 or malformed file."""
    path = Path(path)
    _require_file(path, hint)
    data = path.read_bytes()
    if not data.strip():
        _fail(path, "empty file (expected JSON)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        _fail(path, "not a UTF-8 text file (expected JSON)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        cut = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated")
        end = "; the file looks cut short" if cut else ""
        _fail(path, f"not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno}){end}")


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "an object",
               bool: "true/false", type(None): "null"}


def _is(value, types) -> bool:
    for t in types:
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if t is not int and t is not float and isinstance(value, t):
            return True
    return False


def _kind(value) -> str:
    return "true/false" if isinstance(value, bool) else _TYPE_NAMES.get(type(value), type(value).__name__)


def check_fields(path, obj, spec: dict, optional: dict | None = None):
    """``obj`` must be a JSON object with ``spec``'s keys of ``spec``'s types (a tuple of types);
    ``optional`` keys are checked when present. Other keys are tolerated."""
    if not isinstance(obj, dict):
        _fail(path, f"expected a JSON object, found {_kind(obj)}")
    for key, types in spec.items():
        if key not in obj:
            _fail(path, f"missing key {key!r}")
    for key, types in {**spec, **(optional or {})}.items():
        if key in obj and not _is(obj[key], types):
            want = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
            shown = json.dumps(obj[key])
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            _fail(path, f"key {key!r} should be {want}, is {_kind(obj[key])} ({shown})")
    return obj


def read_npz_file(path, spec: dict, where: str = "") -> dict:
    """Read an .npz archive; ``spec`` maps each required key to ``(dtype kinds, ndim)`` (kinds as
    in ``dtype.kind``: ``"f"``, ``"iu"``, ``"iuU"``...; ndim None = any). Extra keys are kept."""
    path = Path(path)
    _require_file(path, where)
    size = path.stat().st_size
    if size == 0:
        _fail(path, "empty file (0 bytes; expected an .npz archive)")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x93NUMPY"):
        _fail(path, "a single .npy array, not an .npz archive")
    if not magic.startswith(b"PK\x03\x04"):
        _fail(path, "not an .npz archive (garbage or another format)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object arrays" in str(exc).lower():
            _fail(path, "holds a Python object array (pickled data), which pmtnumba never writes; not loading it")
        _fail(path, f"damaged .npz archive ({exc})")
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError, zipfile.LargeZipFile) as exc:
        _fail(path, f"damaged or truncated .npz archive ({type(exc).__name__}: {exc})")
    for key, (kinds, ndim) in spec.items():
        if key not in arrays:
            have = ", ".join(sorted(arrays)) or "nothing"
            _fail(path, f"missing array {key!r} (has {have})")
        a = arrays[key]
        if a.dtype.kind not in kinds:
            _fail(path, f"array {key!r} has dtype {a.dtype}, expected {_kinds_text(kinds)}")
        if ndim is not None and a.ndim != ndim:
            _fail(path, f"array {key!r} has shape {a.shape}, expected {ndim} dimension(s)")
    return arrays


def _kinds_text(kinds: str) -> str:
    names = {"f": "floats", "i": "integers", "u": "integers", "U": "strings", "b": "booleans"}
    return " or ".join(dict.fromkeys(names.get(k, k) for k in kinds))


def check_finite(path, key: str, a: np.ndarray, hint: str = "") -> None:
    if a.dtype.kind == "f" and a.size:
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        if bad:
            _fail(path, f"array {key!r} holds {bad} non-finite value(s) (NaN/Inf){hint}")


# ----------------------------------------------------------------------------------------------
# run files
# ----------------------------------------------------------------------------------------------

CONFIG_SPEC = {"dataset": (str,), "seed": (int,), "dim": (int,), "tasks": (list,), "method": (str,)}
CONFIG_OPTIONAL = {"ks": (list,), "monitor": (str,), "data_dir": (str, type(None)), "data": (dict,),
                   "method_options": (dict,), "task_options": (dict,)}
METRICS_SPEC = {"best_epoch": (int,)}
METRICS_OPTIONAL = {"valid": (dict, type(None)), "test": (dict, type(None)), "epochs_run": (int,)}
EMBEDDINGS_SPEC = {"user_emb": ("f", 2), "item_emb": ("f", 2), "user_raw": ("iuU", 1), "item_raw": ("iuU", 1)}
CHECKPOINT_SPEC = {"E": ("f", 2), "best_E": ("f", 2), "meta": ("U", 0), "adam_m": ("f", 2), "adam_v": ("f", 2),
                   "adam_t": ("iu", 0)}
CHECKPOINT_META = {"config": (dict,), "epoch": (int,), "step": (int,), "best_epoch": (int,), "bad": (int,),
                   "t_train": (float,), "curve": (list,), "rng": (dict,)}
WEIGHTS_COLUMNS = {"epoch": int, "group": str, "task": str, "n": int, "mean": float, "p10": float, "p50": float,
                   "p90": float}
#: written since the percentiles are read off log-odds bins; absent from older files
WEIGHTS_OPTIONAL = {"min": float, "max": float}
DIVERGED = "; the run diverged, retrain it (e.g. with a smaller --lr)"


def read_config(path) -> dict:
    cfg = check_fields(path, read_json_file(path, "not a run directory?"), CONFIG_SPEC, CONFIG_OPTIONAL)
    if cfg["dim"] < 1:
        _fail(path, f"key 'dim' must be >= 1, is {cfg['dim']}")
    if not all(isinstance(t, str) for t in cfg["tasks"]):
        _fail(path, "key 'tasks' should be a list of strings")
    ks = cfg.get("ks", [5, 10, 20, 40])
    if not ks or not all(_is(k, (int,)) and k >= 1 for k in ks):
        _fail(path, f"key 'ks' should be a non-empty list of integers >= 1, is {json.dumps(ks)}")
    if "data" in cfg:
        check_fields(f"{path} (key 'data')", cfg["data"], {"path": (str,), "size": (int,), "sha256": (str,)})
    return cfg


def read_metrics(path) -> dict:
    m = check_fields(path, read_json_file(path), METRICS_SPEC, METRICS_OPTIONAL)
    for part in ("valid", "test"):
        d = m.get(part)
        if isinstance(d, dict):
            for k, v in d.items():
                if v is not None and not _is(v, (float,)):
                    _fail(path, f"'{part}' value {k!r} should be a number or null, is {_kind(v)}")
    return m


def read_embeddings(path, dim: int | None = None) -> dict:
    e = read_npz_file(path, EMBEDDINGS_SPEC)
    U, d = e["user_emb"].shape
    I, d2 = e["item_emb"].shape
    if d2 != d:
        _fail(path, f"'user_emb' and 'item_emb' differ in width ({d} vs {d2})")
    if dim is not None and d != dim:
        _fail(path, f"embeddings have width {d}, the run's config.json says dim {dim}")
    if e["user_raw"].shape[0] != U or e["item_raw"].shape[0] != I:
        _fail(path, f"id arrays do not match the embeddings ({e['user_raw'].shape[0]} user ids for {U} rows, "
                    f"{e['item_raw'].shape[0]} item ids for {I} rows)")
    for key in ("user_emb", "item_emb"):
        check_finite(path, key, e[key], DIVERGED)
    return e


def read_checkpoint(path) -> tuple[dict, dict]:
    """A checkpoint's arrays and its meta dict, validated for shapes and finiteness."""
    data = read_npz_file(path, CHECKPOINT_SPEC)
    try:
        meta = json.loads(str(data["meta"]))
    except ValueError as exc:
        _fail(path, f"'meta' is not valid JSON ({exc})")
    check_fields(f"{path} (meta)", meta, CHECKPOINT_META)
    E = data["E"]
    if data["best_E"].shape[0] and data["best_E"].shape != E.shape:
        _fail(path, f"'best_E' has shape {data['best_E'].shape}, 'E' has {E.shape}")
    for key in ("adam_m", "adam_v"):
        if data[key].shape != E.shape:
            _fail(path, f"'{key}' has shape {data[key].shape}, 'E' has {E.shape}")
    for key in ("E", "best_E", "adam_m", "adam_v"):
        check_finite(path, key, data[key], DIVERGED)
    return data, meta


def read_weights_csv(path) -> list[dict]:
    """``weights.csv`` rows with parsed values; errors name the file and line."""
    path = Path(path)
    _require_file(path, "no weights recorded: train with --method pmtrec and --out")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        _fail(path, "not a UTF-8 text file")
    if not text.strip():
        _fail(path, "empty file (no weights recorded)")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in WEIGHTS_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        _fail(path, f"missing column(s) {', '.join(missing)} in the header")
    rows = []
    for r in reader:
        line = reader.line_num
        row = {}
        for c, typ in WEIGHTS_COLUMNS.items():
            v = r.get(c)
            if v is None or v == "":
                _fail(path, f"line {line}: missing value for {c!r} (the file looks cut short)")
            try:
                row[c] = typ(v)
            except ValueError:
                _fail(path, f"line {line}: {c} {v!r} is not {'an integer' if typ is int else 'a number'}")
            if typ is float and not math.isfinite(row[c]):
                _fail(path, f"line {line}: {c} is {v}")
        for c, typ in WEIGHTS_OPTIONAL.items():
            if c not in (reader.fieldnames or []):
                continue
            v = r.get(c)
            if v is None or v == "":
                _fail(path, f"line {line}: missing value for {c!r} (the file looks cut short)")
            else:
                try:
                    row[c] = typ(v)
                except ValueError:
                    _fail(path, f"line {line}: {c} {v!r} is not a number")
        rows.append(row)
    if not rows:
        _fail(path, "no weights recorded (only a header line)")
    return rows


# ----------------------------------------------------------------------------------------------
# run directories
# ----------------------------------------------------------------------------------------------


@dataclass
class Run:
    """A finished run read back: its directory, config, metrics (or None) and embeddings."""

    path: Path
    config: dict
    metrics: dict | None
    embeddings: dict
    manifest: dict | None = None


def _verify(run: Path, manifest: dict | None, name: str) -> None:
    """Check ``run/name`` against the manifest (size, then SHA-256)."""
    if manifest is None:
        return
    rec = manifest["files"].get(name)
    path = run / name
    if rec is None:
        if path.exists():
            _fail(path, f"not part of the finished run (not listed in {runio.MANIFEST})")
        return
    _require_file(path, f"listed in {runio.MANIFEST}")
    size = path.stat().st_size
    if size != rec.get("size"):
        _fail(path, f"{size} bytes, but the run wrote {rec.get('size')} ({runio.MANIFEST}): "
                    "cut short or replaced after the run finished")
    if runio.sha256_file(path) != rec.get("sha256"):
        _fail(path, f"content differs from what the run wrote ({runio.MANIFEST}): changed after the run finished")


def _open_run_dir(run: Path) -> dict | None:
    """Check ``run`` is a finished run directory (finishing an interrupted commit if it can);
    return its manifest (None for a run written before manifests)."""
    if not run.exists():
        raise RunFileError(f"{run}: no such run directory")
    if not run.is_dir():
        raise RunFileError(f"{run}: not a directory")
    stage = run / runio.STAGING
    if (stage / runio.JOURNAL).is_file():
        try:
            with runio.RunLock(run):
                runio.recover(run)
        except (runio.RunDirError, OSError) as exc:
            raise RunFileError(f"{run}: a run is being saved into it ({exc}); try again when it has finished") from None
    mpath = run / runio.MANIFEST
    if mpath.is_file():
        manifest = check_fields(mpath, read_json_file(mpath), {"files": (dict,)})
        for name, rec in manifest["files"].items():
            check_fields(f"{mpath} (file {name!r})", rec, {"size": (int,), "sha256": (str,)})
        return manifest
    finished = [n for n in ("config.json", "embeddings.npz") if (run / n).is_file()]
    if len(finished) < 2:
        if stage.is_dir():
            raise RunFileError(f"{run}: holds an unfinished run (files in {stage}); continue it with "
                               f"`pmtnumba fit ... --out {run} --resume`")
        missing = [n for n in ("config.json", "embeddings.npz") if n not in finished]
        raise RunFileError(f"{run}: not a finished run directory (missing {', '.join(missing)})")
    return None


def load_run(run_dir) -> Run:
    """Read and validate a finished run directory."""
    run = Path(run_dir)
    manifest = _open_run_dir(run)
    for name in ("config.json", "metrics.json", "embeddings.npz"):
        _verify(run, manifest, name)
    cfg = read_config(run / "config.json")
    metrics = read_metrics(run / "metrics.json") if (run / "metrics.json").is_file() else None
    width = cfg["dim"] * (int(cfg.get("layers", 3)) + 1 if cfg.get("encoder") == "ngcf" else 1)  # NGCF: [E0|..|EK]
    emb = read_embeddings(run / "embeddings.npz", dim=width)
    return Run(run, cfg, metrics, emb, manifest)


# ----------------------------------------------------------------------------------------------
# the data a run was trained on
# ----------------------------------------------------------------------------------------------


def data_record(path) -> dict | None:
    """``{path, size, sha256}`` of a data file (absolute path), or None if it is not a file."""
    if not path:
        return None
    p = Path(path)
    if not p.is_file():
        return None
    p = p.resolve()
    return {"path": str(p), "size": p.stat().st_size, "sha256": runio.sha256_file(p)}


def data_change(record: dict, path) -> str | None:
    """What changed in the data file ``path`` since ``record`` was taken (None: nothing)."""
    p = Path(path)
    if not p.is_file():
        return f"{p}: the data file the run was trained on is gone"
    size = p.stat().st_size
    if size != record["size"]:
        return f"{p}: the data file changed since the run was trained ({record['size']} -> {size} bytes)"
    digest = runio.sha256_file(p)
    if digest != record["sha256"]:
        return (f"{p}: the data file changed since the run was trained (same size, content differs: "
                f"sha256 {record['sha256'][:12]}... -> {digest[:12]}...)")
    return None


def load_run_split(run_dir, data_dir=None, allow_changed_data: bool = False, message=None):
    """A run with its data set and split, after checking that the data has not changed.

    The data is the shipped set of ``config['dataset']`` (in ``data_dir`` or the run's
    ``data_dir``), else the file recorded in ``config['data']['path']`` (absolute), else
    ``config['dataset']`` as a path (runs written before data records). A changed file is
    refused unless ``allow_changed_data`` (then ``message`` gets a warning)."""
    from ..data import SHIPPED, load_dataset
    from ..data.split import make_split

    message = message or (lambda text: None)
    r = load_run(run_dir)
    cfg = r.config
    cpath = r.path / "config.json"
    rec = cfg.get("data")
    name = cfg["dataset"]
    if name in SHIPPED:
        from ..data.io import data_dir as find_data_dir

        src = find_data_dir(data_dir or cfg.get("data_dir"), name=name) / f"{name}.npz"
    elif rec is not None:
        src = Path(rec["path"])
    else:
        src = Path(name)
    if rec is not None:
        change = data_change(rec, src)
        if change is not None and not src.is_file():
            raise RunFileError(f"{change} (recorded in {cpath}); put it back to use this run")
        if change is not None:
            if not allow_changed_data:
                raise RunFileError(f"{change}; the split and ids would not be the run's ({cpath}). "
                                   f"Pass --allow-changed-data to use it anyway")
            message(f"warning: {change}; going on as asked (--allow-changed-data)")
    elif not src.exists() and name not in SHIPPED:
        raise RunFileError(f"{src}: the data file of the run (config.json 'dataset') is not there; "
                           f"this run records no absolute path (written by an earlier pmtnumba): run from "
                           f"the folder where it was trained")
    ds = load_dataset(str(src) if name not in SHIPPED else name, data_dir=None if name not in SHIPPED else src.parent)
    e = r.embeddings
    epath = r.path / "embeddings.npz"
    if e["user_emb"].shape[0] != ds.n_users or e["item_emb"].shape[0] != ds.n_items:
        raise RunFileError(f"{epath}: embeddings do not match the data ({src}: {e['user_emb'].shape[0]} users x "
                           f"{e['item_emb'].shape[0]} items vs {ds.n_users} x {ds.n_items})")
    for kind, raw in (("user", ds.user_raw), ("item", ds.item_raw)):
        if raw is not None and not np.array_equal(np.asarray(e[f"{kind}_raw"]).astype(str), np.asarray(raw).astype(str)):
            raise RunFileError(f"{epath}: the {kind} ids differ from those of the data ({src})")
    return r, make_split(ds, cfg["seed"])


def fingerprint_for(dataset) -> dict | None:
    """The data record of a loaded :class:`~pmtnumba.data.dataset.Dataset` (from its source file)."""
    src = getattr(dataset, "source", "") or ""
    return data_record(src) if src and os.path.isfile(src) else None
