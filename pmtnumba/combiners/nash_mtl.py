"""Nash-MTL (Navon et al., 2022): task weights as the Nash bargaining solution.

The weights are the ``alpha > 0`` with

    A alpha = 1 / alpha          (elementwise; i.e. alpha_i * (A alpha)_i = 1 for every task)

on the *unnormalised* Gram matrix ``A = G G^T``; then ``g = sum_t alpha_t g_t``, whose squared norm
is ``alpha^T A alpha = sum_i alpha_i (A alpha)_i = T``, and ``||g||`` is clipped to ``max_norm``
(1) the way ``torch.nn.utils.clip_grad_norm_`` does: ``g *= max_norm / (||g|| + 1e-6)`` when that
factor is below 1. So at any gradient scale the step has norm ``min(sqrt(T), 1)`` up to the clip's
1e-6.

For conditioning, the equation is solved on ``An = A / ||A||_F`` (as LibMTL and the official code
do) and scaled back: if ``An alpha_n = 1 / alpha_n`` then ``alpha = alpha_n / sqrt(||A||_F)``
solves the unnormalised equation. (Using ``alpha_n`` itself would shrink the step by
``sqrt(||A||_F)``, a factor of hundreds at recommendation gradient scales.)

Solver (:func:`nash_mtl_solve`): the equation is the stationarity condition of the strictly convex
``f(alpha) = alpha^T An alpha / 2 - sum_i log alpha_i`` on alpha > 0, so we run Newton's method on f
(Hessian ``An + diag(1 / alpha^2)`` is positive definite) with a fraction-to-the-boundary rule
and Armijo backtracking, warm-started from the previous step's alpha (rescaled to ``An``), and
accept the result only if it verifies ``max_i |alpha_i (A alpha)_i - 1| <= 1e-6`` on the
unnormalised ``A`` (Newton stops at 1e-10 on ``An``). LibMTL instead runs up to 20 linearised
convex programs with cvxpy/ECOS, which stops at a residual of 1e-3.

No solution exists when a task's gradient is zero (row i of A is 0, so (A alpha)_i = 0 != 1/alpha_i)
or when, e.g., two gradients are exactly opposite (f is unbounded below). Then the previous alpha
is reused (ones at the start, as in LibMTL) and a :class:`~pmtnumba.combiners.base.CombinerWarning`
naming the step is issued -- never silently. ``fallbacks`` counts these events.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .base import CombinerWarning, StepContext
from .gram import gram, weighted_sum
from .taskwise import TaskwiseCombiner


def nash_mtl_residual(A: np.ndarray, alpha: np.ndarray) -> float:
    """``max_i |alpha_i (A alpha)_i - 1|``, zero exactly at the bargaining solution of ``A``."""
    return float(np.max(np.abs(alpha * (A @ alpha) - 1.0)))


def nash_mtl_solve(
    An: np.ndarray, alpha0: np.ndarray, tol: float = 1e-10, max_iter: int = 100, accept: float = 1e-6
) -> tuple[np.ndarray, bool]:
    """Solve ``An alpha = 1 / alpha``, alpha > 0, by damped Newton from ``alpha0``.

    Iterates until the residual is below ``tol`` (or ``max_iter``); returns ``(alpha, converged)``
    where ``converged`` is True only if the fixed point is verified to ``max(tol, accept)``
    (baselines.md asks for 1e-6; rounding can stall Newton a little above 1e-10 on badly scaled
    Gram matrices). Zero-gradient tasks (``An[i, i] == 0``) are reported as not converged at once.
    """
    An = np.asarray(An, dtype=np.float64)
    T = An.shape[0]
    if not np.all(np.isfinite(An)) or np.any(np.diag(An) <= 0.0):
        return np.asarray(alpha0, dtype=np.float64).copy(), False
    alpha = np.asarray(alpha0, dtype=np.float64).copy()
    if alpha.shape != (T,) or not np.all(np.isfinite(alpha)) or np.any(alpha <= 0.0):
        alpha = np.ones(T)

    def f(a):
        return 0.5 * (a @ An @ a) - np.sum(np.log(a))

    for _ in range(max_iter):
        if nash_mtl_residual(An, alpha) <= tol:
            return alpha, True
        r = An @ alpha - 1.0 / alpha  # gradient of f
        d = -np.linalg.solve(An + np.diag(1.0 / alpha**2), r)
        slope = float(r @ d)
        if not slope < 0.0:
            break
        step = 1.0
        neg = d < 0.0
        if np.any(neg):
            step = min(1.0, 0.99 * float(np.min(-alpha[neg] / d[neg])))
        f0 = f(alpha)
        while step > 1e-14 and f(alpha + step * d) > f0 + 1e-4 * step * slope:
            step *= 0.5
        alpha = alpha + step * d
        if not np.all(np.isfinite(alpha)):
            break
    ok = bool(np.all(np.isfinite(alpha)) and np.all(alpha > 0) and nash_mtl_residual(An, alpha) <= max(tol, accept))
    return alpha, ok


def nash_mtl_weights(
    A: np.ndarray, prev_alpha: np.ndarray, step: int | None = None, tol: float = 1e-10, accept: float = 1e-6
) -> tuple[np.ndarray, bool]:
    """Bargaining weights for the unnormalised Gram matrix ``A``: ``A alpha = 1 / alpha``.

    Solved on ``A / ||A||_F`` (warm start ``prev_alpha * sqrt(||A||_F)``) and scaled back by
    ``1 / sqrt(||A||_F)``; accepted when the residual on ``A`` is at most ``accept``. On failure
    returns ``prev_alpha`` (a copy) and ``False`` after issuing a CombinerWarning that names ``step``.
    """
    A = np.asarray(A, dtype=np.float64)
    prev = np.asarray(prev_alpha, dtype=np.float64)
    norm = float(np.linalg.norm(A))
    zero = np.flatnonzero(np.diag(A) <= 0.0)
    where = f"step {step}" if step is not None else "this step"
    if zero.size:
        warnings.warn(
            f"nash-mtl: {where}: task(s) {zero.tolist()} have a zero gradient, so A alpha = 1/alpha "
            f"has no solution; reusing the previous alpha {np.round(prev, 6).tolist()}",
            CombinerWarning,
            stacklevel=3,
        )
        return prev.copy(), False
    scale = math.sqrt(norm)
    alpha_n, ok = nash_mtl_solve(A / norm, prev * scale, tol=tol, accept=accept)
    alpha = alpha_n / scale
    res = nash_mtl_residual(A, alpha) if np.all(np.isfinite(alpha)) else float("nan")
    if not (ok and res <= accept):
        warnings.warn(
            f"nash-mtl: {where}: Newton's method did not verify A alpha = 1/alpha (residual {res:.3g}; "
            f"no solution exists e.g. for exactly opposite gradients); reusing the previous alpha "
            f"{np.round(prev, 6).tolist()}",
            CombinerWarning,
            stacklevel=3,
        )
        return prev.copy(), False
    return alpha, True


def clip_coefficients(A: np.ndarray, a: np.ndarray, max_norm: float) -> np.ndarray:
    """Scale ``a`` so that ``||sum_t a_t g_t|| <= max_norm`` (torch's clip_grad_norm_ rule).

    The norm is read off the Gram matrix: ``||G^T a||^2 = a^T A a``. ``max_norm <= 0`` disables it.
    """
    if max_norm <= 0:
        return a
    total = math.sqrt(max(float(a @ A @ a), 0.0))
    coef = max_norm / (total + 1e-6)
    return a * coef if coef < 1.0 else a


def nash_mtl_combine(
    G2d: np.ndarray, alpha_state: np.ndarray, max_norm: float = 1.0, step: int | None = None
) -> np.ndarray:
    """Nash-MTL on [T, D] task gradients; returns g [D] in G2d's dtype.

    ``alpha_state`` (float64 [T], ones at the start) is the warm start and is overwritten with the
    new alpha when the solve succeeds (left as is, with a warning, when it falls back).
    """
    A = gram(G2d)
    alpha, _ = nash_mtl_weights(A, alpha_state, step)
    alpha_state[:] = alpha
    return weighted_sum(G2d, clip_coefficients(A, alpha, max_norm))


class NashMTL(TaskwiseCombiner):
    """Nash-MTL; ``max_norm`` 1, weights updated every ``update_every`` (1) steps (LibMTL defaults)."""

    name = "nash-mtl"

    def __init__(self, max_norm: float = 1.0, update_every: int = 1, tol: float = 1e-10):
        if update_every < 1:
            raise ValueError(f"nash-mtl: update_every must be >= 1, got {update_every}")
        self.max_norm = float(max_norm)
        self.update_every = int(update_every)
        self.tol = float(tol)
        self.alpha = None  # previous weights; ones before the first step
        self.calls = 0
        self.fallbacks = 0
        self.last_weights = None

    def task_weights(self, A: np.ndarray, T: int, ctx: StepContext) -> np.ndarray:
        if self.alpha is None:
            self.alpha = np.ones(T)
        elif self.alpha.shape != (T,):
            raise ValueError(f"nash-mtl: state is for {self.alpha.shape[0]} tasks, got {T}")
        if self.calls % self.update_every == 0:
            alpha, ok = nash_mtl_weights(A, self.alpha, ctx.step, self.tol)
            self.fallbacks += not ok
            self.alpha = alpha
        self.calls += 1
        self.last_weights = clip_coefficients(A, self.alpha, self.max_norm)
        return self.last_weights

    def state_dict(self) -> dict:
        if self.alpha is None:
            return {}
        return {"alpha": self.alpha.copy(), "calls": self.calls, "fallbacks": self.fallbacks}

    def load_state_dict(self, state: dict) -> None:
        if "alpha" in state:
            self.alpha = np.array(state["alpha"], dtype=np.float64)
            self.calls = int(state.get("calls", 0))
            self.fallbacks = int(state.get("fallbacks", 0))

    def config(self) -> dict:
        return {"max_norm": self.max_norm, "update_every": self.update_every, "tol": self.tol}

    def events(self) -> dict:
        return {"fallbacks": self.fallbacks}
