"""CUDA twin of :class:`pmtnumba.combiners.base.EW`: ``g[k] = sum_t G[t, k]``.

One thread per ``(row, column)`` adds the tasks in order 0..T-1 in G's dtype, starting from task
0's value: the additions NumPy's ``G.sum(axis=0)`` makes on the CPU (no multiply, so no FMA: the
same bits).
"""

from __future__ import annotations

from numba import cuda
from ..jitshare import shared_jit


@shared_jit(inline="always")
def ew_entry(G, k, c):
    """``G[0, k, c] + G[1, k, c] + ...`` added in task order."""
    acc = G[0, k, c]
    for t in range(1, G.shape[0]):
        acc += G[t, k, c]
    return acc


@cuda.jit
def ew_cuda(G, R_dev, out):
    i = cuda.grid(1)
    d = G.shape[2]
    k = i // d
    c = i - k * d
    if k < R_dev[0]:
        out[k, c] = ew_entry(G, k, c)
