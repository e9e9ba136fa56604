"""Run directories: atomic writes of configs, curves, metrics and embeddings.

Every file is written to a temporary name in the same folder, flushed and fsynced, then moved
over the final name with ``os.replace`` (atomic on POSIX): a reader, or a crash, never sees a
half-written file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path, obj) -> None:
    _atomic_write_bytes(Path(path), (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def write_csv(path, rows: list[dict]) -> None:
    buf = io.StringIO()
    if rows:
        fields = list(rows[0].keys())
        for r in rows[1:]:
            fields += [k for k in r if k not in fields]
        w = csv.DictWriter(buf, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    _atomic_write_bytes(Path(path), buf.getvalue().encode())


def write_npz(path, compress: bool = True, **arrays) -> None:
    buf = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buf, **arrays)
    _atomic_write_bytes(Path(path), buf.getvalue())


def read_json(path) -> dict:
    with open(path) as f:
        return json.load(f)


def save_result(out_dir, result, dataset) -> None:
    """Write a finished run: ``config.json``, ``curve.csv``, ``metrics.json``, ``embeddings.npz``."""
    out = Path(out_dir)
    write_json(out / "config.json", result.config)
    write_csv(out / "curve.csv", result.curve)
    write_npz(
        out / "embeddings.npz",
        user_emb=result.user_emb,
        item_emb=result.item_emb,
        user_raw=dataset.user_raw if dataset.user_raw is not None else np.arange(dataset.n_users),
        item_raw=dataset.item_raw if dataset.item_raw is not None else np.arange(dataset.n_items),
    )
    write_json(
        out / "metrics.json",
        {
            "dataset": dataset.name,
            "best_epoch": result.best_epoch,
            "epochs_run": len(result.curve),
            "stopped_early": result.stopped_early,
            "train_seconds": round(result.train_seconds, 3),
            "valid": result.best_valid,
            "test": result.test,
            "effective": result.config.get("effective"),
        },
    )


def load_run(run_dir):
    """Read a run directory back: (config dict, metrics dict or None, embeddings npz dict)."""
    from ..errors import PmtError

    run = Path(run_dir)
    for name in ("config.json", "embeddings.npz"):
        if not (run / name).is_file():
            raise PmtError(f"{run}: not a finished run directory (missing {name})")
    cfg = read_json(run / "config.json")
    metrics = read_json(run / "metrics.json") if (run / "metrics.json").is_file() else None
    with np.load(run / "embeddings.npz", allow_pickle=False) as z:
        emb = {k: z[k] for k in z.files}
    return cfg, metrics, emb
