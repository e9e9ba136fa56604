"""The published LightGCN / NGCF regulariser: an L2 penalty on the batch's ego embeddings.

The official LightGCN and NGCF code add to the BPR loss of a batch of ``B`` triplets ``(u, i, j)``

    L_reg = reg * 0.5 * sum_{s=1..B} (||e_u_s||^2 + ||e_i_s||^2 + ||e_j_s||^2) / B

where ``e`` are the *layer-0 (ego) embeddings*, the rows of the parameter table ``E`` (for MF
the embeddings themselves), and ``reg`` their ``decay`` (1e-4 in LightGCN's Gowalla setting).
A row that occurs ``count_r`` times among the batch's ``3B`` rows contributes
``count_r * 0.5 * ||e_r||^2``, so (docs/gradients.md, section 12)

    dL_reg / de_r = reg * count_r * e_r / B

nonzero only on the batch's own rows: unlike Adam's weight decay (``--wd``), which on a graph
encoder reaches nearly every row every step (the backward pass touches every row within K hops),
it shrinks only the rows the batch used, by how often it used them.

Where it enters: *after the combiner*, added to the combined gradient of the ego rows, like a
penalty (the way ``--wd`` is added, but inside the loss and only on the batch's rows). Not into the
BPR task's gradient ``G[bpr]`` before the combiner, because PMTRec weighs tasks per row by their
gradient norms: a penalty mixed into one task's gradient would change that task's norm on every
row it touches and so the weights of the other tasks, and it would be scaled by whatever weight
the combiner gives BPR. Added after, the per-row task norms stay the tasks' own, the penalty has
the same strength for every method, and with one task and EW the step is exactly the gradient of
the published loss ``L_bpr + L_reg``. The rows and counts are those of the main task's slots (BPR
writes ``u, i, j`` per triplet into three slots), so ``j`` is the negative BPR drew.

Race-free and deterministic: :func:`ego_reg_counts` (serial, O(3B log R)) counts each target row's
occurrences among the slots; :func:`ego_reg_apply` (parallel over target rows) adds each row's own
term and writes its own loss share, summed afterwards in row order, so the result is bit-identical
for any number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..jitshare import shared_jit


@shared_jit(inline="always")
def ego_reg_row(E, r, w, g, k):
    """One target row: ``g[k] += w * E[r]``; returns its loss share ``0.5 * w * ||E[r]||^2``
    (float64), with ``w = reg * count_r / B``. Shared by :func:`ego_reg_apply` and its CUDA twin
    (``ego_reg_cuda.py``)."""
    sq = 0.0
    for j in range(E.shape[1]):
        x = np.float64(E[r, j])
        sq += x * x
        g[k, j] += w * x
    return 0.5 * w * sq


@njit(cache=True)
def ego_reg_counts(target_rows, slot_rows, counts):
    """``counts[k]`` = occurrences of ``target_rows[k]`` among ``slot_rows`` (negative slots are
    unused and skipped). ``target_rows`` is ascending and distinct. Returns how many slot rows are
    not among the targets (their occurrences are not counted)."""
    for k in range(counts.shape[0]):
        counts[k] = 0
    missing = 0
    R = target_rows.shape[0]
    for s in range(slot_rows.shape[0]):
        r = slot_rows[s]
        if r < 0:
            continue
        k = np.searchsorted(target_rows, r)
        if k < R and target_rows[k] == r:
            counts[k] += 1
        else:
            missing += 1
    return missing


@njit(parallel=True, cache=True)
def ego_reg_apply(E, target_rows, counts, coef, g, loss_rows):
    """``g[k] += coef * counts[k] * E[target_rows[k]]`` and ``loss_rows[k] = 0.5 * coef *
    counts[k] * ||E[target_rows[k]]||^2`` (float64) for every target row; ``coef = reg / B``.
    Parallel over rows, one row per iteration: no two iterations write the same memory."""
    for k in prange(target_rows.shape[0]):
        c = counts[k]
        loss_rows[k] = ego_reg_row(E, target_rows[k], coef * c, g, k) if c else 0.0


def add_ego_reg(E, reg: float, slot_rows, n_triplets: int, rows, g):
    """Add the penalty of the triplets whose rows are ``slot_rows`` (negative: unused) to the
    combined gradient ``g [R, d]`` of the ascending rows ``rows``; return ``(rows, g, loss)``.

    ``rows``/``g`` come back unchanged in shape (``g`` updated in place) when every slot row is
    among ``rows``, which is always the case with MF (the slots' rows are the step's rows). A graph
    encoder's ego rows are those with a nonzero propagated gradient; a batch row whose propagated
    gradient is exactly zero is then added (a merged row list and a new ``g``)."""
    slot_rows = np.ascontiguousarray(slot_rows, dtype=np.int64)
    counts = np.empty(rows.shape[0], np.int64)
    if ego_reg_counts(rows, slot_rows, counts):
        used = slot_rows[slot_rows >= 0]
        merged = np.union1d(rows, used)
        g2 = np.zeros((merged.shape[0], g.shape[1]), g.dtype)
        g2[np.searchsorted(merged, rows)] = g
        rows, g = merged, g2
        counts = np.empty(rows.shape[0], np.int64)
        ego_reg_counts(rows, slot_rows, counts)
    loss_rows = np.empty(rows.shape[0], np.float64)
    ego_reg_apply(E, rows, counts, float(reg) / n_triplets, g, loss_rows)
    return rows, g, float(loss_rows.sum())


def ego_reg_loss_grad(E, a, b, c, reg: float):
    """The penalty of explicit triplets ``(a, b, c)`` (row ids) as a pure function:
    ``(loss, rows, grads)`` with ``rows`` the distinct rows (ascending) and ``grads[k] =
    dL_reg / dE[rows[k]]``, for checks against finite differences."""
    slots = np.ascontiguousarray(np.stack([a, b, c], axis=1).reshape(-1), dtype=np.int64)
    rows = np.unique(slots)
    g = np.zeros((rows.shape[0], E.shape[1]), E.dtype)
    rows, g, loss = add_ego_reg(np.ascontiguousarray(E), reg, slots, len(a), rows, g)
    return loss, rows, g


class EgoReg:
    """The penalty as the training step uses it: ``reg`` its coefficient; ``loss`` the last step's
    value (reported per epoch as ``loss_reg``)."""

    def __init__(self, reg: float):
        self.reg = float(reg)
        self.loss = 0.0

    def __call__(self, E, ws, n_triplets: int, rows, g):
        """Add the penalty of the main task's triplets (task 0's slots in the step workspace
        ``ws``, ``n_triplets`` of them) to ``g``; returns ``(rows, g)`` as :func:`add_ego_reg`."""
        lo, hi = int(ws.offsets[0]), int(ws.offsets[1])
        rows, g, self.loss = add_ego_reg(E, self.reg, ws.slot_rows[lo:hi], n_triplets, rows, g)
        return rows, g
