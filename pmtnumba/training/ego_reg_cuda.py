"""CUDA twin of :mod:`pmtnumba.training.ego_reg`: the published ego-embedding L2 (``--reg``) on
the GPU, added to the combined gradient after the combiner, as on the CPU.

The math per row is :func:`~pmtnumba.training.ego_reg.ego_reg_row`, shared with the CPU kernel.
What differs is how a target row finds its count: the CPU binary-searches each slot's row among
the ascending targets; here each main-task slot adds 1 to ``counts[row]`` (an integer atomic: the
sum does not depend on the order, so the result is deterministic), each target row reads its
count, and the slots set their rows' counts back to 0 after the step (no O(N) clear).

A slot row that is not among the target rows (a graph encoder's ego row whose propagated gradient
is exactly zero; never with MF, whose target rows are the slots' rows) is found by
:func:`ego_reg_check_cuda`. For a graph encoder the step reads that count back and, in that rare
case, adds the penalty on the host with :func:`~pmtnumba.training.ego_reg.add_ego_reg`, which
merges the missing rows in, exactly as the CPU step does.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from ..scan_cuda import THREADS, blocks
from .ego_reg import add_ego_reg, ego_reg_row


@cuda.jit
def ego_reg_count_cuda(slot_rows, lo, hi, counts):
    """``counts[r] += 1`` for every used slot ``s`` in ``[lo, hi)`` with row ``r``."""
    s = lo + cuda.grid(1)
    if s < hi:
        r = slot_rows[s]
        if r >= 0:
            cuda.atomic.add(counts, r, 1)


@cuda.jit
def ego_reg_clear_cuda(slot_rows, lo, hi, counts):
    """Back to all-zero counts: every writer of a row writes the same 0."""
    s = lo + cuda.grid(1)
    if s < hi:
        r = slot_rows[s]
        if r >= 0:
            counts[r] = 0


@cuda.jit
def ego_reg_check_cuda(rows, R_dev, counts, slot_rows, lo, hi, info, at):
    """``info[at + 1]`` = used slots whose row is not among ``rows[:R]`` (one thread)."""
    if cuda.grid(1) == 0:
        matched = 0
        for k in range(R_dev[0]):
            matched += counts[rows[k]]
        used = 0
        for s in range(lo, hi):
            if slot_rows[s] >= 0:
                used += 1
        info[at + 1] = used - matched


@cuda.jit
def ego_reg_apply_cuda(E, rows, R_dev, counts, reg, info, at_n, g, loss_rows):
    """Row ``k < R``: ``g[k] += (reg / n) * count * E[rows[k]]`` and its loss share, ``n`` the
    main task's triplets (``info[at_n]``); one thread per row, so no two threads write the same row."""
    k = cuda.grid(1)
    if k < R_dev[0]:
        r = rows[k]
        c = counts[r]
        loss_rows[k] = ego_reg_row(E, r, reg / info[at_n] * c, g, k) if c else 0.0


@cuda.jit
def ego_reg_sum_cuda(loss_rows, R_dev, info, at):
    """``info[at]`` = the penalty: the rows' shares summed in row order (one thread)."""
    if cuda.grid(1) == 0:
        s = 0.0
        for k in range(R_dev[0]):
            s += loss_rows[k]
        info[at] = s


class EgoRegDevice:
    """The penalty in :class:`~.step_cuda.CudaStep`: device buffers for ``N`` rows and ``M``
    target rows, for the main task's slots ``[lo, hi)``; ``reg`` the coefficient."""

    def __init__(self, reg: float, N: int, M: int, lo: int, hi: int):
        self.reg = float(reg)
        self.lo, self.hi = int(lo), int(hi)
        self.counts = cuda.to_device(np.zeros(N, np.int64))
        self.loss_rows = cuda.device_array(max(M, 1), np.float64)

    def __call__(self, E, slot_rows, rows, R_dev, g, info, at_n, at, may_miss: bool):
        """Add the penalty to ``g[:R]`` on the rows ``rows[:R]``; ``info[at]`` gets its value,
        ``info[at + 1]`` the slot rows that were missing (0 after a host merge). With
        ``may_miss`` (a graph encoder) the missing count is read back and, if nonzero, the host
        merges those rows in: ``rows``, ``g`` and ``R_dev`` are then updated in place (their
        capacity is every row)."""
        lo, hi = self.lo, self.hi
        nslots = blocks(max(hi - lo, 1))
        ego_reg_count_cuda[nslots, THREADS](slot_rows, lo, hi, self.counts)
        ego_reg_check_cuda[1, 1](rows, R_dev, self.counts, slot_rows, lo, hi, info, at)
        if may_miss and int(info[at + 1:at + 2].copy_to_host()[0]):
            self._on_host(E, slot_rows, rows, R_dev, g, info, at_n, at)
        else:
            M = g.shape[0]
            ego_reg_apply_cuda[blocks(M), THREADS](E, rows, R_dev, self.counts, self.reg, info, at_n, g,
                                                   self.loss_rows)
            ego_reg_sum_cuda[1, 1](self.loss_rows, R_dev, info, at)
        ego_reg_clear_cuda[nslots, THREADS](slot_rows, lo, hi, self.counts)

    def _on_host(self, E, slot_rows, rows, R_dev, g, info, at_n, at):
        """The rare merge: the CPU's :func:`add_ego_reg` on copies, uploaded back."""
        R = int(R_dev.copy_to_host()[0])
        h_info = info.copy_to_host()
        rows_h, g_h = rows[:R].copy_to_host(), g[:R].copy_to_host()
        rows_h, g_h, loss = add_ego_reg(E.copy_to_host(), self.reg, slot_rows[self.lo:self.hi].copy_to_host(),
                                        int(h_info[at_n]), rows_h, g_h)
        R = rows_h.shape[0]
        rows[:R].copy_to_device(rows_h)
        g[:R].copy_to_device(np.ascontiguousarray(g_h, dtype=g.dtype))
        R_dev.copy_to_device(np.array([R], R_dev.dtype))
        h_info[at], h_info[at + 1] = loss, 0
        info.copy_to_device(h_info)


def ptx_signatures():
    """(kernel, signature) pairs for tests/cuda_ptx_check.py."""
    i64, f64, E = "int64[::1]", "float64[::1]", "float32[:, ::1]"
    return [
        (ego_reg_count_cuda, f"void({i64}, int64, int64, {i64})"),
        (ego_reg_clear_cuda, f"void({i64}, int64, int64, {i64})"),
        (ego_reg_check_cuda, f"void({i64}, {i64}, {i64}, {i64}, int64, int64, {f64}, int64)"),
        (ego_reg_apply_cuda, f"void({E}, {i64}, {i64}, {i64}, float64, {f64}, int64, {E}, {f64})"),
        (ego_reg_sum_cuda, f"void({f64}, {i64}, {f64}, int64)"),
    ]
