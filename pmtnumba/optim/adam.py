"""Hand-written Adam for embedding tables, sparse (lazy) by default, dense as an option.

Per parameter, with the combined gradient ``g`` and weight decay added as ``g + wd * e`` (what
torch.optim.Adam's ``weight_decay`` does), at global step ``t``::

    m <- b1 m + (1 - b1) g
    v <- b2 v + (1 - b2) g^2
    e <- e - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

(the update in torch.optim.Adam's own arrangement of the bias corrections). The bias corrections
are computed in float64 once per step; the per-parameter arithmetic runs in the table's dtype, as
torch.optim.Adam does (float32 in training: the vectorised ``sqrt`` and division, which bound
this kernel, then handle twice as many lanes).

Sparse mode updates only the rows R a step touched (their moments decay only when touched;
``t`` is the global step count). Dense mode updates every row every step as PyTorch's Adam does
on a dense embedding gradient: untouched rows see ``g = wd * e`` and their moments keep decaying.
The update of each row is independent, so both kernels are parallel over rows and race-free.

Memory layout. A sparse step reads and writes rows scattered over the table, so its cost is mostly
waiting for memory. Two things hide it: the moments of a row are kept together, ``m`` then ``v``
in one row of ``MV [N, 2d]`` (``M`` and ``V`` are views of its two halves), so a row's update
touches two places in memory instead of three; and the kernel prefetches the rows a few
iterations ahead. The row update works on 1-D views of the row, which LLVM vectorises (indexing
the 2-D arrays directly did not vectorise once the moments were interleaved). Timings:
benchmarks/README.md, "Kernel design measurements". (Putting ``E`` into the same block
would gain a little more, but ``E`` belongs to the encoder and is used everywhere as a plain
[N, d] array.)
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..jitshare import shared_jit
from ..fmath import fsqrt
from ..prefetch import PREFETCH_AHEAD, prefetch_row


@shared_jit(inline="always")
def _adam_row(E, MV, r, g, gk, lr_t, b1, c1, b2, c2, eps, bc2_sqrt, wd):
    """Update row ``r`` of E and of the moments ``MV[r] = [m | v]`` with gradient row ``g[gk]``
    (or zero when gk < 0). ``c1 = 1 - b1``, ``c2 = 1 - b2``. The arithmetic runs in the dtype of
    the scalars the caller passes (the table's: float32 in training, as torch.optim.Adam does on
    float32 parameters; float64 for a float64 table). Works on 1-D views of the row: indexing the
    2-D arrays directly (with the ``d + c`` offset of v) kept LLVM from vectorising the loop (4x
    slower)."""
    d = E.shape[1]
    e_r = E[r]
    m_r = MV[r, :d]
    v_r = MV[r, d:]
    if gk >= 0:
        g_r = g[gk]
        for c in range(d):
            e = e_r[c]
            gc = wd * e + g_r[c]
            m = b1 * m_r[c] + c1 * gc
            v = b2 * v_r[c] + c2 * gc * gc
            m_r[c] = m
            v_r[c] = v
            e_r[c] = e - lr_t * m / (fsqrt(v) / bc2_sqrt + eps)
    else:
        for c in range(d):
            e = e_r[c]
            gc = wd * e
            m = b1 * m_r[c] + c1 * gc
            v = b2 * v_r[c] + c2 * gc * gc
            m_r[c] = m
            v_r[c] = v
            e_r[c] = e - lr_t * m / (fsqrt(v) / bc2_sqrt + eps)


@njit(parallel=True, cache=True)
def adam_sparse_kernel(E, MV, rows, g, lr_t, b1, c1, b2, c2, eps, bc2_sqrt, wd):
    """Lazy Adam on the rows ``rows`` (distinct) with gradients ``g[k]`` for ``rows[k]``.

    The rows are scattered over the table, so the ones a few iterations ahead are prefetched.
    """
    n = rows.shape[0]
    for k in prange(n):
        if k + PREFETCH_AHEAD < n:
            prefetch_row(E, rows[k + PREFETCH_AHEAD])
            prefetch_row(MV, rows[k + PREFETCH_AHEAD])
        _adam_row(E, MV, rows[k], g, k, lr_t, b1, c1, b2, c2, eps, bc2_sqrt, wd)


@njit(parallel=True, cache=True)
def adam_dense_kernel(E, MV, local, g, lr_t, b1, c1, b2, c2, eps, bc2_sqrt, wd):
    """Adam on every row; ``local[r]`` is the row's index in ``g`` or -1 (zero gradient)."""
    for r in prange(E.shape[0]):
        _adam_row(E, MV, r, g, local[r], lr_t, b1, c1, b2, c2, eps, bc2_sqrt, wd)


class Adam:
    """Adam over one embedding table ``E`` (updated in place).

    Parameters: ``lr``, ``betas=(0.9, 0.999)``, ``eps=1e-8``, ``weight_decay=0``,
    ``mode='sparse'|'dense'``.
    """

    def __init__(self, E: np.ndarray, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, mode: str = "sparse"):
        if mode not in ("sparse", "dense"):
            raise ValueError(f"Adam mode must be 'sparse' or 'dense', got {mode!r}")
        if lr <= 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        if weight_decay < 0:
            raise ValueError(f"weight decay must be >= 0, got {weight_decay}")
        self.E = E
        d = E.shape[1]
        self.MV = np.zeros((E.shape[0], 2 * d), E.dtype)  # row r: [m_r | v_r]
        self.M = self.MV[:, :d]  # [N, d] views of the two moments
        self.V = self.MV[:, d:]
        self.lr = float(lr)
        self.b1, self.b2 = float(betas[0]), float(betas[1])
        self.eps = float(eps)
        self.wd = float(weight_decay)
        self.mode = mode
        self.t = 0

    def next_args(self) -> tuple:
        """Count one more step and return the update kernels' scalars for it, in the table's dtype
        (the update's arithmetic runs in it): ``(lr / (1 - b1^t), b1, 1 - b1, b2, 1 - b2, eps,
        sqrt(1 - b2^t), wd)``. The CPU step and the device twins (optim/adam_cuda.py) share it."""
        self.t += 1
        bc1 = 1.0 - self.b1 ** self.t
        bc2_sqrt = math.sqrt(1.0 - self.b2 ** self.t)
        f = self.E.dtype.type
        return (f(self.lr / bc1), f(self.b1), f(1.0 - self.b1), f(self.b2), f(1.0 - self.b2), f(self.eps),
                f(bc2_sqrt), f(self.wd))

    def step(self, rows: np.ndarray, g: np.ndarray) -> None:
        """Apply gradient rows ``g [len(rows), d]`` for the distinct rows ``rows``."""
        args = self.next_args()
        g = np.ascontiguousarray(g, dtype=self.E.dtype)
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        if self.mode == "sparse":
            adam_sparse_kernel(self.E, self.MV, rows, g, *args)
        else:
            local = np.full(self.E.shape[0], -1, np.int64)
            local[rows] = np.arange(rows.shape[0])
            adam_dense_kernel(self.E, self.MV, local, g, *args)

    def state_dict(self) -> dict:
        return {"adam_m": self.M, "adam_v": self.V, "adam_t": np.int64(self.t)}

    def load_state_dict(self, state: dict) -> None:
        self.M[...] = state["adam_m"]
        self.V[...] = state["adam_v"]
        self.t = int(state["adam_t"])
