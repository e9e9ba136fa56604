"""CAGrad, conflict-averse gradient descent (Liu et al., 2021), as in LibMTL (rescale 1).

With ``A = G G^T`` and ``g0 = mean_t g_t``:

    c  = calpha * sqrt(mean(A) + 1e-8)                       # calpha * ||g0||
    w  = argmin_{w in simplex}  w^T A 1 / T + c * sqrt(w^T A w + 1e-8)
    gw = sum_t w_t g_t
    g  = (g0 + c / (||gw|| + 1e-8) * gw) / (1 + calpha^2)     # rescale 1; 0: no division; 2: / (1 + calpha)

Scaling: this is LibMTL's update, which is 1/T of the official CAGrad code's (both compute the
formula above, with g0 the mean; the official code then multiplies the result by T when writing it
back, to match a sum of the losses). We follow LibMTL (docs/baselines.md).

Solver: LibMTL calls SLSQP from the uniform start, which in our checks stopped at KKT residuals
up to about 1e-4 (relative) on conflicting inputs. :func:`cagrad_weights` instead solves the
T-dimensional convex problem with a log-barrier interior-point method (Newton steps in an
orthonormal basis of the simplex's tangent space, barrier weight raised x20 until the duality gap
T / t is below 1e-12), compiled with Numba: deterministic, a few dozen T x T Newton steps
(~0.1 ms), KKT residual below 1e-7 relative to trace(A) / T. Where exactly opposite gradients put
the optimum at the kink ``gw ~ 0`` the objective's gradient jumps, and the residual can reach
~1e-5 from round-off in w alone. Weights the barrier leaves at ~1e-13 are snapped to 0 when that
does not raise the objective. The objective is divided by ``kappa = trace(A) / T`` first, which
leaves the minimiser unchanged and keeps the numbers O(1).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .base import StepContext
from .gram import gram, weighted_sum
from .taskwise import TaskwiseCombiner


@njit(cache=True)
def _dot(x, y):  # pragma: no cover - compiled
    acc = 0.0
    for i in range(x.shape[0]):
        acc += x[i] * y[i]
    return acc


@njit(cache=True)
def _quad(M, x):  # pragma: no cover - compiled
    """x^T M x for a small square M."""
    n = x.shape[0]
    acc = 0.0
    for i in range(n):
        row = 0.0
        for j in range(n):
            row += M[i, j] * x[j]
        acc += x[i] * row
    return acc


@njit(cache=True)
def _solve_spd(M, rhs):  # pragma: no cover - compiled
    """Solve M x = rhs for a small symmetric positive definite M by Cholesky (no LAPACK call)."""
    n = rhs.shape[0]
    L = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1):
            acc = M[i, j]
            for k in range(j):
                acc -= L[i, k] * L[j, k]
            if i == j:
                L[i, i] = np.sqrt(max(acc, 1e-300))
            else:
                L[i, j] = acc / L[j, j]
    y = np.empty(n)
    for i in range(n):
        acc = rhs[i]
        for k in range(i):
            acc -= L[i, k] * y[k]
        y[i] = acc / L[i, i]
    x = np.empty(n)
    for i in range(n - 1, -1, -1):
        acc = y[i]
        for k in range(i + 1, n):
            acc -= L[k, i] * x[k]
        x[i] = acc / L[i, i]
    return x


@njit(cache=True)
def _barrier_simplex(Ah, b, ch, eh, gap):  # pragma: no cover - compiled
    """min_{w in simplex} b.w + ch * sqrt(w'Ah w + eh) by a log-barrier method; returns w.

    Newton steps are taken in y, with w = w_k + Z y and Z an orthonormal basis of {v : sum(v) = 0},
    so the equality constraint holds exactly and the reduced Hessian Z^T H Z is positive definite
    (H = t * Hessian of the objective + diag(1 / w^2)).
    """
    T = b.shape[0]
    w = np.full(T, 1.0 / T)
    if T == 1:
        return w
    m = T - 1
    Z = np.zeros((T, m))  # Helmert columns
    for k in range(1, T):
        nrm = np.sqrt(k * (k + 1.0))
        for i in range(k):
            Z[i, k - 1] = 1.0 / nrm
        Z[k, k - 1] = -k / nrm
    Aw = np.empty(T)
    gB = np.empty(T)
    H = np.empty((T, T))
    Hr = np.empty((m, m))
    gr = np.empty(m)
    d = np.empty(T)
    wn = np.empty(T)
    t = 1.0
    while True:
        for _ in range(500):
            for i in range(T):
                acc = 0.0
                for j in range(T):
                    acc += Ah[i, j] * w[j]
                Aw[i] = acc
            q = 0.0
            for i in range(T):
                q += w[i] * Aw[i]
            s = np.sqrt(max(q, 0.0) + eh)
            for i in range(T):
                gB[i] = t * (b[i] + ch * Aw[i] / s) - 1.0 / w[i]
                for j in range(T):
                    H[i, j] = (t * ch / s) * Ah[i, j] - (t * ch / (s * s * s)) * Aw[i] * Aw[j]
                H[i, i] += 1.0 / (w[i] * w[i])
            for a in range(m):
                acc = 0.0
                for i in range(T):
                    acc += Z[i, a] * gB[i]
                gr[a] = acc
                for c in range(m):
                    acc = 0.0
                    for i in range(T):
                        for j in range(T):
                            acc += Z[i, a] * H[i, j] * Z[j, c]
                    Hr[a, c] = acc
            dy = _solve_spd(Hr, gr)  # Newton step is -dy
            lam2 = 0.0
            for a in range(m):
                lam2 += gr[a] * dy[a]
            if not lam2 > 1e-16:  # converged (also stops on NaN)
                break
            step = 1.0
            for i in range(T):
                acc = 0.0
                for a in range(m):
                    acc -= Z[i, a] * dy[a]
                d[i] = acc
                if acc < 0.0:
                    step = min(step, -0.99 * w[i] / acc)
            for i in range(T):
                wn[i] = w[i] + step * d[i]
            if lam2 > 0.25:  # damped phase: backtracking on the barrier objective
                phi0 = t * (_dot(b, w) + ch * s)
                for i in range(T):
                    phi0 -= np.log(w[i])
                while step > 1e-12:
                    for i in range(T):
                        wn[i] = w[i] + step * d[i]
                    phin = t * (_dot(b, wn) + ch * np.sqrt(max(_quad(Ah, wn), 0.0) + eh))
                    for i in range(T):
                        phin -= np.log(wn[i])
                    if phin <= phi0 - 0.25 * step * lam2 + 1e-14 * abs(phi0):
                        break
                    step *= 0.5
            w[:] = wn
            if lam2 < 1e-12:
                break
        if T / t < gap:
            break
        t *= 20.0
    w = np.maximum(w, 0.0)
    return w / w.sum()


def _radius(A: np.ndarray, calpha: float) -> float:
    """``c = calpha * sqrt(mean(A) + 1e-8)``, i.e. calpha times the norm of the mean gradient."""
    return calpha * math.sqrt(max(float(A.mean()), 0.0) + 1e-8)


def cagrad_weights(A: np.ndarray, calpha: float = 0.5, gap: float = 1e-12) -> np.ndarray:
    """CAGrad's simplex weights ``w`` for Gram matrix ``A`` (float64 [T]); see the module docstring."""
    A = np.asarray(A, dtype=np.float64)
    T = A.shape[0]
    kappa = float(np.trace(A)) / T
    if not kappa > 0.0:  # every gradient is zero: any w gives g = 0
        return np.full(T, 1.0 / T)
    c = _radius(A, calpha)
    Ah = np.ascontiguousarray(A / kappa)
    b = Ah.sum(axis=1) / T
    ch, eh = c / math.sqrt(kappa), 1e-8 / kappa
    w = _barrier_simplex(Ah, b, ch, eh, gap)
    # the barrier leaves inactive weights at ~1e-13 rather than 0: snap them if that is no worse
    snapped = np.where(w > 1e-9 * w.max(), w, 0.0)
    snapped /= snapped.sum()

    def objective(x):
        return b @ x + ch * math.sqrt(max(float(x @ Ah @ x), 0.0) + eh)

    return snapped if objective(snapped) <= objective(w) else w


def cagrad_combination(A: np.ndarray, calpha: float = 0.5, rescale: int = 1) -> np.ndarray:
    """The final per-task coefficients ``a`` with ``g = sum_t a_t g_t`` (float64 [T])."""
    T = A.shape[0]
    w = cagrad_weights(A, calpha)
    c = _radius(A, calpha)
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

    def task_weights(self, A: np.ndarray, T: int, ctx: StepContext) -> np.ndarray:
        self.last_weights = cagrad_combination(A, self.calpha, self.rescale)
        return self.last_weights

    def config(self) -> dict:
        return {"calpha": self.calpha, "rescale": self.rescale}
