"""DirectAU (Wang et al., KDD 2022): alignment and uniformity on the hypersphere.

For a batch of (u, i) pairs with unique users ``U_B`` and unique items ``I_B``, and
``n = e / max(||e||, eps)`` (L2 normalisation, guarded like ``torch.nn.functional.normalize``):

    L     = align + gamma * (unif(U_B) + unif(I_B)) / 2                      (gamma default 1)
    align = (1/B) sum_p ||n_{u_p} - n_{i_p}||^2
    unif(X) = log( (1/P) sum_{a<b in X} exp(-2 ||n_a - n_b||^2) ),  P = |X| (|X| - 1) / 2

``unif(X)`` is 0 when ``|X| < 2`` (no pair). Gradients, derived in docs/gradients.md:

* alignment, pair p, with ``D = n_u - n_i``:  dL/dn_u = (2/B) D,  dL/dn_i = -(2/B) D;
* uniformity, with ``z_ab = -2 ||n_a - n_b||^2``, ``Z = sum_{a<b} exp(z_ab)`` and the softmax
  weights ``w_ab = exp(z_ab) / Z``:  d unif / d n_a = -4 sum_{b != a} w_ab (n_a - n_b).
  Since ``||n|| <= 1``, ``z`` lies in ``[-8, 0]``: the log-sum-exp needs no max shift (0 is an upper
  bound of the max) and ``Z >= exp(-8) P`` never underflows;
* through the normalisation, per row:  dL/de = (I - n n^T) dL/dn / ||e||  (``dL/dn / eps`` when
  ``||e|| <= eps``, where ``n = e / eps`` is linear in ``e``).

The Jacobian of the normalisation is per row and linear in ``dL/dn``, so each slot is chained
through it on its own and the slots of a row can be summed afterwards. Slots: two per pair for the
alignment (``2p`` the user, ``2p + 1`` the item), then one per unique user and one per unique item
for the uniformity terms, so at most ``4 B`` slots.

Determinism: every kernel is parallel over independent outputs; the uniformity kernel sums each
row ``a``'s terms over ``b`` in index order, and ``Z`` is a NumPy sum of the per-row sums in row
order. Results are bit-identical for any thread count.

Under ``--aux-sampling independent`` this task still uses the step's batch (it has no links).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from numba.extending import register_jitable

from ..jitshare import shared_jit
from .base import Batch, Task, TaskContext, TaskOutput
from .rowgrad import reduce_slots

EPS = 1e-12


@shared_jit(inline="always")
def align_pair(E, ru, ri, scale, eps, o, out_rows, out_grads):
    """One pair (user row ``ru``, item row ``ri``): slots ``o`` and ``o + 1`` of
    :func:`align_slots`; returns ``||n_u - n_i||^2``. Shared by the CPU kernel and its CUDA twin."""
    d = E.shape[1]
    su = 0.0
    si = 0.0
    for k in range(d):
        eu = np.float64(E[ru, k])
        ei = np.float64(E[ri, k])
        su += eu * eu
        si += ei * ei
    nu = math.sqrt(su)
    ni = math.sqrt(si)
    du = max(nu, eps)
    di = max(ni, eps)
    loss = 0.0
    nud = 0.0  # n_u . D
    nid = 0.0  # n_i . D
    for k in range(d):
        a = np.float64(E[ru, k]) / du
        b = np.float64(E[ri, k]) / di
        diff = a - b
        loss += diff * diff
        nud += a * diff
        nid += b * diff
    out_rows[o] = ru
    out_rows[o + 1] = ri
    c = 2.0 * scale
    for k in range(d):
        a = np.float64(E[ru, k]) / du
        b = np.float64(E[ri, k]) / di
        diff = a - b
        # dL/dn_u = c D, dL/dn_i = -c D, then (I - n n^T) / ||e||
        if nu > eps:
            out_grads[o, k] = c * (diff - a * nud) / nu
        else:
            out_grads[o, k] = c * diff / eps
        if ni > eps:
            out_grads[o + 1, k] = -c * (diff - b * nid) / ni
        else:
            out_grads[o + 1, k] = -c * diff / eps
    return loss


@njit(parallel=True, cache=True)
def align_slots(E, u, i, scale, eps, out_rows, out_grads, out_loss):
    """Alignment term, two slots per pair.

    Parameters
    ----------
    E : float [N, d]            embedding rows
    u, i : int64 [B]            user rows and item rows of the pairs
    scale : float               multiplies every gradient (``1/B`` for the mean)
    eps : float                 normalisation guard, ``n = e / max(||e||, eps)``
    out_rows : int64 [2B]       written: ``u[p]`` at ``2p``, ``i[p]`` at ``2p + 1``
    out_grads : float [2B, d]   written: ``scale * d||n_u - n_i||^2 / de`` for each side
    out_loss : float64 [B]      written: ``||n_u - n_i||^2`` per pair (unscaled)
    """
    B = u.shape[0]
    for p in prange(B):
        out_loss[p] = align_pair(E, u[p], i[p], scale, eps, 2 * p, out_rows, out_grads)


@shared_jit(inline="always")
def pair_weight(sq):
    """The uniformity weight ``exp(-2 ||n_a - n_b||^2)`` of a squared distance (CPU and CUDA)."""
    return math.exp(-2.0 * sq)


@register_jitable
def row_norm(E, r):
    """``||E[r]||`` in float64, summed over k = 0..d-1 in order."""
    s = 0.0
    for k in range(E.shape[1]):
        x = np.float64(E[r, k])
        s += x * x
    return math.sqrt(s)


@njit(parallel=True, cache=True)
def normalized_rows(E, rows, eps, out):
    """``out[a] = E[rows[a]] / max(||E[rows[a]]||, eps)`` in float64."""
    for a in prange(rows.shape[0]):
        normalize_row(E, rows[a], eps, out, a)


@shared_jit(inline="always")
def normalize_row(E, r, eps, out, a):
    """``out[a] = E[r] / max(||E[r]||, eps)`` in float64 (CPU kernel and CUDA twin)."""
    inv = 1.0 / max(row_norm(E, r), eps)
    for k in range(E.shape[1]):
        out[a, k] = np.float64(E[r, k]) * inv


@njit(parallel=True, cache=True)
def uniformity_rows(N, NT, out_rowsum, out_acc):
    """The O(m^2 d) part of the uniformity term on normalised rows ``N [m, d]`` (``NT = N.T``,
    contiguous).

    For each ``a`` (in parallel), summing over ``b != a`` in index order::

        out_rowsum[a] = sum_b exp(-2 ||n_a - n_b||^2)
        out_acc[a]    = sum_b exp(-2 ||n_a - n_b||^2) (n_a - n_b)

    Then ``Z = sum_a out_rowsum[a] / 2`` (each unordered pair counted twice) and
    ``d unif / d n_a = -4 out_acc[a] / Z``.

    The squared distances of row ``a`` to every ``b`` are accumulated with ``k`` outer and ``b``
    inner (over ``NT``), so the inner loop is element-wise and vectorises without reordering any
    sum: each ``||n_a - n_b||^2`` is still summed over ``k = 0..d-1`` in order.
    """
    m = N.shape[0]
    d = N.shape[1]
    for a in prange(m):
        sq = np.zeros(m)
        for k in range(d):
            x = N[a, k]
            for b in range(m):
                t = x - NT[k, b]
                sq[b] += t * t
        for b in range(m):  # sq becomes the weights exp(-2 sq), 0 for b == a
            sq[b] = pair_weight(sq[b])
        sq[a] = 0.0
        acc = np.zeros(d)
        rs = 0.0
        for b in range(m):
            if b == a:
                continue
            w = sq[b]
            rs += w
            for k in range(d):
                acc[k] += w * N[b, k]
        out_rowsum[a] = rs
        for k in range(d):
            out_acc[a, k] = rs * N[a, k] - acc[k]


@njit(parallel=True, cache=True)
def normalize_backward_slots(E, rows, Gn, coef, eps, out_rows, out_grads):
    """Chain ``coef * Gn[a]`` (a gradient w.r.t. ``n_a``) through ``n = e / max(||e||, eps)``:
    ``out_grads[a] = (I - n n^T) coef Gn[a] / ||e||`` (or ``coef Gn[a] / eps`` when ``||e|| <= eps``),
    ``out_rows[a] = rows[a]``."""
    for a in prange(rows.shape[0]):
        normalize_backward_row(E, rows[a], Gn, a, coef, eps, a, out_rows, out_grads)


@shared_jit(inline="always")
def normalize_backward_row(E, r, Gn, a, coef, eps, o, out_rows, out_grads):
    """Slot ``o`` of :func:`normalize_backward_slots` for row ``r`` and ``Gn[a]`` (CPU and CUDA)."""
    d = E.shape[1]
    norm = row_norm(E, r)
    out_rows[o] = r
    if norm > eps:
        ndg = 0.0
        for k in range(d):
            ndg += np.float64(E[r, k]) / norm * Gn[a, k]
        for k in range(d):
            out_grads[o, k] = coef * (Gn[a, k] - np.float64(E[r, k]) / norm * ndg) / norm
    else:
        for k in range(d):
            out_grads[o, k] = coef * Gn[a, k] / eps


def _uniformity_fill(E, rows, weight, eps, out_rows, out_grads):
    """Uniformity term on the distinct ``rows``: writes ``len(rows)`` slots of ``weight * d unif/de``
    and returns ``unif`` (0 and no slot when fewer than 2 rows)."""
    m = rows.shape[0]
    if m < 2:
        return 0, 0.0
    N = np.empty((m, E.shape[1]), np.float64)
    normalized_rows(E, rows, eps, N)
    rowsum = np.empty(m, np.float64)
    acc = np.empty((m, E.shape[1]), np.float64)
    uniformity_rows(N, np.ascontiguousarray(N.T), rowsum, acc)
    Z = float(rowsum.sum()) / 2.0
    P = m * (m - 1) / 2.0
    unif = math.log(Z) - math.log(P)
    normalize_backward_slots(E, rows, acc, -4.0 * weight / Z, eps, out_rows[:m], out_grads[:m])
    return m, unif


def align_uniform_fill(E, users, items, gamma, eps, out_rows, out_grads):
    """Write every slot of the DirectAU loss for pairs (``users[p]``, ``items[p]``) (row ids).

    Returns ``(n_slots, loss, align, unif_users, unif_items)``; needs ``4 B`` slots at most.
    """
    users = np.ascontiguousarray(users, dtype=np.int64)
    items = np.ascontiguousarray(items, dtype=np.int64)
    B = users.shape[0]
    if B == 0:
        return 0, 0.0, 0.0, 0.0, 0.0
    loss = np.empty(B, np.float64)
    align_slots(E, users, items, 1.0 / B, eps, out_rows[: 2 * B], out_grads[: 2 * B], loss)
    align = float(loss.sum() / B)
    o = 2 * B
    w = gamma / 2.0
    mu, unif_u = _uniformity_fill(E, np.unique(users), w, eps, out_rows[o:], out_grads[o:])
    o += mu
    mi, unif_i = _uniformity_fill(E, np.unique(items), w, eps, out_rows[o:], out_grads[o:])
    o += mi
    return o, align + w * (unif_u + unif_i), align, unif_u, unif_i


def align_uniform_loss_grad(E, users, items, gamma=1.0, eps=EPS):
    """DirectAU loss on explicit pairs and its gradient rows (pure function).

    ``users`` and ``items`` are ROW ids (items already offset by the number of users). Returns
    ``(loss, rows, grads)``: ``rows`` ascending distinct, ``grads[k] = dL / dE[rows[k]]`` with
    ``L = align + gamma * (unif(unique users) + unif(unique items)) / 2``.
    """
    E = np.ascontiguousarray(E)
    B = len(users)
    rows = np.empty(4 * B, np.int64)
    grads = np.empty((4 * B, E.shape[1]), E.dtype)
    n, loss, *_ = align_uniform_fill(E, users, items, float(gamma), eps, rows, grads)
    if n == 0:
        return float(loss), np.empty(0, np.int64), np.empty((0, E.shape[1]), E.dtype)
    urows, g = reduce_slots(rows[:n], grads[:n], n_rows=E.shape[0])
    return float(loss), urows, g


def alignment_loss_grad(E, users, items, eps=EPS):
    """The alignment term alone, ``mean_p ||n_u - n_i||^2``: ``(loss, rows, grads)``."""
    E = np.ascontiguousarray(E)
    users = np.ascontiguousarray(users, dtype=np.int64)
    items = np.ascontiguousarray(items, dtype=np.int64)
    B = users.shape[0]
    rows = np.empty(2 * B, np.int64)
    grads = np.empty((2 * B, E.shape[1]), E.dtype)
    loss = np.empty(B, np.float64)
    align_slots(E, users, items, 1.0 / B, eps, rows, grads, loss)
    urows, g = reduce_slots(rows, grads, n_rows=E.shape[0])
    return float(loss.sum() / B), urows, g


def uniformity_loss_grad(E, rows, eps=EPS):
    """One uniformity term ``log mean_{a<b} exp(-2 ||n_a - n_b||^2)`` over the distinct ``rows``:
    ``(loss, rows, grads)`` (rows with duplicates are made unique first)."""
    E = np.ascontiguousarray(E)
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    out_rows = np.empty(rows.shape[0], np.int64)
    out_grads = np.empty((rows.shape[0], E.shape[1]), E.dtype)
    m, unif = _uniformity_fill(E, rows, 1.0, eps, out_rows, out_grads)
    if m == 0:
        return 0.0, np.empty(0, np.int64), np.empty((0, E.shape[1]), E.dtype)
    return float(unif), out_rows, out_grads


class AlignUniformTask(Task):
    """``align_uniform``: the DirectAU loss on the batch's pairs (options ``gamma``, ``eps``)."""

    name = "align_uniform"

    def __init__(self, ctx: TaskContext, stream: int, gamma: float = 1.0, eps: float = EPS):
        super().__init__(ctx, stream)
        self.gamma = float(gamma)
        self.eps = float(eps)
        if not self.gamma >= 0.0:
            raise ValueError(f"align_uniform: gamma must be >= 0, got {gamma}")
        if not self.eps > 0.0:
            raise ValueError(f"align_uniform: eps must be > 0, got {eps}")
        self.last_terms = (0.0, 0.0, 0.0)  # (align, unif_users, unif_items) of the last step

    def max_slots(self, batch_size: int) -> int:
        return 4 * batch_size

    def compute(self, E, batch: Batch, key, out_rows, out_grads) -> TaskOutput:
        users = np.ascontiguousarray(batch.users, dtype=np.int64)
        items = np.ascontiguousarray(batch.items, dtype=np.int64) + self.ctx.n_users
        n, loss, al, uu, ui = align_uniform_fill(E, users, items, self.gamma, self.eps, out_rows, out_grads)
        self.last_terms = (al, uu, ui)
        return TaskOutput(n, float(loss), int(users.shape[0]))

    def config(self) -> dict:
        return {"gamma": self.gamma, "eps": self.eps}
