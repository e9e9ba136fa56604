"""CUDA twins of :mod:`pmtnumba.encoders.propagate`: the normalised-adjacency product and the
row compaction of a graph encoder's gradient, on the device.

- :func:`spmm_accumulate_cuda` / :func:`scale_into_cuda`: ``out[b] = A_hat X[b]``, ``acc[b] +=
  alpha out[b]`` and ``out = alpha X`` (LightGCN); :func:`spmm_cuda` and :func:`spmm_add_cuda`:
  ``out[b] = A_hat X[b]`` and ``out[b] = add[b] + A_hat X[b]`` (NGCF). One thread per output entry ``(b, r, c)`` adds row r's
  neighbours in CSR order, accumulating in X's dtype from 0: each entry gets exactly the CPU's
  sequence of operations (the CPU kernel runs the same loop per row, vectorised over c). The GPU
  may fuse ``o + w * x`` into one multiply-add (one rounding instead of two): the only source of
  difference (docs/gpu.md).
- :func:`scatter_rows_cuda`: the zero [T, N, d] table with the step's [T, R, d] gradient at its rows.
- :func:`compact_rows_cuda`: the rows with any nonzero entry (ascending, via an integer prefix sum)
  and their gradients, the CPU's :func:`~pmtnumba.encoders.propagate.compact_rows`, with the row
  count left on the device.

The per-entry CSR loop is written here again rather than shared with propagate.py's row kernel,
whose vectorised row form the CPU needs (a shared scalar entry function would change its loop).
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from ..scan_cuda import THREADS, blocks, exclusive_scan, n_chunks


@cuda.jit(device=True)
def _entry(i, N, d):
    """The (b, r, c) of flat entry ``i`` of a C-ordered [B, N, d] array."""
    b = i // (N * d)
    return b, (i // d) - b * N, i - (i // d) * d


@cuda.jit(device=True)
def _row_entry(indptr, indices, data, X, b, r, c, o):
    """``o + data[p] * X[b, indices[p], c] + ...`` over row r's entries p, added in CSR order."""
    for p in range(indptr[r], indptr[r + 1]):
        o += data[p] * X[b, indices[p], c]
    return o


@cuda.jit
def spmm_accumulate_cuda(indptr, indices, data, X, out, acc, alpha, zero):
    i = cuda.grid(1)
    B, N, d = X.shape
    if i < B * N * d:
        b, r, c = _entry(i, N, d)
        o = _row_entry(indptr, indices, data, X, b, r, c, zero)
        out[b, r, c] = o
        acc[b, r, c] += alpha * o


@cuda.jit
def spmm_cuda(indptr, indices, data, X, out, zero):
    """``out[b] = A_hat X[b]`` (NGCF's ``S = L E``): :func:`~.propagate.spmm`'s loop per entry."""
    i = cuda.grid(1)
    B, N, d = X.shape
    if i < B * N * d:
        b, r, c = _entry(i, N, d)
        out[b, r, c] = _row_entry(indptr, indices, data, X, b, r, c, zero)


@cuda.jit
def spmm_add_cuda(indptr, indices, data, X, add, out):
    """``out[b] = add[b] + A_hat X[b]`` (NGCF's ``gE = acc + L gS``): :func:`~.propagate.spmm_add`'s
    order, ``add`` first, then the neighbours in CSR order (``out`` may be ``add``, not ``X``)."""
    i = cuda.grid(1)
    B, N, d = X.shape
    if i < B * N * d:
        b, r, c = _entry(i, N, d)
        out[b, r, c] = _row_entry(indptr, indices, data, X, b, r, c, add[b, r, c])


@cuda.jit
def scale_into_cuda(X, alpha, out):
    i = cuda.grid(1)
    B, N, d = X.shape
    if i < B * N * d:
        b, r, c = _entry(i, N, d)
        out[b, r, c] = alpha * X[b, r, c]


@cuda.jit
def scatter_rows_cuda(rows, G, R_dev, out):
    """``out[t, rows[k], :] = G[t, k, :]`` for k < R; ``out`` zeroed first (:func:`zero3_cuda`)."""
    i = cuda.grid(1)
    T, S, d = G.shape
    k = (i // d) % S
    if i < T * S * d and k < R_dev[0]:
        t = i // (S * d)
        c = i - (i // d) * d
        out[t, rows[k], c] = G[t, k, c]


@cuda.jit
def zero3_cuda(X):
    i = cuda.grid(1)
    B, N, d = X.shape
    if i < B * N * d:
        b, r, c = _entry(i, N, d)
        X[b, r, c] = 0


@cuda.jit
def _mark_nonzero(X, mark):
    r = cuda.grid(1)
    B, N, d = X.shape
    if r < N:
        nz = 0
        for b in range(B):
            for c in range(d):
                if X[b, r, c] != 0:
                    nz = 1
        mark[r] = nz


@cuda.jit
def _gather_marked(X, mark, pos, rows, out):
    i = cuda.grid(1)
    B, N, d = X.shape
    r = i // d
    if r < N and mark[r] != 0:
        c = i - r * d
        k = pos[r]
        if c == 0:
            rows[k] = r
        for b in range(B):
            out[b, k, c] = X[b, r, c]


class CompactWorkspace:
    """Scratch of :func:`compact_rows_cuda` for tables of ``N`` rows."""

    def __init__(self, N: int):
        self.N = int(N)
        self.mark = cuda.device_array(max(self.N, 1), np.int64)
        self.pos = cuda.device_array(self.N + 1, np.int64)
        self.sums = cuda.device_array(n_chunks(self.N) + 1, np.int64)

    @property
    def R_dev(self):
        """The number of rows kept (a one-entry device view)."""
        return self.pos[self.N:self.N + 1]


def compact_rows_cuda(X, ws: CompactWorkspace, rows, out) -> None:
    """``rows[:R]`` = the rows of ``X [B, N, d]`` with a nonzero entry (ascending) and ``out[:, :R]``
    their values; R is left in ``ws.R_dev``."""
    B, N, d = X.shape
    _mark_nonzero[blocks(N), THREADS](X, ws.mark)
    exclusive_scan(ws.mark, N, ws.pos, ws.sums)
    _gather_marked[blocks(N * d), THREADS](X, ws.mark, ws.pos, rows, out)


def ptx_signatures():
    """(kernel, signature) pairs for tests/cuda_ptx_check.py."""
    i64, X = "int64[::1]", "float32[:, :, ::1]"
    return [
        (spmm_accumulate_cuda, f"void({i64}, int32[::1], float32[::1], {X}, {X}, {X}, float32, float32)"),
        (spmm_cuda, f"void({i64}, int32[::1], float32[::1], {X}, {X}, float32)"),
        (spmm_add_cuda, f"void({i64}, int32[::1], float32[::1], {X}, {X}, {X})"),
        (scale_into_cuda, f"void({X}, float32, {X})"),
        (scatter_rows_cuda, f"void({i64}, {X}, {i64}, {X})"),
        (zero3_cuda, f"void({X})"),
        (_mark_nonzero, f"void({X}, {i64})"),
        (_gather_marked, f"void({X}, {i64}, {i64}, {i64}, {X})"),
    ]
