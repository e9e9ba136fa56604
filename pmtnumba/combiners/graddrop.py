"""GradDrop, gradient sign dropout (Chen et al., 2020), per coordinate of the row gradients.

For every coordinate k of the flattened step gradient (docs/baselines.md):

    P_k   = 0.5 * (1 + sum_t g_tk / (sum_t |g_tk| + eps))      # sign purity, in [0, 1]
    U_k   ~ Uniform(0, 1)                                      # one draw per coordinate
    M_tk  = [P_k > U_k][g_tk > 0] + [P_k < U_k][g_tk < 0]      # keep the chosen sign
    g_k   = sum_t g_tk * (leak + (1 - leak) * M_tk)

LibMTL applies GradDrop to representation gradients weighted by sign(rep) and summed over the
batch; here the embedding rows are the representation, so it acts on each coordinate of the row
gradients directly. ``eps`` = 1e-7 is LibMTL's; note it is not scale-free: where all tasks agree
in sign but ``sum_t |g_tk|`` is tiny, P_k = s / (s + eps) stays below 1 and the coordinate is
dropped with probability ``0.5 * eps / (s + eps)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..jitshare import shared_jit

from .base import StepContext
from .gram import as_task_matrix
from .taskwise import TaskwiseCombiner, require_rng


@shared_jit(inline="always")
def graddrop_entry(G, k, u, leak, eps):
    """GradDrop's ``g_k`` for coordinate ``k`` of [T, D] gradients with its uniform draw ``u``
    (the CPU kernel and its CUDA twin, combiners/graddrop_cuda.py)."""
    s = 0.0
    sa = 0.0
    for t in range(G.shape[0]):
        v = np.float64(G[t, k])
        s += v
        sa += abs(v)
    P = 0.5 * (1.0 + s / (sa + eps))
    acc = 0.0
    for t in range(G.shape[0]):
        v = np.float64(G[t, k])
        m = 0.0
        if (P > u and v > 0.0) or (P < u and v < 0.0):
            m = 1.0
        acc += v * (leak + (1.0 - leak) * m)
    return acc


@njit(parallel=True, cache=True)
def _graddrop_kernel(G, U, leak, eps, out):  # pragma: no cover - compiled
    for k in prange(G.shape[1]):
        out[k] = graddrop_entry(G, k, U[k], leak, eps)


def graddrop_combine(G2d: np.ndarray, rng: np.random.Generator, leak: float = 0.0, eps: float = 1e-7) -> np.ndarray:
    """GradDrop on [T, D] gradients with one ``U ~ Uniform(0, 1)`` per coordinate drawn from ``rng``.

    Returns g [D] in G2d's dtype. O(T * D) in one parallel Numba pass; deterministic for a seed.
    """
    G2 = as_task_matrix(G2d)
    U = rng.random(G2.shape[1])
    out = np.empty(G2.shape[1], dtype=G2.dtype)
    _graddrop_kernel(G2, U, float(leak), float(eps), out)
    return out


class GradDrop(TaskwiseCombiner):
    """Gradient sign dropout per coordinate; ``leak`` 0 by default (LibMTL)."""

    name = "graddrop"

    def __init__(self, leak: float = 0.0, eps: float = 1e-7):
        if not 0.0 <= leak <= 1.0:
            raise ValueError(f"graddrop: leak must be in [0, 1], got {leak}")
        self.leak = float(leak)
        self.eps = float(eps)

    def combine_flat(self, G2: np.ndarray, ctx: StepContext) -> np.ndarray:
        return graddrop_combine(G2, require_rng(ctx, self.name), self.leak, self.eps)

    def config(self) -> dict:
        return {"leak": self.leak, "eps": self.eps}
