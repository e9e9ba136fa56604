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

The uniformity term is the O(m^2 d) part: for rows of norm <= 1, ``||n_a - n_b||^2 = s_a + s_b -
2 n_a . n_b``, so per pair of row blocks it is a Gram product, an element-wise exp and two more
products (:func:`uniformity_rows`; :func:`uniformity_reference` is the same sums written plainly;
docs/gradients.md section 5). The weights are computed in E's precision (float32 in training),
the sums that make the loss and the gradient scale (``Z``, per-row sums across blocks) in float64.

Determinism: every kernel is parallel over independent outputs (rows, pairs, or block pairs that
write their own partial sums), every sum runs in a fixed order, and ``Z`` is a NumPy sum of the
per-row sums in row order. Results are bit-identical for any thread count.

Under ``--aux-sampling independent`` this task still uses the step's batch (it has no links).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload, register_jitable

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


def uniformity_reference(N):
    """The uniformity sums, written plainly (NumPy, O(m^2 d) memory): for normalised rows
    ``N [m, d]`` and ``w_ab = exp(-2 ||n_a - n_b||^2)`` (``w_aa = 0``)::

        rowsum[a] = sum_b w_ab
        acc[a]    = sum_b w_ab (n_a - n_b) = rowsum[a] n_a - (W N)[a]

    Then ``Z = sum_a rowsum[a] / 2`` and ``d unif / d n_a = -4 acc[a] / Z``. This is what
    :func:`uniformity_rows` computes tile by tile; the tests hold the two equal."""
    D = ((N[:, None, :] - N[None, :, :]) ** 2).sum(-1)
    W = np.exp(-2.0 * D)
    np.fill_diagonal(W, 0.0)
    rowsum = W.sum(1)
    return rowsum, rowsum[:, None] * N - W @ N


# ---------------------------------------------------------------------------------------------
# The fast uniformity kernel. For rows of norm <= 1, ||x_a - x_b||^2 = s_a + s_b - 2 x_a . x_b
# (s = ||x||^2, 1 for a normalised row), so the pair weights of a block of rows I against a block J
# are a Gram product, an element-wise exp, and the gradient sums are two more products:
#     G = X_I X_J^T,   W = exp(-2 (s_I + s_J^T - 2 G)),   W X_J (rows of I),   W^T X_I (rows of J).
# The m rows are cut into blocks of TILE; only tiles I <= J are computed (w is symmetric), each
# tile in its own scratch (the m x m matrix is never stored), in E's precision, every sum in a fixed
# order; each tile writes its own partial sums, which a second kernel adds per row in float64 in a
# fixed tile order. So the result does not depend on the thread count and needs no atomics.

TILE = 128  # the largest block (rows; a multiple of 8)
TILE_CHUNKS = 32  # the tiles are split into this many runs of consecutive tiles for the threads


def exp_consts(dtype):
    """``(1/16, 1/0!, 1/1!, ..., 1/13!, 0, 2)`` in ``dtype``: the constants of :func:`exp_neg` and
    of the weight formula, in E's precision (Numba would promote float32 with a float64 literal)."""
    return np.array((1.0 / 16.0,) + tuple(1.0 / math.factorial(q) for q in range(14)) + (0.0, 2.0), dtype=dtype)


@shared_jit(inline="always")
def exp_tuple(c):
    """``tuple(c)`` of :func:`exp_consts` inside a kernel (a tuple of scalars: no loads in the loop)."""
    return (c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12], c[13], c[14],
            c[15], c[16])


def exp_neg(y, k):
    """``exp(y)`` for ``-9 <= y <= 0`` (the uniformity exponents) as ``p(y / 16)^16``, ``p`` a Taylor
    polynomial of exp evaluated by Estrin's scheme; ``k = exp_tuple(exp_consts(dtype))``. Only
    products and sums, so the loop over a tile row vectorises (Numba's exp is a scalar libm call
    without SVML). The degree follows the precision, chosen by ``y``'s type when a kernel is
    compiled (a type, not a flag): degree 13 in float64 (:func:`exp_neg_13`, relative error ~1e-13,
    for the finite-difference tests and the CUDA twin), degree 8 in float32 (:func:`exp_neg_8`: its
    truncation, ``16 (9/16)^9 / 9!`` ~ 2.5e-7, is below the rounding of ``p`` times 16 from the
    squarings, a few 1e-6, itself the order of the float32 Gram's own rounding, ``4 |dg|``)."""
    return exp_neg_8(y, k) if np.asarray(y).dtype == np.float32 else exp_neg_13(y, k)


@shared_jit(inline="always")
def exp_neg_13(y, k):
    """:func:`exp_neg` in float64: ``p`` of degree 13."""
    u = y * k[0]
    u2 = u * u
    u4 = u2 * u2
    u8 = u4 * u4
    r0 = (k[1] + k[2] * u) + (k[3] + k[4] * u) * u2
    r1 = (k[5] + k[6] * u) + (k[7] + k[8] * u) * u2
    r2 = (k[9] + k[10] * u) + (k[11] + k[12] * u) * u2
    r3 = k[13] + k[14] * u
    p = (r0 + r1 * u4) + (r2 + r3 * u4) * u8
    p = p * p
    p = p * p
    p = p * p
    return p * p


@shared_jit(inline="always")
def exp_neg_8(y, k):
    """:func:`exp_neg` in float32: ``p`` of degree 8 (five vector operations fewer per 8 pairs)."""
    u = y * k[0]
    u2 = u * u
    u4 = u2 * u2
    r0 = (k[1] + k[2] * u) + (k[3] + k[4] * u) * u2
    r1 = (k[5] + k[6] * u) + (k[7] + k[8] * u) * u2
    p = (r0 + r1 * u4) + k[9] * (u4 * u4)
    p = p * p
    p = p * p
    p = p * p
    return p * p


def _exp_neg_by_type(y, k):
    return exp_neg_8 if y == types.float32 else exp_neg_13


overload(exp_neg, jit_options={}, strict=False, inline="always", target="cpu")(_exp_neg_by_type)
overload(exp_neg, jit_options={}, strict=False, target="cuda")(_exp_neg_by_type)


@shared_jit(inline="always")
def gram_weight(g, s_first, s_second, k):
    """``w = exp(-2 (s_a + s_b - 2 g))`` from ``g = x_a . x_b`` and the squared norms, the exponent
    clipped at 0 (rounding can make it slightly positive for ``a ~ b``). The CPU tile kernel passes
    the row of the lower block first (the row itself in a diagonal tile), so that ``w_ab`` is one
    value whichever end of the pair uses it."""
    y = k[16] * (((g + g) - s_first) - s_second)
    y = y if y < k[15] else k[15]
    return exp_neg(y, k)


@njit(inline="always", fastmath={"contract"})
def rowpanel(A, B, C):
    """``C[r, j] = sum_l A[r, l] B[l, j]``, summed over ``l`` ascending (one fused multiply-add per
    term). Register-tiled: four rows of C at a time and four ``l`` per pass over them, the ``j``
    loop innermost, where it vectorises with 16 broadcast values and 4 accumulators in registers."""
    R = C.shape[0]
    n = C.shape[1]
    L = A.shape[1]
    r = 0
    while r + 4 <= R:
        c0 = C[r]
        c1 = C[r + 1]
        c2 = C[r + 2]
        c3 = C[r + 3]
        for j in range(n):
            c0[j] = 0
            c1[j] = 0
            c2[j] = 0
            c3[j] = 0
        l = 0
        while l + 4 <= L:
            a0, a1, a2, a3 = A[r, l], A[r, l + 1], A[r, l + 2], A[r, l + 3]
            e0, e1, e2, e3 = A[r + 1, l], A[r + 1, l + 1], A[r + 1, l + 2], A[r + 1, l + 3]
            f0, f1, f2, f3 = A[r + 2, l], A[r + 2, l + 1], A[r + 2, l + 2], A[r + 2, l + 3]
            h0, h1, h2, h3 = A[r + 3, l], A[r + 3, l + 1], A[r + 3, l + 2], A[r + 3, l + 3]
            b0, b1, b2, b3 = B[l], B[l + 1], B[l + 2], B[l + 3]
            for j in range(n):
                x0, x1, x2, x3 = b0[j], b1[j], b2[j], b3[j]
                c0[j] = (((c0[j] + a0 * x0) + a1 * x1) + a2 * x2) + a3 * x3
                c1[j] = (((c1[j] + e0 * x0) + e1 * x1) + e2 * x2) + e3 * x3
                c2[j] = (((c2[j] + f0 * x0) + f1 * x1) + f2 * x2) + f3 * x3
                c3[j] = (((c3[j] + h0 * x0) + h1 * x1) + h2 * x2) + h3 * x3
            l += 4
        while l < L:
            a0, e0, f0, h0 = A[r, l], A[r + 1, l], A[r + 2, l], A[r + 3, l]
            b0 = B[l]
            for j in range(n):
                x0 = b0[j]
                c0[j] += a0 * x0
                c1[j] += e0 * x0
                c2[j] += f0 * x0
                c3[j] += h0 * x0
            l += 1
        r += 4
    while r < R:
        c0 = C[r]
        for j in range(n):
            c0[j] = 0
        for l in range(L):
            a0 = A[r, l]
            b0 = B[l]
            for j in range(n):
                c0[j] += a0 * b0[j]
        r += 1


@njit(inline="always", fastmath={"contract"})
def weight_tile(G, sI, sJ, k, diag, nI, nJ, WT, rsI, csJ):
    """In place ``G[i, j] <- w_ij`` (:func:`gram_weight`; 0 on the diagonal of a diagonal tile and
    outside the ``nI x nJ`` real rows), ``WT = W^T``, ``rsI[i] = sum_j w_ij`` and
    ``csJ[j] = sum_i w_ij`` (plain sums, ascending)."""
    T = G.shape[0]
    zero = k[15]
    for j in range(T):
        csJ[j] = zero
        rsI[j] = zero
    for i in range(T):
        g = G[i]
        si = sI[i]
        for j in range(T):
            g[j] = gram_weight(g[j], si, sJ[j], k)
        if diag:
            g[i] = zero
        for j in range(nJ, T):
            g[j] = zero
        if i >= nI:
            for j in range(T):
                g[j] = zero
        for j in range(T):
            csJ[j] += g[j]
    for i0 in range(0, T, 8):  # transpose by 8 x 8 blocks (cache-friendly)
        for j0 in range(0, T, 8):
            for i in range(i0, i0 + 8):
                for j in range(j0, j0 + 8):
                    WT[j, i] = G[i, j]
    for j in range(T):
        wt = WT[j]
        for i in range(T):
            rsI[i] += wt[i]


@njit(parallel=True, cache=True, fastmath={"contract"})
def uniformity_tiles(Xb, XTb, sb, m, tile_i, tile_j, c, acc_r, acc_c, rs_r, rs_c):
    """Every tile ``t = (I, J)``, ``I <= J``, in parallel; it writes only its own partial sums:
    ``acc_r[t] = (W X_J)^T`` and ``rs_r[t]`` for the rows of block I, ``acc_c[t] = (W^T X_I)^T`` and
    ``rs_c[t]`` for the rows of block J (not for a diagonal tile: there ``W`` is the whole symmetric
    block and ``acc_r`` already has every pair).

    ``Xb [nb, T, d]``: the normalised rows in blocks (zero rows past ``m``), ``XTb [nb, d, T]``
    the blocks transposed, ``sb [nb, T]`` their squared norms, ``c = exp_consts(dtype)``."""
    k = exp_tuple(c)
    T = Xb.shape[1]
    nt = tile_i.shape[0]
    nchunks = min(nt, TILE_CHUNKS)
    for ch in prange(nchunks):  # a fixed split of the tiles (not per thread), one scratch each
        W = np.empty((T, T), Xb.dtype)
        WT = np.empty((T, T), Xb.dtype)
        for t in range(ch * nt // nchunks, (ch + 1) * nt // nchunks):
            I = tile_i[t]
            J = tile_j[t]
            rowpanel(Xb[I], XTb[J], W)  # the Gram block
            weight_tile(W, sb[I], sb[J], k, I == J, min(T, m - I * T), min(T, m - J * T), WT, rs_r[t], rs_c[t])
            rowpanel(XTb[J], WT, acc_r[t])
            if I != J:
                rowpanel(XTb[I], W, acc_c[t])


@njit(parallel=True, cache=True)
def uniformity_reduce(N, acc_r, acc_c, rs_r, rs_c, nb, out_rowsum, out_acc):
    """Per row ``a`` (row ``r`` of block ``b``), in parallel over blocks: the tiles' partial sums added
    in float64 in a fixed order, tiles ``(I, b)`` for ``I < b`` then ``(b, J)`` for ``J >= b``
    (partner blocks ascending); ``out_rowsum[a] = sum_b w_ab``,
    ``out_acc[a] = out_rowsum[a] n_a - sum_b w_ab x_b``."""
    m, d = N.shape
    T = acc_r.shape[2]
    for b in prange(nb):
        acc = np.zeros((d, T))
        rs = np.zeros(T)
        for P in range(nb):
            if P < b:
                t = P * nb - P * (P - 1) // 2 + (b - P)  # tile (P, b): this block is its J side
                part, prs = acc_c[t], rs_c[t]
            else:
                t = b * nb - b * (b - 1) // 2 + (P - b)  # tile (b, P): this block is its I side
                part, prs = acc_r[t], rs_r[t]
            for r in range(T):
                rs[r] += prs[r]
            for q in range(d):
                for r in range(T):
                    acc[q, r] += part[q, r]
        for r in range(min(T, m - b * T)):
            a = b * T + r
            out_rowsum[a] = rs[r]
            for q in range(d):
                out_acc[a, q] = rs[r] * N[a, q] - acc[q, r]


@njit(parallel=True, cache=True)
def pack_blocks(N, Xb, XTb, sb):
    """``Xb``, ``XTb``, ``sb`` of :func:`uniformity_tiles` from the float64 rows ``N``: rows rounded
    to Xb's precision, zero past ``m``; ``sb`` = the squared norm of the rounded row (float64 sum
    over k ascending, then rounded)."""
    m, d = N.shape
    nb, T = sb.shape
    for b in prange(nb):
        for r in range(T):
            a = b * T + r
            s = 0.0
            for q in range(d):
                Xb[b, r, q] = N[a, q] if a < m else 0.0  # rounded to Xb's type on store
                x = Xb[b, r, q]
                XTb[b, q, r] = x
                s += np.float64(x) * np.float64(x)
            sb[b, r] = s


def uniformity_rows(N, dtype, out_rowsum, out_acc):
    """``out_rowsum``, ``out_acc`` (float64) of :func:`uniformity_reference` for the normalised rows
    ``N [m, d]`` (float64), the pair weights computed in ``dtype`` (E's) tile by tile."""
    m, d = N.shape
    nb, T = tile_size(m)
    Xb = np.empty((nb, T, d), dtype)
    XTb = np.empty((nb, d, T), dtype)
    sb = np.empty((nb, T), dtype)
    pack_blocks(N, Xb, XTb, sb)
    ti, tj = _tiles(nb)
    nt = ti.shape[0]
    acc_r = np.empty((nt, d, T), dtype)
    acc_c = np.empty((nt, d, T), dtype)
    rs_r = np.empty((nt, T), dtype)
    rs_c = np.empty((nt, T), dtype)
    uniformity_tiles(Xb, XTb, sb, m, ti, tj, exp_consts(dtype), acc_r, acc_c, rs_r, rs_c)
    uniformity_reduce(N, acc_r, acc_c, rs_r, rs_c, nb, out_rowsum, out_acc)


def tile_size(m):
    """``(nb, T)``: as few blocks as ``TILE`` allows, of the smallest multiple of 8 that holds the
    ``m`` rows (so the last block is not mostly padding)."""
    nb = max(1, -(-m // TILE))
    return nb, 8 * -(-m // (8 * nb))


def _tiles(nb):
    """Block pairs ``(I, J)``, ``I <= J``, row-major (the order :func:`uniformity_reduce` indexes)."""
    ti, tj = np.triu_indices(nb)
    return ti.astype(np.int64), tj.astype(np.int64)


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
    uniformity_rows(N, E.dtype, rowsum, acc)
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
