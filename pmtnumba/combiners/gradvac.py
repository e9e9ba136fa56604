"""GradVac, gradient vaccine (Wang et al., 2021), one group (the whole step's gradient).

State: ``rho_hat`` [T, T], an exponential moving average of observed cosine similarities (0 at start).

    g'_i = g_i
    for each task i, for j != i in a random order:
        rho = clamp(cos(g'_i, g_j), -1, 1)          # cos = dot / (||g'_i|| ||g_j|| + eps)
        if rho < rho_hat[i, j]:
            g'_i += g_j * ||g'_i|| (rho_hat sqrt(1 - rho^2) - rho sqrt(1 - rho_hat^2))
                        / (||g_j|| sqrt(1 - rho_hat^2) + eps)
        rho_hat[i, j] = (1 - beta) rho_hat[i, j] + beta rho          # every pair, every step
    g = sum_i g'_i

With ``rho_hat`` = 0 the update is PCGrad's projection, so the first step equals PCGrad for the
same order. As in :mod:`pcgrad`, ``g'_i`` stays a combination ``sum_k C[i, k] g_k`` of the
original gradients and every norm and dot product is read off the Gram matrix.

Differences from LibMTL, on purpose (docs/baselines.md): ``rho`` is clamped to [-1, 1] (LibMTL can
take sqrt of a negative number); the EMA update is done for every visited pair (baselines.md's
"always", the GradVac paper's algorithm), whereas in LibMTL's ``GradVac.py`` the EMA line sits
inside ``if rho_ijk < rho_T[...]`` and so updates only when the condition fires. The
random order is one ``rng.permutation(T)`` per task with ``j = i`` skipped (LibMTL shuffles the
T - 1 others), so that PCGrad and GradVac draw the same orders from the same seed.

Degenerate case kept as the method defines it: if ``rho_hat`` reaches exactly 1 (many steps of
exactly parallel gradients) the denominator is ``eps`` and the next non-parallel step is huge.
"""

from __future__ import annotations

import math

import numpy as np

from .base import StepContext
from .gram import gram, weighted_sum
from .taskwise import TaskwiseCombiner, require_rng


def gradvac_coefficients(
    A: np.ndarray, rng: np.random.Generator, rho_hat: np.ndarray, beta: float = 0.5, eps: float = 1e-8
) -> np.ndarray:
    """The matrix C [T, T] with ``g'_i = sum_k C[i, k] g_k``; updates ``rho_hat`` [T, T] in place."""
    T = A.shape[0]
    C = np.eye(T)
    for i in range(T):
        for j in rng.permutation(T):
            if j == i:
                continue
            ni = math.sqrt(max(float(C[i] @ A @ C[i]), 0.0))
            nj = math.sqrt(max(float(A[j, j]), 0.0))
            rho = float(C[i] @ A[:, j]) / (ni * nj + eps)
            rho = min(1.0, max(-1.0, rho))
            rh = float(rho_hat[i, j])
            if rho < rh:
                s_rh = math.sqrt(max(1.0 - rh * rh, 0.0))
                w = ni * (rh * math.sqrt(1.0 - rho * rho) - rho * s_rh) / (nj * s_rh + eps)
                C[i, j] += w
            rho_hat[i, j] = (1.0 - beta) * rh + beta * rho
    return C


def gradvac_combine(
    G2d: np.ndarray, rng: np.random.Generator, rho_hat: np.ndarray, beta: float = 0.5, eps: float = 1e-8
) -> np.ndarray:
    """GradVac on [T, D] gradients; ``rho_hat`` (float64 [T, T], the state) is updated in place.
    Returns g [D] in G2d's dtype."""
    C = gradvac_coefficients(gram(G2d), rng, rho_hat, beta, eps)
    return weighted_sum(G2d, C.sum(axis=0))


class GradVac(TaskwiseCombiner):
    """Gradient vaccine with EMA target similarities ``rho_hat`` kept in the state."""

    name = "gradvac"

    def __init__(self, beta: float = 0.5, eps: float = 1e-8):
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"gradvac: beta must be in [0, 1], got {beta}")
        self.beta = float(beta)
        self.eps = float(eps)
        self.rho_hat = None
        self.last_weights = None
        self.adjusted = 0

    def task_weights(self, A: np.ndarray, T: int, ctx: StepContext) -> np.ndarray:
        if self.rho_hat is None:
            self.rho_hat = np.zeros((T, T))
        elif self.rho_hat.shape != (T, T):
            raise ValueError(f"gradvac: state is for {self.rho_hat.shape[0]} tasks, got {T}")
        C = gradvac_coefficients(A, require_rng(ctx, self.name), self.rho_hat, self.beta, self.eps)
        self.adjusted += bool((C != np.eye(T)).any())
        self.last_weights = C.sum(axis=0)
        return self.last_weights

    def events(self) -> dict:
        """``adjusted``: steps in which some similarity fell below its target and was raised."""
        return {"adjusted": self.adjusted}

    def state_dict(self) -> dict:
        return {} if self.rho_hat is None else {"rho_hat": self.rho_hat.copy()}

    def load_state_dict(self, state: dict) -> None:
        if "rho_hat" in state:
            self.rho_hat = np.array(state["rho_hat"], dtype=np.float64)

    def config(self) -> dict:
        return {"beta": self.beta, "eps": self.eps}
