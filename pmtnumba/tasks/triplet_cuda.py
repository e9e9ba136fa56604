"""CUDA twin of :func:`pmtnumba.tasks.triplet.triplet_slots`: one thread per triplet calls the
same :func:`~pmtnumba.tasks.triplet.triplet_sample` and writes the same three slots ``3s..3s+2``.

The triplet count lives on the device (``n_dev[0]``: link tasks learn it from their compaction),
so the scale ``1/n`` is formed in the kernel, as the CPU forms it on the host.
"""

from __future__ import annotations

from numba import cuda

from .triplet import triplet_sample


@cuda.jit
def triplet_slots_cuda(E, a, b, c, n_dev, out_rows, out_grads, out_loss):
    s = cuda.grid(1)
    n = n_dev[0]
    if s < n:
        out_loss[s] = triplet_sample(E, a[s], b[s], c[s], 1.0 / n, 3 * s, out_rows, out_grads)
