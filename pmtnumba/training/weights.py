"""Per-row task weights, summarised per epoch: the personalization PMTRec is about.

PMTRec gives every touched row its own softmax weights over the tasks. Storing them all would
cost ``steps x |R| x T`` numbers per epoch; instead :class:`WeightRecorder` keeps, per epoch, a
fixed-size histogram of the weights per (row group, task). Row groups split users by their number
of training interactions into quartiles (cold to warm users) and items likewise, so a reader can
see whether cold users lean on the auxiliary tasks more than warm ones (the paper's Figure 1).

Written as ``weights.csv`` in the run directory (one line per epoch x group x task: the exact
mean, minimum and maximum, and the 10/50/90th percentiles read off the histogram);
``pmtnumba weights RUN_DIR`` prints it.

The histogram's bins are even in log-odds ``log(w / (1 - w))`` rather than in ``w``: PMTRec's
weights at a small temperature sit within 1e-6 of 0 or 1, where bins even in ``w`` (0.01 wide)
could only say "somewhere in [0, 0.01)". A bin in log-odds ``2 * LOGIT_MAX / N_BINS`` wide gives
every percentile to within half a bin, a relative error of at most :data:`RELATIVE_RESOLUTION`
of ``w`` (of ``1 - w`` above 0.5); weights beyond ``sigmoid(+-LOGIT_MAX)`` (1e-10 from 0 or 1)
fall into the end bins, and every percentile is clipped to the cell's exact minimum and maximum
(so constant weights and exact zeros are reported exactly).
"""

from __future__ import annotations

import numpy as np

from ..fmath import ffloor, flog, flog1p
from ..jitshare import shared_jit

N_BINS = 10_000
#: the bins cover log-odds in [-LOGIT_MAX, LOGIT_MAX], i.e. weights in [1e-10, 1 - 1e-10]
LOGIT_MAX = 23.0
#: half a bin in log-odds: the largest relative error of a percentile w (of 1 - w above 0.5)
RELATIVE_RESOLUTION = float(np.expm1(LOGIT_MAX / N_BINS))


def _bin_of(W: np.ndarray) -> np.ndarray:
    """Histogram bin of each weight: even in log-odds, end bins open (0 and 1 included)."""
    w = np.clip(np.asarray(W, np.float64), 1e-300, 1.0)
    with np.errstate(divide="ignore"):
        z = np.log(w) - np.log1p(-w)  # log-odds; +inf at w = 1
    b = np.floor((z + LOGIT_MAX) * (N_BINS / (2 * LOGIT_MAX)))
    return np.clip(np.nan_to_num(b, nan=0.0, posinf=N_BINS - 1, neginf=0), 0, N_BINS - 1).astype(np.int64)


@shared_jit()
def weight_bin(w):
    """The bin of one weight, the scalar form of :func:`_bin_of` (for its CUDA twin,
    training/weights_cuda.py; a test checks the two agree, bin edges included)."""
    w = np.float64(w)
    if not w == w:
        return np.int64(0)
    if w >= 1.0:
        return np.int64(N_BINS - 1)
    w = max(w, 1e-300)
    b = ffloor((flog(w) - flog1p(-w) + LOGIT_MAX) * (N_BINS / (2 * LOGIT_MAX)))
    if b < 0.0:
        return np.int64(0)
    if b > N_BINS - 1:
        return np.int64(N_BINS - 1)
    return np.int64(b)


def _bin_centres() -> np.ndarray:
    z = -LOGIT_MAX + (np.arange(N_BINS) + 0.5) * (2 * LOGIT_MAX / N_BINS)
    return 1.0 / (1.0 + np.exp(-z))


def degree_groups(degree: np.ndarray, kind: str, n_groups: int = 4):
    """Group ids of rows by degree quartile, and each group's label (``users deg 1-3``...)."""
    degree = np.asarray(degree)
    edges = np.unique(np.quantile(degree, np.linspace(0, 1, n_groups + 1)[1:-1], method="lower"))
    if degree.size:
        edges = edges[edges < degree.max()]  # group g holds degrees in (edges[g-1], edges[g]]
    gid = np.searchsorted(edges, degree, side="left")
    labels = []
    for g in range(len(edges) + 1):
        members = degree[gid == g]
        labels.append(f"{kind} deg {int(members.min())}-{int(members.max())}")
    return gid.astype(np.int64), labels


class WeightRecorder:
    """Accumulates per-row task weights into per-epoch histograms by row group."""

    def __init__(self, user_degree: np.ndarray, item_degree: np.ndarray, task_names: list[str]):
        ug, ulab = degree_groups(user_degree, "users")
        ig, ilab = degree_groups(item_degree, "items")
        self.group_of_row = np.concatenate([ug, ig + len(ulab)])
        self.labels = ulab + ilab
        self.tasks = list(task_names)
        self.records: list[dict] = []
        self._reset()

    def _reset(self):
        G, T = len(self.labels), len(self.tasks)
        self.hist = np.zeros((G, T, N_BINS), np.int64)
        self.sums = np.zeros((G, T))
        self.mins = np.full((G, T), np.inf)
        self.maxs = np.full((G, T), -np.inf)

    def observe(self, rows: np.ndarray, W: np.ndarray) -> None:
        """Add one step's weights ``W [len(rows), T]`` of the global rows ``rows``."""
        g = self.group_of_row[rows]
        G, T = self.hist.shape[0], W.shape[1]
        b = _bin_of(W)
        cell = g[:, None] * T + np.arange(T)[None, :]
        self.hist += np.bincount((cell * N_BINS + b).ravel(), minlength=G * T * N_BINS).reshape(G, T, N_BINS)
        self.sums += np.bincount(cell.ravel(), weights=W.ravel(), minlength=G * T).reshape(G, T)
        np.minimum.at(self.mins, (np.broadcast_to(g[:, None], W.shape), np.broadcast_to(np.arange(T), W.shape)), W)
        np.maximum.at(self.maxs, (np.broadcast_to(g[:, None], W.shape), np.broadcast_to(np.arange(T), W.shape)), W)

    def add_counts(self, hist: np.ndarray, sums: np.ndarray, mins: np.ndarray, maxs: np.ndarray) -> None:
        """Add counts, sums and extremes accumulated elsewhere (the GPU step's, once per epoch) as
        if :meth:`observe` had seen the weights."""
        self.hist += hist
        self.sums += sums
        np.minimum(self.mins, mins, out=self.mins)
        np.maximum(self.maxs, maxs, out=self.maxs)

    def end_epoch(self, epoch: int) -> None:
        """Summarise the epoch's histograms into records and start afresh."""
        centers = _bin_centres()
        for gi, label in enumerate(self.labels):
            for t, task in enumerate(self.tasks):
                h = self.hist[gi, t]
                n = int(h.sum())
                if n == 0:
                    continue
                cdf = np.cumsum(h) / n
                lo, hi = float(self.mins[gi, t]), float(self.maxs[gi, t])
                q = [min(hi, max(lo, float(centers[np.searchsorted(cdf, p)]))) for p in (0.1, 0.5, 0.9)]
                self.records.append({
                    "epoch": epoch, "group": label, "task": task, "n": n,
                    "mean": float(self.sums[gi, t] / n), "p10": q[0], "p50": q[1], "p90": q[2],
                    "min": lo, "max": hi,
                })
        self._reset()


def fmt_weight(w: float) -> str:
    """A weight with 3 significant digits where it matters: near 1 as ``1-3.2e-06``."""
    w = float(w)
    if w == 0.0 or w == 1.0:
        return f"{w:.0f}"
    if w > 0.999:
        return f"1-{1.0 - w:.2g}"
    return f"{w:.3g}"


def percentile_note(records: list[dict]) -> str:
    """How exact the printed percentiles are (files of older versions used bins 0.01 wide)."""
    if records and all("min" in r for r in records):
        return (f"mean exact; percentiles from a histogram even in log-odds, within {RELATIVE_RESOLUTION:.2%} of "
                f"w (of 1-w above 0.5)")
    return "mean exact; percentiles are midpoints of bins 0.01 wide, +-0.005 (a weights.csv of an older version)"


def weights_table(records: list[dict], epoch: int) -> tuple[list[str], list[list]]:
    """Rows = groups, columns = tasks' mean weight (p10 .. p90) at one epoch."""
    recs = [r for r in records if int(r["epoch"]) == epoch]
    tasks = list(dict.fromkeys(r["task"] for r in recs))
    groups = list(dict.fromkeys(r["group"] for r in recs))
    rows = []
    for g in groups:
        row = [g]
        for t in tasks:
            m = [r for r in recs if r["group"] == g and r["task"] == t]
            row.append(f"{fmt_weight(m[0]['mean'])} ({fmt_weight(m[0]['p10'])} .. {fmt_weight(m[0]['p90'])})"
                       if m else "-")
        rows.append(row)
    return ["group"] + tasks, rows


def plot_weights(records: list[dict], out_dir) -> list:
    """Mean weight per task over epochs, one panel per row group (needs matplotlib)."""
    from pathlib import Path

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from ..errors import PmtError

        raise PmtError("--plot needs matplotlib: pip install 'pmtnumba[plot]'") from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = list(dict.fromkeys(r["group"] for r in records))
    tasks = list(dict.fromkeys(r["task"] for r in records))
    fig, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups), 3), sharey=True, squeeze=False)
    for ax, g in zip(axes[0], groups):
        for t in tasks:
            rs = [r for r in records if r["group"] == g and r["task"] == t]
            ax.plot([int(r["epoch"]) for r in rs], [float(r["mean"]) for r in rs], label=t)
        ax.set_title(g, fontsize=9)
        ax.set_xlabel("epoch")
    axes[0][0].set_ylabel("mean weight")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    path = out / "weights_by_group.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
