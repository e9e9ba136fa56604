"""PCGrad, projecting conflicting gradients (Yu et al., 2020), as in LibMTL.

    g'_i = g_i
    for each task i, for j in a fresh random order of all T tasks (j = i included):
        if g'_i . g_j < 0:  g'_i -= (g'_i . g_j) / (||g_j||^2 + eps) * g_j
    g = sum_i g'_i

Projections use the original ``g_j``, so every ``g'_i`` stays a combination of the original
gradients, ``g'_i = sum_k C[i, k] g_k``. All dot products are then read off the Gram matrix:
``g'_i . g_j = (C A)[i, j]`` and ``||g_j||^2 = A[j, j]``. The whole procedure is T x T algebra on
``A`` (:func:`pcgrad_coefficients`) followed by one weighted sum ``g = (1^T C) G`` -- O(T^2 D)
for ``A`` plus O(T D), instead of O(T^3 D) vector operations.

``eps`` = 1e-8 as in docs/baselines.md and LibMTL's current ``PCGrad.py`` (``||g_j||^2 + 1e-8``;
its early releases had none). It only matters when ``||g_j||`` is about 1e-4 or smaller.
"""

from __future__ import annotations

import numpy as np

from .base import StepContext
from .gram import gram, weighted_sum
from .taskwise import TaskwiseCombiner, require_rng


def pcgrad_coefficients(A: np.ndarray, rng: np.random.Generator, eps: float = 1e-8) -> np.ndarray:
    """The matrix C [T, T] with ``g'_i = sum_k C[i, k] g_k`` after PCGrad's projections.

    ``A`` is the Gram matrix of the task gradients; one ``rng.permutation(T)`` is drawn per task i
    (in order i = 0..T-1), which :mod:`gradvac` draws identically so equal seeds give equal orders.
    """
    T = A.shape[0]
    C = np.eye(T)
    for i in range(T):
        for j in rng.permutation(T):
            dot = C[i] @ A[:, j]
            if dot < 0.0:
                C[i, j] -= dot / (A[j, j] + eps)
    return C


def pcgrad_combine(G2d: np.ndarray, rng: np.random.Generator, eps: float = 1e-8) -> np.ndarray:
    """PCGrad on [T, D] task gradients; returns g [D] in G2d's dtype. Orders drawn from ``rng``."""
    C = pcgrad_coefficients(gram(G2d), rng, eps)
    return weighted_sum(G2d, C.sum(axis=0))


class PCGrad(TaskwiseCombiner):
    """Project conflicting gradients; stateless, random orders from ``ctx.rng``.

    ``events()["projected"]`` counts the steps in which any projection happened: where it stays 0
    no two task gradients conflicted and PCGrad's step was EW's (curve.csv, ``combiner_projected``).
    """

    name = "pcgrad"

    def __init__(self, eps: float = 1e-8):
        self.eps = float(eps)
        self.last_weights = None
        self.projected = 0

    def task_weights(self, A: np.ndarray, T: int, ctx: StepContext) -> np.ndarray:
        C = pcgrad_coefficients(A, require_rng(ctx, self.name), self.eps)
        self.projected += bool((C != np.eye(T)).any())
        self.last_weights = C.sum(axis=0)
        return self.last_weights

    def config(self) -> dict:
        return {"eps": self.eps}

    def events(self) -> dict:
        return {"projected": self.projected}
