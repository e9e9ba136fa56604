"""One multi-task training step: tasks -> slots -> G [T, |R|, d] -> combiner -> Adam.

::

    for each task t:   write slot rows and gradient contributions      (task kernels, parallel)
    R, CSR           = index_rows(all slot rows)                      (serial counting sort)
    G[t, r, :]       = sum of task t's slots of row r                  (parallel over rows)
    g                = combiner(G)                                     ([|R|, d])
    Adam on rows R with g                                              (parallel over rows)

Only rows touched in the step exist in G: no dense [T, N, d] tensor is ever built.
"""

from __future__ import annotations

import numpy as np

from ..combiners import Combiner, StepContext
from ..errors import TrainingDiverged
from ..optim import Adam
from ..rng import make_key
from ..tasks import Batch, Task
from ..tasks.rowgrad import gather_rows, index_rows


class StepWorkspace:
    """Buffers reused every step (slot arrays sized for the largest batch, the row mark)."""

    def __init__(self, tasks: list[Task], batch_size: int, n_rows: int, dim: int, dtype=np.float32):
        self.offsets = np.zeros(len(tasks) + 1, np.int64)
        for t, task in enumerate(tasks):
            self.offsets[t + 1] = self.offsets[t] + task.max_slots(batch_size)
        S = int(self.offsets[-1])
        self.slot_rows = np.empty(S, np.int64)
        self.slot_task = np.empty(S, np.int64)
        self.slot_grads = np.empty((S, dim), dtype)
        self.mark = np.full(n_rows, -1, np.int64)


def multitask_gradients(E, tasks: list[Task], batch: Batch, seed: int, epoch: int, step: int,
                        ws: StepWorkspace):
    """Run every task on the batch; return (rows [R], G [T, R, d], losses [T], pairs [T])."""
    T = len(tasks)
    losses = np.zeros(T)
    pairs = np.zeros(T, np.int64)
    used = []
    for t, task in enumerate(tasks):
        lo, hi = int(ws.offsets[t]), int(ws.offsets[t + 1])
        key = make_key(seed, epoch, step, task.stream)
        out = task.compute(E, batch, key, ws.slot_rows[lo:hi], ws.slot_grads[lo:hi])
        losses[t] = out.loss
        pairs[t] = out.n_pairs
        ws.slot_task[lo : lo + out.n_slots] = t
        used.append(np.arange(lo, lo + out.n_slots))
    S = int(ws.offsets[-1])
    if sum(u.size for u in used) == S:
        slot_rows, slot_task, slot_grads = ws.slot_rows, ws.slot_task, ws.slot_grads
    else:  # some task wrote fewer slots than its bound: keep only the written ones
        idx = np.concatenate(used)
        slot_rows, slot_task, slot_grads = ws.slot_rows[idx], ws.slot_task[idx], ws.slot_grads[idx]
    rows, indptr, order = index_rows(slot_rows, ws.mark)
    G = np.zeros((T, rows.shape[0], E.shape[1]), E.dtype)
    gather_rows(indptr, order, slot_task, slot_grads, G)
    return rows, G, losses, pairs


def train_step(E, tasks, batch, combiner: Combiner, adam: Adam, ctx: StepContext, seed: int,
               ws: StepWorkspace):
    """One full step; returns the per-task mean losses and pair counts."""
    rows, G, losses, pairs = multitask_gradients(E, tasks, batch, seed, ctx.epoch, ctx.step, ws)
    for t, task in enumerate(tasks):
        if not np.isfinite(losses[t]) or not np.isfinite(G[t]).all():
            what = "loss" if not np.isfinite(losses[t]) else "gradient"
            raise TrainingDiverged(
                f"training diverged: task {task.name!r} has a non-finite {what} at epoch {ctx.epoch}, "
                f"step {ctx.step}; try a smaller --lr"
            )
    ctx.rows = rows
    g = combiner(G, ctx)
    if not np.isfinite(g).all():
        raise TrainingDiverged(
            f"training diverged: the {combiner.name} combiner produced a non-finite gradient at epoch "
            f"{ctx.epoch}, step {ctx.step}"
        )
    adam.step(rows, g)
    return losses, pairs
