"""CUDA twins of the sparse and dense Adam kernels: one thread per row calls the same
:func:`~pmtnumba.optim.adam._adam_row` (the moments ``MV [N, 2d]`` stay on the device)."""

from __future__ import annotations

from numba import cuda

from .adam import _adam_row


@cuda.jit
def adam_sparse_cuda(E, MV, rows, R_dev, g, lr_t, b1, c1, b2, c2, eps, bc2_sqrt, wd):
    k = cuda.grid(1)
    if k < R_dev[0]:
        _adam_row(E, MV, rows[k], g, k, lr_t, b1, c1, b2, c2, eps, bc2_sqrt, wd)


@cuda.jit
def dense_local_set_cuda(rows, R_dev, local):
    """``local[rows[k]] = k``: each touched row's index in ``g`` (``local`` is -1 elsewhere)."""
    k = cuda.grid(1)
    if k < R_dev[0]:
        local[rows[k]] = k


@cuda.jit
def dense_local_reset_cuda(rows, R_dev, local):
    """Back to all -1 after the step (O(R), not O(N))."""
    k = cuda.grid(1)
    if k < R_dev[0]:
        local[rows[k]] = -1


@cuda.jit
def adam_dense_cuda(E, MV, local, g, lr_t, b1, c1, b2, c2, eps, bc2_sqrt, wd):
    r = cuda.grid(1)
    if r < E.shape[0]:
        _adam_row(E, MV, r, g, local[r], lr_t, b1, c1, b2, c2, eps, bc2_sqrt, wd)
