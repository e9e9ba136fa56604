"""CUDA twins of :mod:`pmtnumba.combiners.gram`: the Gram matrix and the weighted sum on the device.

The task-wise baselines that are a combination ``g = sum_t w_t G[t]`` (PCGrad, GradVac, CAGrad,
Aligned-MTL, Nash-MTL, RLW) need only the T x T Gram matrix ``A = G G^T`` of the step's flattened
gradients ``G`` [T, D] (D = R * d) to find ``w``. On the GPU the step builds ``A`` here, copies the
T x T matrix (nothing of size D) to the host, where the method's own ``task_weights`` solves the
tiny problem (the same code as the CPU path), and sends the T weights back for
:func:`weighted_sum_cuda`. RLW skips the Gram matrix.

Fixed-order reduction, no atomics: ``A[i, j]`` for ``j >= i`` is

    part[p, i, j] = sum over q = p, p + P, p + 2P, ... < D of G[i, q] * G[j, q]     (float64, q ascending)
    then the P partials are added in chunks of ``CHUNK`` consecutive p, in p order, and the chunk
    sums again in chunks, until one value is left

with ``P = min(GRAM_PARTS, S * d)`` partials (S the slot bound: a thread p >= D adds nothing, so the
bits do not depend on S). Thread ``p`` reads coordinates ``p, p + P, ...``: neighbouring threads read
neighbouring addresses. The association differs from the CPU kernel's (blocks of 16384 coordinates
summed left to right): ``A`` agrees in float64 up to rounding (relative ~1e-16 times the condition
of the sum), and the GPU may fuse the multiply-adds. Two GPU runs give the same bits.

:func:`weighted_sum_cuda` is one thread per coordinate with :func:`~.gram.weighted_entry`, the
CPU kernel's own per-coordinate function (tasks added in order in float64, then rounded to G's
dtype), so ``g`` differs from the CPU's only through ``w`` and a fused multiply-add.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from ..scan_cuda import THREADS, blocks
from .gram import weighted_entry
from .pmtrec_cuda import MAX_TASKS

#: partial sums per Gram entry: enough threads to keep a GPU's memory busy, fixed for the bits
GRAM_PARTS = 65536
#: consecutive partials added per thread in each later reduction round
CHUNK = 256


@cuda.jit
def gram_parts_cuda(G2, R_dev, d, P, part):
    """``part[p, i, j]`` (j >= i; zero for j < i) for the launch grid (p, i); D = R * d."""
    p, i = cuda.grid(2)
    T = G2.shape[0]
    if p < P and i < T:
        D = R_dev[0] * d
        acc = cuda.local.array(MAX_TASKS, np.float64)
        for j in range(T):
            acc[j] = 0.0
        q = p
        while q < D:
            gi = np.float64(G2[i, q])
            for j in range(i, T):
                acc[j] += gi * np.float64(G2[j, q])
            q += P
        for j in range(T):
            part[p, i, j] = acc[j] if j >= i else 0.0


@cuda.jit
def sum_chunks_cuda(src, n, chunk, dst):
    """``dst[c, m] = src[c * chunk, m] + src[c * chunk + 1, m] + ...`` (rows below ``n``, in order)."""
    c, m = cuda.grid(2)
    if c * chunk < n and m < src.shape[1]:
        hi = min(c * chunk + chunk, n)
        acc = 0.0
        for r in range(c * chunk, hi):
            acc += src[r, m]
        dst[c, m] = acc


@cuda.jit
def weighted_sum_cuda(G2, w, R_dev, d, out):
    """``out[q] = sum_t w[t] G2[t, q]`` for q < R * d (out is g's flat [S * d] view)."""
    q = cuda.grid(1)
    if q < R_dev[0] * d:
        out[q] = weighted_entry(G2, w, q)


class GramWorkspace:
    """Device buffers of the Gram reduction for flattened gradients of at most ``n_coords`` = S * d."""

    def __init__(self, T: int, n_coords: int):
        if T > MAX_TASKS:
            raise ValueError(f"the device Gram matrix supports at most {MAX_TASKS} tasks, got {T}")
        self.T = T
        self.P = max(1, min(GRAM_PARTS, int(n_coords)))
        self.sizes = [self.P]
        while self.sizes[-1] > 1:
            self.sizes.append((self.sizes[-1] + CHUNK - 1) // CHUNK)
        self.bufs = [cuda.device_array((n, T * T), np.float64) for n in self.sizes]
        self.w = cuda.device_array(T, np.float64)

    def gram(self, G2, R_dev, d: int) -> np.ndarray:
        """``A`` (float64 [T, T], on the host) of ``G2[:, :R * d]``; R is read on the device."""
        T, P = self.T, self.P
        part = self.bufs[0].reshape(P, T, T)
        gram_parts_cuda[(blocks(P), T), (THREADS, 1)](G2, R_dev, d, P, part)
        for a, b in zip(self.bufs[:-1], self.bufs[1:]):
            n = a.shape[0]
            sum_chunks_cuda[(blocks(b.shape[0]), T * T), (THREADS, 1)](a, n, CHUNK, b)
        up = self.bufs[-1].copy_to_host().reshape(T, T)  # the one copy: T x T numbers
        return np.triu(up) + np.triu(up, 1).T

    def weighted_sum(self, G2, w: np.ndarray, R_dev, d: int, out) -> None:
        """``out[:R * d] = sum_t w[t] G2[t, :R * d]`` on the device (``w``, T numbers, goes down)."""
        self.w.copy_to_device(np.ascontiguousarray(w, np.float64))
        weighted_sum_cuda[blocks(G2.shape[1]), THREADS](G2, self.w, R_dev, d, out)


def ptx_signatures():
    """(kernel, signature) pairs for tests/cuda_ptx_check.py."""
    G2, i64, f64 = "float32[:, ::1]", "int64[::1]", "float64[::1]"
    return [
        (gram_parts_cuda, f"void({G2}, {i64}, int64, int64, float64[:, :, ::1])"),
        (sum_chunks_cuda, "void(float64[:, ::1], int64, int64, float64[:, ::1])"),
        (weighted_sum_cuda, f"void({G2}, {f64}, {i64}, int64, float32[::1])"),
    ]
