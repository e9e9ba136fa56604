"""CAGrad, conflict-averse gradient descent (Liu et al., 2021), as in LibMTL (rescale 1).

With ``A = G G^T`` and ``g0 = mean_t g_t``:

    c  = calpha * sqrt(mean(A) + 1e-8)                       # calpha * ||g0||
    w  = argmin_{w in simplex}  w^T A 1 / T + c * sqrt(w^T A w + 1e-8)
    gw = sum_t w_t g_t
    g  = (g0 + c / (||gw|| + 1e-8) * gw) / (1 + calpha^2)     # rescale 1; 0: no division; 2: / (1 + calpha)

Scaling: this is LibMTL's update, which is 1/T of the official CAGrad code's (the official code
sums the task gradients where LibMTL averages them, g0 = sum vs mean). We follow LibMTL.

Solver: LibMTL calls SLSQP from the uniform start, which stops at KKT residuals of about 1e-4
(relative) on conflicting inputs. :func:`cagrad_weights` instead solves the T-dimensional convex
problem with a log-barrier interior-point method (Newton steps in an orthonormal basis of the
simplex's tangent space, barrier weight raised x20 until the duality gap T / t is below 1e-12),
compiled with Numba: deterministic, a few dozen T x T Newton steps, KKT residual ~1e-9 relative
(1e-7 where opposite gradients put the optimum at the kink ``gw = 0``). The objective is divided
by ``kappa = trace(A) / T`` first, which leaves the minimiser unchanged and keeps the numbers O(1).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .base import StepContext
from .gram import gram, weighted_sum
from .taskwise import TaskwiseCombiner


@njit(cache=True)
def _barrier_simplex(Ah, b, ch, eh, gap):  # pragma: no cover - compiled
    """min_{w in simplex} b.w + ch * sqrt(w'Ah w + eh) by a log-barrier method; returns w."""
    T = b.shape[0]
    w = np.full(T, 1.0 / T)
    if T == 1:
        return w
    # orthonormal basis of {v : sum(v) = 0} (Helmert columns)
    Z = np.zeros((T, T - 1))
    for k in range(1, T):
        nrm = math.sqrt(k * (k + 1.0))
        for i in range(k):
            Z[i, k - 1] = 1.0 / nrm
        Z[k, k - 1] = -k / nrm
    t = 1.0
    while True:
        for _ in range(500):
            Aw = Ah @ w
            s = math.sqrt(max(w @ Aw, 0.0) + eh)
            gB = t * (b + ch * Aw / s) - 1.0 / w
            H = (t * ch / s) * Ah - (t * ch / s**3) * np.outer(Aw, Aw)
            for i in range(T):
                H[i, i] += 1.0 / (w[i] * w[i])
            gr = Z.T @ gB
            dy = -np.linalg.solve(Z.T @ H @ Z, gr)
            lam2 = -(gr @ dy)
            if not lam2 > 1e-16:  # also stops on NaN
                break
            d = Z @ dy
            step = 1.0
            for i in range(T):
                if d[i] < 0.0:
                    step = min(step, -0.99 * w[i] / d[i])
            wn = w + step * d
            if lam2 > 0.25:  # damped phase: backtracking on the barrier objective
                phi0 = t * (b @ w + ch * math.sqrt(max(w @ Aw, 0.0) + eh)) - np.sum(np.log(w))
                while step > 1e-12:
                    wn = w + step * d
                    phin = t * (b @ wn + ch * math.sqrt(max(wn @ (Ah @ wn), 0.0) + eh)) - np.sum(np.log(wn))
                    if phin <= phi0 - 0.25 * step * lam2 + 1e-14 * abs(phi0):
                        break
                    step *= 0.5
            w = wn
            if lam2 < 1e-12:
                break
        if T / t < gap:
            break
        t *= 20.0
    w = np.maximum(w, 0.0)
    return w / w.sum()


def cagrad_weights(A: np.ndarray, calpha: float = 0.5, gap: float = 1e-12) -> np.ndarray:
    """CAGrad's simplex weights ``w`` for Gram matrix ``A`` (float64 [T]); see the module docstring."""
    A = np.asarray(A, dtype=np.float64)
    T = A.shape[0]
    kappa = float(np.trace(A)) / T
    if not kappa > 0.0:  # every gradient is zero: any w gives g = 0
        return np.full(T, 1.0 / T)
    c = calpha * math.sqrt(max(float(A.mean()), 0.0) + 1e-8)
    Ah = np.ascontiguousarray(A / kappa)
    return _barrier_simplex(Ah, Ah.sum(axis=1) / T, c / math.sqrt(kappa), 1e-8 / kappa, gap)


def cagrad_combination(A: np.ndarray, calpha: float = 0.5, rescale: int = 1) -> np.ndarray:
    """The final per-task coefficients ``a`` with ``g = sum_t a_t g_t`` (float64 [T])."""
    T = A.shape[0]
    w = cagrad_weights(A, calpha)
    c = calpha * math.sqrt(max(float(A.mean()), 0.0) + 1e-8)
    gw_norm = math.sqrt(max(float(w @ A @ w), 0.0))
    a = np.full(T, 1.0 / T) + (c / (gw_norm + 1e-8)) * w
    if rescale == 1:
        a /= 1.0 + calpha**2
    elif rescale == 2:
        a /= 1.0 + calpha
    elif rescale != 0:
        raise ValueError(f"cagrad: rescale must be 0, 1 or 2, got {rescale}")
    return a


def cagrad_combine(G2d: np.ndarray, calpha: float = 0.5, rescale: int = 1) -> np.ndarray:
    """CAGrad on [T, D] task gradients; returns g [D] in G2d's dtype. Deterministic (no randomness)."""
    return weighted_sum(G2d, cagrad_combination(gram(G2d), calpha, rescale))


class CAGrad(TaskwiseCombiner):
    """Conflict-averse gradient descent; ``calpha`` 0.5, ``rescale`` 1 (LibMTL defaults)."""

    name = "cagrad"

    def __init__(self, calpha: float = 0.5, rescale: int = 1):
        if calpha < 0:
            raise ValueError(f"cagrad: calpha must be >= 0, got {calpha}")
        if rescale not in (0, 1, 2):
            raise ValueError(f"cagrad: rescale must be 0, 1 or 2, got {rescale}")
        self.calpha = float(calpha)
        self.rescale = int(rescale)
        self.last_weights = None

    def combine_flat(self, G2: np.ndarray, ctx: StepContext) -> np.ndarray:
        self.last_weights = cagrad_combination(gram(G2), self.calpha, self.rescale)
        return weighted_sum(G2, self.last_weights)

    def config(self) -> dict:
        return {"calpha": self.calpha, "rescale": self.rescale}
