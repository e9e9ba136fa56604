"""CUDA twin of :func:`pmtnumba.tasks.rating.rating_slots`: one thread per (u, i, r) triple calls
the same :func:`~pmtnumba.tasks.rating.rating_sample` (slots ``2p`` and ``2p + 1``)."""

from __future__ import annotations

from numba import cuda

from .rating import rating_sample


@cuda.jit
def rating_slots_cuda(E, u, i, r, n_dev, out_rows, out_grads, out_loss):
    p = cuda.grid(1)
    n = n_dev[0]
    if p < n:
        out_loss[p] = rating_sample(E, u[p], i[p], r[p], 1.0 / n, 2 * p, out_rows, out_grads)
