"""The two O(T * D) pieces every task-wise combiner needs, as Numba kernels.

The task-wise methods (PCGrad, GradVac, CAGrad, Aligned-MTL, Nash-MTL) only ever look at the
per-task gradients through their T x T Gram matrix ``A = G G^T`` and return a combination
``g = sum_t w_t G[t]``. With ``G`` of shape ``[T, D]`` (D = rows * d, hundreds of thousands)
and T = 2..4, the work splits into

- :func:`gram`           ``A = G G^T``, O(T^2 D), in float64 whatever G's dtype,
- :func:`weighted_sum`   ``g = w^T G``, O(T D), returned in G's dtype,

with all T x T algebra in NumPy in between.

Both kernels are deterministic whatever the thread count: :func:`gram` sums fixed blocks of
``BLOCK`` coordinates in parallel, each block into its own slot, then adds the slots in block
order on one thread; :func:`weighted_sum` has no reduction across coordinates at all.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..jitshare import shared_jit

#: coordinates per partial Gram block; fixed, so the summation order never depends on threads
BLOCK = 16384


@njit(parallel=True, cache=True)
def _gram_kernel(G, block):  # pragma: no cover - compiled
    T, D = G.shape
    nb = (D + block - 1) // block
    part = np.zeros((max(nb, 1), T, T), dtype=np.float64)
    for b in prange(nb):
        lo = b * block
        hi = min(lo + block, D)
        for i in range(T):
            for j in range(i, T):
                acc = 0.0
                for k in range(lo, hi):
                    acc += np.float64(G[i, k]) * np.float64(G[j, k])
                part[b, i, j] = acc
    A = np.zeros((T, T), dtype=np.float64)
    for b in range(nb):  # fixed order: bit-identical for any thread count
        for i in range(T):
            for j in range(i, T):
                A[i, j] += part[b, i, j]
    for i in range(T):
        for j in range(i):
            A[i, j] = A[j, i]
    return A


@shared_jit(inline="always")
def weighted_entry(G, w, k):
    """``sum_t w[t] * G[t, k]`` in float64, tasks in order (the CPU kernel and its CUDA twin)."""
    acc = 0.0
    for t in range(G.shape[0]):
        acc += w[t] * np.float64(G[t, k])
    return acc


@njit(parallel=True, cache=True)
def _weighted_sum_kernel(G, w, out):  # pragma: no cover - compiled
    for k in prange(G.shape[1]):
        out[k] = weighted_entry(G, w, k)


def as_task_matrix(G: np.ndarray) -> np.ndarray:
    """View ``G`` ([T, D] or [T, rows, d]) as a C-contiguous float [T, D] array (no copy if it can)."""
    G = np.asarray(G)
    if G.dtype not in (np.float32, np.float64):
        raise TypeError(f"task gradients must be float32 or float64, got {G.dtype}")
    if G.ndim < 2:
        raise ValueError(f"task gradients must have shape [T, D], got {G.shape}")
    return np.ascontiguousarray(G.reshape(G.shape[0], -1))


def gram(G: np.ndarray) -> np.ndarray:
    """Gram matrix ``A[i, j] = g_i . g_j`` of the task gradients, float64 [T, T].

    ``G`` is [T, D] (or anything :func:`as_task_matrix` accepts); products are accumulated in
    float64 in fixed blocks, so the result does not depend on the number of threads.
    """
    return _gram_kernel(as_task_matrix(G), BLOCK)


def weighted_sum(G: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``g = sum_t w[t] * G[t]`` as a [D] array of G's dtype (accumulated in float64)."""
    G2 = as_task_matrix(G)
    w = np.ascontiguousarray(w, dtype=np.float64).reshape(-1)
    if w.shape[0] != G2.shape[0]:
        raise ValueError(f"{w.shape[0]} weights for {G2.shape[0]} tasks")
    out = np.empty(G2.shape[1], dtype=G2.dtype)
    _weighted_sum_kernel(G2, w, out)
    return out
