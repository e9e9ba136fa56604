"""Figures of runs (the optional ``plot`` extra: matplotlib, imported only here and only when a
figure is drawn).

- a ``fit`` run directory (``curve.csv``): each task's training loss per epoch, and the validation
  Recall@20 / NDCG@20 per epoch with the best epoch marked;
- a ``compare`` directory (``summary.csv``): each method's mean test Recall@20 and NDCG@20 over
  seeds, with the standard deviation as error bars;
- a ``sweep`` directory after ``sweep report`` (``report/table2.csv``): the same for each method's
  best configuration.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from .errors import PmtError


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PmtError("plotting needs matplotlib: pip install 'pmtnumba[plot]'") from None
    return plt


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        raise PmtError(f"{path}: no such file")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise PmtError(f"{path}: no rows")
    return rows


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def plot_run(run_dir, out=None, fmt: str = "png") -> Path:
    """Training losses and validation metrics per epoch of a ``fit`` run; returns the figure's path
    (default ``RUN_DIR/curve.<fmt>``)."""
    run = Path(run_dir)
    rows = _read_csv(run / "curve.csv")
    plt = _pyplot()
    epochs = [int(_num(r["epoch"])) for r in rows]
    tasks = [k[5:] for k in rows[0] if k.startswith("loss_")]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for t in tasks:
        a1.plot(epochs, [_num(r[f"loss_{t}"]) for r in rows], label=t)
    a1.set_xlabel("epoch"), a1.set_ylabel("training loss (mean over pairs)"), a1.set_yscale("log")
    a1.legend(fontsize=8)
    for key, label in (("valid_recall@20", "Recall@20"), ("valid_ndcg@20", "NDCG@20")):
        pts = [(e, _num(r.get(key))) for e, r in zip(epochs, rows) if not math.isnan(_num(r.get(key)))]
        if pts:
            a2.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=label)
    best = [int(_num(r["best_epoch"])) for r in rows if not math.isnan(_num(r.get("best_epoch")))]
    if best:
        a2.axvline(best[-1], color="grey", linestyle=":", label=f"best epoch {best[-1]}")
    a2.set_xlabel("epoch"), a2.set_ylabel("validation"), a2.legend(fontsize=8)
    fig.suptitle(run.resolve().name, fontsize=10)
    fig.tight_layout()
    path = Path(out) if out else run / f"curve.{fmt}"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_compare(cmp_dir, out=None, fmt: str = "png", table: str = "summary.csv") -> Path:
    """Mean test Recall@20 and NDCG@20 per method with standard-deviation error bars, from a
    ``compare`` directory's ``summary.csv`` (default ``DIR/methods.<fmt>``), or from another table
    of the same columns in it (a sweep report's ``table2.csv``)."""
    d = Path(cmp_dir)
    rows = _read_csv(d / table)
    plt = _pyplot()
    methods = [r["method"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, m in zip(axes, ("recall@20", "ndcg@20")):
        means = [_num(r.get(f"{m}_mean")) for r in rows]
        stds = [0.0 if math.isnan(_num(r.get(f"{m}_std"))) else _num(r.get(f"{m}_std")) for r in rows]
        ax.bar(range(len(methods)), means, yerr=stds, capsize=3, color="#4c72b0")
        ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel(f"test {m}")  # the axis starts at 0: bars on a cut axis exaggerate differences
    seeds = rows[0].get("seeds", "")
    fig.suptitle(f"{d.resolve().name} (mean +- std over seeds {seeds})", fontsize=10)
    fig.tight_layout()
    path = Path(out) if out else d / f"methods.{fmt}"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_dir(path, out=None, fmt: str = "png") -> Path:
    """A ``fit`` run (``curve.csv``), a ``compare`` directory (``summary.csv``) or a ``sweep``
    directory whose report was made (``report/table2.csv``: the best configuration per method re-run
    on the report's seeds)."""
    p = Path(path)
    if not p.is_dir():
        raise PmtError(f"{p}: no such directory")
    if (p / "summary.csv").is_file():
        return plot_compare(p, out, fmt)
    if (p / "curve.csv").is_file():
        return plot_run(p, out, fmt)
    for d in (p / "report", p):  # a sweep directory, or its report folder
        if (d / "table2.csv").is_file():
            return plot_compare(d, out, fmt, table="table2.csv")
    raise PmtError(f"{p}: neither a fit run (curve.csv), a compare directory (summary.csv) nor a sweep "
                   f"with a report (report/table2.csv; run `pmtnumba sweep report` first)")
