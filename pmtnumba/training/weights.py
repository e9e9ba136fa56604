"""Per-row task weights, summarised per epoch: the personalization PMTRec is about.

PMTRec gives every touched row its own softmax weights over the tasks. Storing them all would
cost ``steps x |R| x T`` numbers per epoch; instead :class:`WeightRecorder` keeps, per epoch, a
fixed-size histogram of the weights per (row group, task). Row groups split users by their number
of training interactions into quartiles (cold to warm users) and items likewise, so a reader can
see whether cold users lean on the auxiliary tasks more than warm ones (the paper's Figure 1).

Written as ``weights.csv`` in the run directory (one line per epoch x group x task: mean and the
10/50/90th percentiles read off the histogram); ``pmtnumba weights RUN_DIR`` prints it.
"""

from __future__ import annotations

import numpy as np

from ..jitshare import shared_jit

N_BINS = 100


@shared_jit()
def weight_bin(w):
    """The histogram bin of one weight in [0, 1]: ``min(int(w * N_BINS), N_BINS - 1)``, the scalar
    form of :meth:`WeightRecorder.observe`'s array expression (used by its CUDA twin,
    training/weights_cuda.py; a test checks the two agree on every bin edge)."""
    return min(np.int64(w * N_BINS), N_BINS - 1)


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

    def observe(self, rows: np.ndarray, W: np.ndarray) -> None:
        """Add one step's weights ``W [len(rows), T]`` of the global rows ``rows``."""
        g = self.group_of_row[rows]
        G, T = self.hist.shape[0], W.shape[1]
        b = np.minimum((W * N_BINS).astype(np.int64), N_BINS - 1)
        cell = g[:, None] * T + np.arange(T)[None, :]
        self.hist += np.bincount((cell * N_BINS + b).ravel(), minlength=G * T * N_BINS).reshape(G, T, N_BINS)
        self.sums += np.bincount(cell.ravel(), weights=W.ravel(), minlength=G * T).reshape(G, T)

    def add_counts(self, hist: np.ndarray, sums: np.ndarray) -> None:
        """Add counts and sums accumulated elsewhere (the GPU step's, once per epoch) as if observed."""
        self.hist += hist
        self.sums += sums

    def end_epoch(self, epoch: int) -> None:
        """Summarise the epoch's histograms into records and start afresh."""
        centers = (np.arange(N_BINS) + 0.5) / N_BINS
        for gi, label in enumerate(self.labels):
            for t, task in enumerate(self.tasks):
                h = self.hist[gi, t]
                n = int(h.sum())
                if n == 0:
                    continue
                cdf = np.cumsum(h) / n
                q = [float(centers[np.searchsorted(cdf, p)]) for p in (0.1, 0.5, 0.9)]
                self.records.append({
                    "epoch": epoch, "group": label, "task": task, "n": n,
                    "mean": float(self.sums[gi, t] / n), "p10": q[0], "p50": q[1], "p90": q[2],
                })
        self._reset()


def weights_table(records: list[dict], epoch: int) -> tuple[list[str], list[list]]:
    """Rows = groups, columns = tasks' mean weight (p10-p90) at one epoch."""
    recs = [r for r in records if int(r["epoch"]) == epoch]
    tasks = list(dict.fromkeys(r["task"] for r in recs))
    groups = list(dict.fromkeys(r["group"] for r in recs))
    rows = []
    for g in groups:
        row = [g]
        for t in tasks:
            m = [r for r in recs if r["group"] == g and r["task"] == t]
            row.append(f"{float(m[0]['mean']):.3f} ({float(m[0]['p10']):.2f}-{float(m[0]['p90']):.2f})" if m else "-")
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
