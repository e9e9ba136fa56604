"""Experiment (not engine code): would fusing the BPR step close the 2-thread gap to implicit?

Issue 6's target "pmt-bpr within 2x of implicit's BPR epoch" is met with one thread and not with
two (benchmarks/README.md). This script measures how much restructuring the step could gain at
most. Its ``fast`` BPR epoch runs only two parallel kernels a step: the negative sampler fused
into the triplet kernel, and the per-row gather fused into Adam (no G). The per-step Python is cut
to slicing pre-permuted arrays. It reuses the engine's helpers (``draw_negative``,
``triplet_sample``, ``index_rows``, ``_adam_row``, prefetching), is not wired into the package,
and leaves out what the engine's step also does: finiteness checks, loss logging and multi-task
support.

It runs the fast epoch, the engine's BPR epoch (``pmt``, as in bench_train.py) and implicit's BPR
(``imp``) alternately, 7 times, with 1 and then 2 Numba threads, on videogame and the synthetic
55k x 17k set, and prints the medians and the ratios to implicit.

    python benchmarks/experiment_fused_bpr.py
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_train  # noqa: E402  (imports pmtnumba first: thread settings before numba starts)
import numba  # noqa: E402
from numba import njit, prange  # noqa: E402

from pmtnumba.data import load_dataset  # noqa: E402
from pmtnumba.data.samplers import draw_negative  # noqa: E402
from pmtnumba.data.split import make_split  # noqa: E402
from pmtnumba.optim.adam import _adam_row  # noqa: E402
from pmtnumba.prefetch import PREFETCH_AHEAD, prefetch_csr_row, prefetch_row  # noqa: E402
from pmtnumba.rng import make_key  # noqa: E402
from pmtnumba.tasks.rowgrad import index_rows  # noqa: E402
from pmtnumba.tasks.triplet import triplet_sample  # noqa: E402
from pmtnumba.training import FitConfig, Trainer  # noqa: E402

BATCH, DIM, LR, WD, MAX_TRIES = 2048, 32, 0.01, 1e-4, 64


@njit(parallel=True, fastmath={"reassoc"})
def bpr_slots(E, users, items, n_users, n_items, indptr, indices, key, scale, out_rows, out_grads, out_loss):
    """Negative sampling and the triplet kernel in one parallel loop (three slots per sample)."""
    for s in prange(users.shape[0]):
        prefetch_csr_row(users, s, indptr, indices)
        u = users[s]
        j = draw_negative(indptr, indices, u, n_items, key, s, MAX_TRIES)
        out_loss[s] = triplet_sample(E, u, items[s] + n_users, j + n_users, scale, 3 * s, out_rows, out_grads)


@njit(parallel=True)
def gather_adam(rows, indptr, order, slot_grads, E, MV, lr_t, b1, c1, b2, c2, eps, bc2, wd):
    """Each row's slots summed in slot order, then that row's Adam update, in one parallel loop."""
    R, d = rows.shape[0], E.shape[1]
    for k in prange(R):
        if k + PREFETCH_AHEAD < R:
            prefetch_row(E, rows[k + PREFETCH_AHEAD])
            prefetch_row(MV, rows[k + PREFETCH_AHEAD])
        g = np.zeros((1, d), slot_grads.dtype)
        g0 = g[0]
        for p in range(indptr[k], indptr[k + 1]):
            sg = slot_grads[order[p]]
            for c in range(d):
                g0[c] += sg[c]
        _adam_row(E, MV, rows[k], g, 0, lr_t, b1, c1, b2, c2, eps, bc2, wd)


class FusedBPR:
    """The fused BPR epoch on the embeddings and Adam state of an engine Trainer."""

    def __init__(self, sp):
        cfg = FitConfig(dataset=sp.dataset.name, tasks=["bpr"], method="ew", batch_size=BATCH, dim=DIM,
                        lr=LR, wd=WD)
        self.tr = Trainer(cfg, split=sp)
        self.sp = sp
        self.rows = np.full(3 * BATCH, -1, np.int64)
        self.grads = np.empty((3 * BATCH, DIM), np.float32)
        self.loss = np.empty(BATCH)
        self.mark = np.full(sp.n_users + sp.n_items, -1, np.int64)
        self.t = 0

    def epoch(self, epoch: int) -> float:
        sp, E, MV = self.sp, self.tr.encoder.E, self.tr.adam.MV
        indptr, indices = sp.train
        f = np.float32
        t0 = time.perf_counter()
        perm = np.random.default_rng(np.random.SeedSequence([0, epoch, 0xBA7C])).permutation(sp.train_users.size)
        users, items = sp.train_users[perm], sp.train_items[perm]
        for start in range(0, users.size, BATCH):
            u, i = users[start : start + BATCH], items[start : start + BATCH]
            n = u.size
            key = make_key(0, epoch, start, 1)
            bpr_slots(E, u, i, sp.n_users, sp.n_items, indptr, indices, key, 1.0 / n, self.rows[: 3 * n],
                      self.grads[: 3 * n], self.loss[:n])
            self.rows[3 * n :] = -1
            rows, ip, order = index_rows(self.rows, self.mark)
            self.t += 1
            bc1, bc2 = 1 - 0.9**self.t, math.sqrt(1 - 0.999**self.t)
            gather_adam(rows, ip, order, self.grads, E, MV, f(LR / bc1), f(0.9), f(0.1), f(0.999), f(0.001),
                        f(1e-8), f(bc2), f(WD))
        return time.perf_counter() - t0


def main():
    for name in ("videogame", "synthetic"):
        data = load_dataset("videogame") if name == "videogame" else bench_train.synthetic_dataset()
        sp = make_split(data, seed=0)
        contenders = {"fast": FusedBPR(sp), "pmt": bench_train.PmtContender(sp, ["bpr"], "ew"),
                      "imp": bench_train.ImplicitContender(sp)}
        for nt in (1, 2):
            numba.set_num_threads(nt)
            for c in contenders.values():
                c.epoch(1)  # warm-up
            times = {k: [] for k in contenders}
            for rep in range(7):
                for k, c in contenders.items():
                    times[k].append(c.epoch(rep + 2))
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"{name:10s} {nt} thread(s): " + "  ".join(f"{k} {v:.4f} s" for k, v in med.items())
                  + f"  | fast / imp {med['fast'] / med['imp']:.2f}  pmt / imp {med['pmt'] / med['imp']:.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
