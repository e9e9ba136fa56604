"""One multi-task training step: tasks -> slots -> G [T, |R|, d] -> combiner -> Adam.

::

    for each task t:   write slot rows and gradient contributions      (task kernels, parallel)
    R, CSR           = index_rows(all slot rows)                      (serial bitmap + counting sort)
    G[t, r, :]       = sum of task t's slots of row r                  (parallel over rows)
    g                = combiner(G)                                     ([|R|, d])
    Adam on rows R with g                                              (parallel over rows)

Only rows touched in the step exist in G: no dense [T, N, d] tensor is ever built.

Every buffer of the step lives in a :class:`StepWorkspace` made once per run: each task owns a
fixed range of slots (so the slot -> task map is written once), a task that forms fewer samples
than its bound marks the rest of its range unused (row -1, skipped by ``index_rows``), and ``G``
is a view of one reused buffer (valid until the next step).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..combiners import Combiner, StepContext
from ..errors import TrainingDiverged
from ..optim import Adam
from ..rng import make_key
from ..tasks import Batch, Task
from ..tasks.rowgrad import gather_rows, index_rows


class StepWorkspace:
    """Buffers reused every step: slots (task ``t`` owns ``offsets[t]:offsets[t+1]``), the row
    mark of ``index_rows`` and the storage of ``G``."""

    def __init__(self, tasks: list[Task], batch_size: int, n_rows: int, dim: int, dtype=np.float32):
        T = len(tasks)
        self.offsets = np.zeros(T + 1, np.int64)
        for t, task in enumerate(tasks):
            self.offsets[t + 1] = self.offsets[t] + task.max_slots(batch_size)
        S = int(self.offsets[-1])
        self.slot_rows = np.full(S, -1, np.int64)
        self.slot_task = np.repeat(np.arange(T, dtype=np.int64), np.diff(self.offsets))
        self.slot_grads = np.empty((S, dim), dtype)
        self.mark = np.full(n_rows, -1, np.int64)
        self.g_store = np.empty(T * S * dim, dtype)  # G [T, R, d] with R <= S


@njit(cache=True)
def _all_finite(flat):
    ok = True
    for i in range(flat.shape[0]):
        ok &= flat[i] - flat[i] == 0  # NaN for NaN and +-inf; one vectorised pass
    return ok


def all_finite(x) -> bool:
    """Whether every entry of ``x`` is finite (no temporaries when ``x`` is contiguous)."""
    return bool(_all_finite(np.ravel(x)))


def multitask_gradients(E, tasks: list[Task], batch: Batch, seed: int, epoch: int, step: int,
                        ws: StepWorkspace):
    """Run every task on the batch; return (rows [R], G [T, R, d], losses [T], pairs [T]).

    ``G`` is a view of ``ws.g_store``: it is overwritten by the next call with the same workspace.
    """
    T = len(tasks)
    losses = np.zeros(T)
    pairs = np.zeros(T, np.int64)
    for t, task in enumerate(tasks):
        lo, hi = int(ws.offsets[t]), int(ws.offsets[t + 1])
        key = make_key(seed, epoch, step, task.stream)
        out = task.compute(E, batch, key, ws.slot_rows[lo:hi], ws.slot_grads[lo:hi])
        losses[t] = out.loss
        pairs[t] = out.n_pairs
        ws.slot_rows[lo + out.n_slots : hi] = -1  # unused slots: skipped by index_rows
    rows, indptr, order = index_rows(ws.slot_rows, ws.mark)
    G = ws.g_store[: T * rows.shape[0] * E.shape[1]].reshape(T, rows.shape[0], E.shape[1])
    gather_rows(indptr, order, ws.slot_task, ws.slot_grads, G)
    return rows, G, losses, pairs


def train_step(E, tasks, batch, combiner: Combiner, adam: Adam, ctx: StepContext, seed: int,
               ws: StepWorkspace):
    """One full step; returns the per-task mean losses and pair counts."""
    rows, G, losses, pairs = multitask_gradients(E, tasks, batch, seed, ctx.epoch, ctx.step, ws)
    if not (np.isfinite(losses).all() and all_finite(G)):  # one pass; then find the task at fault
        for t, task in enumerate(tasks):
            if not np.isfinite(losses[t]) or not all_finite(G[t]):
                what = "loss" if not np.isfinite(losses[t]) else "gradient"
                raise TrainingDiverged(
                    f"training diverged: task {task.name!r} has a non-finite {what} at epoch {ctx.epoch}, "
                    f"step {ctx.step}; try a smaller --lr"
                )
    ctx.rows = rows
    g = combiner(G, ctx)
    if not all_finite(g):
        raise TrainingDiverged(
            f"training diverged: the {combiner.name} combiner produced a non-finite gradient at epoch "
            f"{ctx.epoch}, step {ctx.step}"
        )
    adam.step(rows, g)
    return losses, pairs
