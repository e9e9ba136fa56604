"""CUDA twins of the DirectAU kernels of :mod:`pmtnumba.tasks.align_uniform`.

=============================== ====================================== ==========================
CPU kernel                      CUDA twin                              shared function
=============================== ====================================== ==========================
``align_slots``                 :func:`align_slots_cuda`               ``align_pair``
``normalized_rows``             :func:`normalized_rows_cuda`           ``normalize_row``
``uniformity_rows``             :func:`uniformity_rows_cuda`           ``gram_weight``, ``exp_neg``
``normalize_backward_slots``    :func:`normalize_backward_slots_cuda`  ``normalize_backward_row``
``np.unique`` of the batch rows :func:`unique_rows_cuda`               (mark + prefix sum: sorted)
=============================== ====================================== ==========================

The uniformity kernel is the O(m^2 d) part: one thread per row ``a`` sums over ``b`` in index
order, the rows ``b`` read in tiles through shared memory by the whole block; no float atomics.
It shares the CPU's weight formula and exp (``gram_weight``, ``exp_neg``) but runs them in float64
on the float64 normalised rows, where the CPU tile kernel computes the weights in E's precision
(float32: about 1e-6 relative) and sums them tile by tile (docs/gpu.md). ``Z`` is then one thread's left-to-right sum of the row sums (the CPU uses
NumPy's pairwise sum: the last bits may differ for m > 8; docs/gpu.md). Counts (unique rows)
stay on the device; slot offsets are read from device scalars.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ..scan_cuda import THREADS, blocks, exclusive_scan
from .align_uniform import align_pair, exp_consts, exp_tuple, gram_weight, normalize_backward_row, normalize_row

MAX_DIM = 128  # embedding width the uniformity kernel supports (a thread's accumulator)
TILE = 32  # rows b per shared-memory tile
EXP64 = exp_consts(np.float64)  # exp_neg's constants (a constant array in the kernel)


@cuda.jit
def align_slots_cuda(E, u, i, n_dev, eps, out_rows, out_grads, out_loss):
    p = cuda.grid(1)
    n = n_dev[0]
    if p < n:
        out_loss[p] = align_pair(E, u[p], i[p], 1.0 / n, eps, 2 * p, out_rows, out_grads)


@cuda.jit
def _mark_rows(rows, n_dev, flag):
    s = cuda.grid(1)
    if s < n_dev[0]:
        flag[rows[s]] = 1


@cuda.jit
def _list_and_count(flag, pos, out, m_dev):
    r = cuda.grid(1)
    if r < flag.shape[0] and flag[r] != 0:
        out[pos[r]] = r
    if r == 0:
        m_dev[0] = pos[flag.shape[0]]


@cuda.jit
def _clear_rows(rows, m_dev, flag):
    a = cuda.grid(1)
    if a < m_dev[0]:
        flag[rows[a]] = 0


def unique_rows_cuda(rows, n_dev, flag, pos, sums, out, m_dev) -> None:
    """``out[:m]`` = the distinct values of ``rows[:n]`` ascending (``np.unique``), ``m_dev[0] = m``.
    ``flag`` (int64 [N], all zero; left zero), ``pos`` (int64 [N + 1]), ``sums``: scratch."""
    N = flag.shape[0]
    _mark_rows[blocks(rows.shape[0]), THREADS](rows, n_dev, flag)
    exclusive_scan(flag, N, pos, sums)
    _list_and_count[blocks(N), THREADS](flag, pos, out, m_dev)
    _clear_rows[blocks(rows.shape[0]), THREADS](out, m_dev, flag)


@cuda.jit
def normalized_rows_cuda(E, rows, m_dev, eps, out):
    a = cuda.grid(1)
    if a < m_dev[0]:
        normalize_row(E, rows[a], eps, out, a)


@cuda.jit
def uniformity_rows_cuda(N, m_dev, out_rowsum, out_acc):
    """``out_rowsum[a] = sum_{b != a} w_ab``, ``out_acc[a] = rowsum * n_a - sum_{b != a} w_ab n_b``,
    ``w_ab = gram_weight(n_a . n_b, ||n_a||^2, ||n_b||^2)`` (the CPU tile kernel's weight formula and
    exp, here in float64; b in index order). Launch with ``THREADS`` threads per block;
    ``d <= MAX_DIM``."""
    tile = cuda.shared.array((TILE, MAX_DIM), np.float64)
    stile = cuda.shared.array(TILE, np.float64)
    k = exp_tuple(EXP64)
    m = m_dev[0]
    d = N.shape[1]
    a = cuda.grid(1)
    tx = cuda.threadIdx.x
    acc = cuda.local.array(MAX_DIM, np.float64)
    for q in range(d):
        acc[q] = 0.0
    sa = 0.0
    if a < m:
        for q in range(d):
            sa += N[a, q] * N[a, q]
    rs = 0.0
    for b0 in range(0, m, TILE):
        cuda.syncthreads()
        for j in range(tx, TILE * d, cuda.blockDim.x):  # the block loads rows b0 .. b0+TILE-1
            bb = j // d
            kk = j - bb * d
            if b0 + bb < m:
                tile[bb, kk] = N[b0 + bb, kk]
        cuda.syncthreads()
        for bb in range(tx, TILE, cuda.blockDim.x):
            sb = 0.0
            if b0 + bb < m:
                for q in range(d):
                    sb += tile[bb, q] * tile[bb, q]
            stile[bb] = sb
        cuda.syncthreads()
        if a < m:
            for bb in range(min(TILE, m - b0)):
                b = b0 + bb
                if b == a:
                    continue
                g = 0.0
                for q in range(d):
                    g += N[a, q] * tile[bb, q]
                w = gram_weight(g, sa, stile[bb], k)
                rs += w
                for q in range(d):
                    acc[q] += w * tile[bb, q]
    if a < m:
        out_rowsum[a] = rs
        for q in range(d):
            out_acc[a, q] = rs * N[a, q] - acc[q]


@cuda.jit
def _uniformity_scalars(rowsum, m_dev, weight, scal):
    """``scal = [unif, coef, slots]``: ``unif = log Z - log P``, ``coef = -4 weight / Z`` with
    ``Z = sum_a rowsum[a] / 2`` (left to right); no slot and 0 when fewer than 2 rows."""
    if cuda.grid(1) == 0:
        m = m_dev[0]
        if m < 2:
            scal[0] = 0.0
            scal[1] = 0.0
            scal[2] = 0
        else:
            Z = 0.0
            for a in range(m):
                Z += rowsum[a]
            Z = Z / 2.0
            P = m * (m - 1) / 2.0
            scal[0] = math.log(Z) - math.log(P)
            scal[1] = -4.0 * weight / Z
            scal[2] = m


@cuda.jit
def _slot_offsets(n_dev, su, offs):
    """First slot of the user uniformity term (``2n``) and of the item term (``2n + m_u``)."""
    if cuda.grid(1) == 0:
        offs[0] = 2 * n_dev[0]
        offs[1] = 2 * n_dev[0] + np.int64(su[2])


@cuda.jit
def normalize_backward_slots_cuda(E, rows, Gn, scal, eps, offs, j, out_rows, out_grads):
    """Slots ``offs[j] + a`` for the first ``scal[2]`` rows: ``coef Gn[a]`` chained through the
    normalisation (``coef = scal[1]``)."""
    a = cuda.grid(1)
    if a < scal[2]:
        normalize_backward_row(E, rows[a], Gn, a, scal[1], eps, offs[j] + a, out_rows, out_grads)


@cuda.jit
def _finish(loss, n_dev, gamma_half, su, si, info, t, T, rows, S_task):
    """``info[t]`` = align + w (unif_u + unif_i), ``info[T+t]`` = pairs; slots past the used ones
    (``2n + m_u + m_i``) get row -1."""
    s = cuda.grid(1)
    n = n_dev[0]
    used = 2 * n + np.int64(su[2]) + np.int64(si[2])
    if used <= s < S_task:
        rows[s] = -1
    if s == 0:
        al = 0.0
        for p in range(n):
            al += loss[p]
        al = al / n if n > 0 else 0.0
        info[t] = al + gamma_half * (su[0] + si[0])
        info[T + t] = n


def ptx_signatures():
    i64, E, f64 = "int64[::1]", "float32[:, ::1]", "float64[::1]"
    N = "float64[:, ::1]"
    return [
        (align_slots_cuda, f"void({E}, {i64}, {i64}, {i64}, float64, {i64}, {E}, {f64})"),
        (_mark_rows, f"void({i64}, {i64}, {i64})"),
        (_list_and_count, f"void({i64}, {i64}, {i64}, {i64})"),
        (_clear_rows, f"void({i64}, {i64}, {i64})"),
        (normalized_rows_cuda, f"void({E}, {i64}, {i64}, float64, {N})"),
        (uniformity_rows_cuda, f"void({N}, {i64}, {f64}, {N})"),
        (_uniformity_scalars, f"void({f64}, {i64}, float64, {f64})"),
        (_slot_offsets, f"void({i64}, {f64}, {i64})"),
        (normalize_backward_slots_cuda, f"void({E}, {i64}, {N}, {f64}, float64, {i64}, int64, {i64}, {E})"),
        (_finish, f"void({f64}, {i64}, float64, {f64}, {f64}, {f64}, int64, int64, {i64}, int64)"),
    ]
