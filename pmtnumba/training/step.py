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


def check_task_gradients(tasks, losses, G, ctx: StepContext) -> None:
    """Raise :class:`TrainingDiverged` naming the first task whose loss or ``G[t]`` is not finite
    (one pass over everything first; the per-task search runs only when something is wrong)."""
    if np.isfinite(losses).all() and all_finite(G):
        return
    for t, task in enumerate(tasks):
        if not np.isfinite(losses[t]) or not all_finite(G[t]):
            what = "loss" if not np.isfinite(losses[t]) else "gradient"
            raise TrainingDiverged(
                f"training diverged: task {task.name!r} has a non-finite {what} at epoch {ctx.epoch}, "
                f"step {ctx.step}; try a smaller --lr"
            )


def check_combined(combiner: Combiner, ctx: StepContext, *grads) -> None:
    """Raise :class:`TrainingDiverged` when a combined gradient is not finite."""
    if not all(all_finite(g) for g in grads):
        raise TrainingDiverged(
            f"training diverged: the {combiner.name} combiner produced a non-finite gradient at epoch "
            f"{ctx.epoch}, step {ctx.step}"
        )


def train_step(E, tasks, batch, combiner: Combiner, adam: Adam, ctx: StepContext, seed: int,
               ws: StepWorkspace, penalty=None):
    """One full step; returns the per-task mean losses and pair counts.

    ``penalty`` (optional, :class:`~.ego_reg.EgoReg`): the ego-embedding L2 of the main task's
    triplets, added to the combined gradient (its value is left in ``penalty.loss``)."""
    rows, G, losses, pairs = multitask_gradients(E, tasks, batch, seed, ctx.epoch, ctx.step, ws)
    check_task_gradients(tasks, losses, G, ctx)
    ctx.rows = rows
    g = combiner(G, ctx)
    if penalty is not None:  # after the combiner: the tasks' per-row norms stay their own (ego_reg.py)
        rows, g = penalty(E, ws, int(pairs[0]), rows, g)
    check_combined(combiner, ctx, g)
    adam.step(rows, g)
    return losses, pairs


# --------------------------------------------------------------------------------------------
# Graph encoders (LightGCN, NGCF): one forward, per-task backward, combine, Adam
#
# MF keeps :func:`train_step` above (its final embeddings are its parameters). A graph encoder's
# step is
#
#     F                 = encoder.forward(key)                    (one forward per step)
#     rows, G [T, R, d'] = the tasks on F                          (multitask_gradients, as MF)
#     rows0, G0, dense  = encoder.backward(rows, G)               (per-task gradients on E's rows
#                                                                  and on dense parameters)
#     combine (below), then the row Adam on rows0 and one Adam per dense parameter.
#
# How the combiners see the dense parameters (NGCF's W1, W2, b):
#
# * Row-wise combiners (EW, PMTRec and its ablations) work per parameter "row" with their own
#   per-task norms. Embedding rows are users and items, as with MF (Algorithm 1). A weight matrix
#   (or bias) of one layer is shared by every user and item: it is one "row" of its own, its
#   per-task norms the norms of the whole matrix's per-task gradients, so PMTRec gives it one
#   softmax over the tasks. Splitting it into its d rows would invent a personalisation the
#   parameter does not have (a row of W1 belongs to an input dimension, not to a user), and
#   putting it in with the embedding rows would let its much larger gradients dominate nothing
#   (each row has its own softmax anyway). EW's result is the plain sum either way.
# * Task-wise baselines (RLW, GradDrop, PCGrad, GradVac, CAGrad, Aligned-MTL, Nash-MTL) treat
#   all shared parameters as one vector, as in LibMTL: the embedding rows and every dense
#   parameter are concatenated per task into one [T, D] matrix and combined once, so their task
#   weights and projections account for the weights too.

ENCODER_STREAM = 1 << 20  # random stream of the encoder's training noise (tasks use 0 .. T-1)


def combine_encoder_gradients(combiner: Combiner, ctx: StepContext, rows0, G0, dense: dict):
    """Combine per-task gradients on E's rows (``G0 [T, R0, d]``) and dense parameters
    (``dense[name] [T, *shape]``, leading axis = layers) into one gradient each: returns
    ``(g0 [R0, d], {name: [*shape]})``. ``ctx.rows`` is set to ``rows0``."""
    from ..combiners.taskwise import TaskwiseCombiner

    T = G0.shape[0]
    ctx.rows = rows0
    if not dense:
        return combiner(G0, ctx), {}
    if isinstance(combiner, TaskwiseCombiner):
        parts = [G0.reshape(T, -1)] + [g.reshape(T, -1) for g in dense.values()]
        flat = np.concatenate(parts, axis=1)[:, None, :]
        g = combiner(flat, ctx).reshape(-1)
        out, o = {}, G0.shape[1] * G0.shape[2]
        g0 = g[:o].reshape(G0.shape[1:])
        for name, gp in dense.items():
            n = gp[0].size
            out[name] = g[o:o + n].reshape(gp.shape[1:])
            o += n
        return g0, out
    out = {}
    for name, gp in dense.items():  # one "row" per layer's matrix / bias
        pctx = StepContext(epoch=ctx.epoch, step=ctx.step, rng=ctx.rng, rows=None, n_users=0)
        Gp = np.ascontiguousarray(gp.reshape(T, gp.shape[1], -1))
        out[name] = combiner(Gp, pctx).reshape(gp.shape[1:])
    ctx.rows = rows0  # the embedding rows last: ``last_weights`` of PMTRec are theirs
    return combiner(G0, ctx), out


def graph_train_step(encoder, tasks, batch, combiner: Combiner, adam: Adam, dense_adams: dict,
                     ctx: StepContext, seed: int, ws: StepWorkspace, penalty=None):
    """One step of a graph encoder (LightGCN, NGCF); returns the per-task mean losses and pair
    counts. ``ws`` is built for the encoder's output width; ``dense_adams[name]`` updates
    ``encoder.dense_params()[name]``. ``penalty`` as in :func:`train_step`, on the ego rows (the
    rows of ``encoder.E``: the main task's slot rows are the same row ids in F and in E)."""
    F = encoder.forward(key=make_key(seed, ctx.epoch, ctx.step, ENCODER_STREAM), train=True)
    rows, G, losses, pairs = multitask_gradients(F, tasks, batch, seed, ctx.epoch, ctx.step, ws)
    check_task_gradients(tasks, losses, G, ctx)
    rows0, G0, dense = encoder.backward(rows, G)
    g0, gd = combine_encoder_gradients(combiner, ctx, rows0, G0, dense)
    if penalty is not None:
        rows0, g0 = penalty(encoder.E, ws, int(pairs[0]), rows0, g0)
    check_combined(combiner, ctx, g0, *gd.values())
    adam.step(rows0, g0)
    for name, g in gd.items():
        a = dense_adams[name]
        a.step(np.arange(a.E.shape[0], dtype=np.int64), g.reshape(a.E.shape))
    return losses, pairs
