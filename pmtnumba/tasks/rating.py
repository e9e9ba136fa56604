"""Explicit rating regression: ``(x_ui - r)^2``, mean over the batch's (u, i, r) (SPEC section 2).

With ``x = e_u . e_i`` and ``B`` triples, ``L = (1/B) sum_p (x_p - r_p)^2`` and, with the residual
``rho = x - r`` (docs/gradients.md, section "Rating regression")::

    dL/de_u = (2/B) rho e_i,    dL/de_i = (2/B) rho e_u

Two slots per triple (``2p`` the user, ``2p + 1`` the item). Only for data sets with ratings.
Under ``--aux-sampling independent`` this task still uses the step's batch.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..jitshare import shared_jit
from .base import Batch, Task, TaskContext, TaskOutput
from .rowgrad import reduce_slots


@shared_jit(inline="always")
def rating_sample(E, ru, ri, rating, scale, o, out_rows, out_grads):
    """One (user row ``ru``, item row ``ri``, ``rating``) triple: writes slots ``o`` (user) and
    ``o + 1`` (item) and returns its unscaled squared error; shared by the CPU kernel and its
    CUDA twin."""
    d = E.shape[1]
    x = 0.0
    for k in range(d):
        x += np.float64(E[ru, k]) * np.float64(E[ri, k])
    rho = x - np.float64(rating)
    c = 2.0 * scale * rho
    out_rows[o] = ru
    out_rows[o + 1] = ri
    for k in range(d):
        out_grads[o, k] = c * np.float64(E[ri, k])
        out_grads[o + 1, k] = c * np.float64(E[ru, k])
    return rho * rho


@njit(parallel=True, cache=True)
def rating_slots(E, u, i, r, scale, out_rows, out_grads, out_loss):
    """Per-triple squared error and its gradient, two slots per triple.

    Parameters
    ----------
    E : float [N, d]            embedding rows
    u, i : int64 [B]            user rows and item rows
    r : float [B]               ratings
    scale : float               multiplies every gradient (``1/B`` for the mean)
    out_rows : int64 [2B]       written: ``u[p]`` at ``2p``, ``i[p]`` at ``2p + 1``
    out_grads : float [2B, d]   written: ``scale * 2 rho e_i`` and ``scale * 2 rho e_u``
    out_loss : float64 [B]      written: ``(x - r)^2`` per triple (unscaled)
    """
    B = u.shape[0]
    for p in prange(B):
        out_loss[p] = rating_sample(E, u[p], i[p], r[p], scale, 2 * p, out_rows, out_grads)


def rating_loss_grad(E, user_rows, item_rows, ratings):
    """Mean squared rating error on explicit triples and its gradient rows (pure function).

    ``user_rows`` / ``item_rows`` are ROW ids (items offset by the number of users). Returns
    ``(loss, rows, grads)``: ``loss = mean_p (E[u_p] . E[i_p] - r_p)^2``, ``rows`` ascending
    distinct, ``grads[k] = dL / dE[rows[k]]``.
    """
    E = np.ascontiguousarray(E)
    u = np.ascontiguousarray(user_rows, dtype=np.int64)
    i = np.ascontiguousarray(item_rows, dtype=np.int64)
    r = np.ascontiguousarray(ratings, dtype=np.float64)
    B = u.shape[0]
    if B == 0:
        return 0.0, np.empty(0, np.int64), np.empty((0, E.shape[1]), E.dtype)
    rows = np.empty(2 * B, np.int64)
    grads = np.empty((2 * B, E.shape[1]), E.dtype)
    loss = np.empty(B, np.float64)
    rating_slots(E, u, i, r, 1.0 / B, rows, grads, loss)
    urows, g = reduce_slots(rows, grads, n_rows=E.shape[0])
    return float(loss.sum() / B), urows, g


class RatingTask(Task):
    """``rating``: explicit rating regression on the batch's (u, i, r)."""

    name = "rating"

    def __init__(self, ctx: TaskContext, stream: int):
        super().__init__(ctx, stream)
        ds = ctx.dataset
        has = ctx.train_ratings is not None or (ds is not None and getattr(ds, "ratings", None) is not None)
        if not has:
            name = getattr(ds, "name", "?") if ds is not None else "(none given)"
            raise ValueError(f"task 'rating' needs explicit ratings, but data set {name!r} has none")

    def max_slots(self, batch_size: int) -> int:
        return 2 * batch_size

    def compute(self, E, batch: Batch, key, out_rows, out_grads) -> TaskOutput:
        if batch.ratings is None:
            name = getattr(self.ctx.dataset, "name", "?")
            raise ValueError(f"task 'rating' got a batch without ratings (data set {name!r})")
        u = np.ascontiguousarray(batch.users, dtype=np.int64)
        i = np.ascontiguousarray(batch.items, dtype=np.int64) + self.ctx.n_users
        B = u.shape[0]
        if B == 0:
            return TaskOutput(0, 0.0, 0)
        loss = np.empty(B, np.float64)
        rating_slots(E, u, i, np.ascontiguousarray(batch.ratings), 1.0 / B, out_rows[: 2 * B], out_grads[: 2 * B],
                     loss)
        return TaskOutput(2 * B, float(loss.sum() / B), B)
