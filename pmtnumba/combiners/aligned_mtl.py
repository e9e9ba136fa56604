"""Aligned-MTL (Senushkin et al., 2023), as in LibMTL: align the principal components of G.

With ``A = G G^T = V diag(lambda) V^T``:

    keep the eigenpairs with lambda > lambda_max * T * eps_float32       # numerical rank
    B     = sqrt(lambda_min) * V diag(lambda^-1/2) V^T                   # over the kept pairs; scale "min"
    alpha = B 1
    g     = sum_t alpha_t g_t = G^T B 1

Why: with the thin SVD ``G = V diag(sqrt(lambda)) W^T`` we get ``G^T B = sqrt(lambda_min) W V^T``,
whose singular values all equal ``sqrt(lambda_min)``: the combined update's components along the
principal directions of the task gradients are balanced (condition number 1). A rank-deficient A
(collinear or zero gradients) is handled by the truncation; if every gradient is zero, g = 0.
"""

from __future__ import annotations

import numpy as np

from .base import StepContext
from .gram import gram, weighted_sum
from .taskwise import TaskwiseCombiner

EPS_FLOAT32 = float(np.finfo(np.float32).eps)


def aligned_mtl_matrix(A: np.ndarray) -> np.ndarray:
    """The balancing matrix ``B`` [T, T] (float64) for Gram matrix ``A``; zeros if A is 0."""
    A = np.asarray(A, dtype=np.float64)
    T = A.shape[0]
    lam, V = np.linalg.eigh(A)
    lam_max = lam[-1]
    if not lam_max > 0.0:
        return np.zeros((T, T))
    keep = lam > lam_max * T * EPS_FLOAT32
    lam, V = lam[keep], V[:, keep]
    return np.sqrt(lam.min()) * (V / np.sqrt(lam)) @ V.T


def aligned_mtl_weights(A: np.ndarray) -> np.ndarray:
    """``alpha = B 1``, the per-task coefficients of Aligned-MTL (float64 [T])."""
    return aligned_mtl_matrix(A).sum(axis=1)


def aligned_mtl_combine(G2d: np.ndarray) -> np.ndarray:
    """Aligned-MTL on [T, D] task gradients; returns g [D] in G2d's dtype. Deterministic."""
    return weighted_sum(G2d, aligned_mtl_weights(gram(G2d)))


class AlignedMTL(TaskwiseCombiner):
    """Aligned-MTL with scale "min" (LibMTL's; the only scale offered)."""

    name = "aligned-mtl"

    def __init__(self, scale: str = "min"):
        if scale != "min":
            raise ValueError(f"aligned-mtl: only scale 'min' is implemented, got {scale!r}")
        self.scale = scale
        self.last_weights = None

    def task_weights(self, A: np.ndarray, T: int, ctx: StepContext) -> np.ndarray:
        self.last_weights = aligned_mtl_weights(A)
        return self.last_weights

    def config(self) -> dict:
        return {"scale": self.scale}
