"""PMTRec's personalised combination (Algorithm 1 of the paper, lines 9-12), one row at a time.

For every row r of the step (a user or an item embedding) and epoch s:

    n[t]  = || G[t, r, :] ||_2                      # gradient norm of task t on this row
    n[0] *= alpha ** s                              # Task Focusing: main task t = 0 grows with s
    w     = softmax(n / tau)                        # Gradient Magnitude Balancing, temperature tau
    g[r]  = sum_t w[t] * G[t, r, :]

The weights differ per row: that is the "personalised" part. :func:`pmtrec_combine` runs it as one
parallel Numba pass over rows (:func:`_pmtrec_rows`): per row O(T d) to read the norms, O(T) for
the softmax, O(T d) for the sum; no [T, N, d] tensor is built and nothing is shared between rows,
so the result is bit-identical for any thread count.

The kernel works on blocks of 64 rows, in three passes that each run as SIMD loops (their
timings: benchmarks/README.md, "Kernel design measurements"):

* logits: per task, the rows where it is present are listed (many (task, row) pairs are absent)
  and only theirs are summed (:func:`_sum_squares`, vectorised); then ``sqrt``, focus and
  ``/ tau`` across the block;
* softmax: across the block's rows at once, with a polynomial ``exp`` (:func:`exp_nonpositive`,
  within 1 ulp of libm's) in place of libm's scalar calls, which do not vectorise;
* weighted sum: one expression per column for up to three tasks (:func:`_weighted_sum_block`).

:func:`pmtrec_reference` is the same computation as Algorithm 1 reads, in plain NumPy: the
definition the kernel is tested against.

Numerics. Norms, the focusing factor and the softmax are computed in float64 whatever G's dtype;
the output has G's dtype. ``alpha ** s`` is computed once per call in float64 and may overflow to
inf for absurd s; the softmax subtracts the maximum, and if some focused norm is inf the inf
task(s) share the weight 1 and the others get 0 (the limit). A zero main-task gradient stays at
n = 0 however large ``alpha ** s`` is (no 0 * inf). Very small or very large row gradients are
normed with a rescaled sum of squares, so the norm neither underflows nor overflows.

Absent tasks. SPEC section 4: a task whose gradient on a row is exactly zero takes part in that
row's softmax with n = 0, as Algorithm 1 stacks full gradient tensors (default). With
``drop_absent=True`` it is left out of that row's softmax instead (weight 0); if every task is
absent the row's weights stay uniform (the row's output is zero either way).

Variants (the paper's ablations): ``pmtrec-nofocus`` forces alpha = 1; ``pmtrec-nobalance``
forces tau = 1 (the paper's definition of "no balancing": a plain softmax of the norms).

Defaults: alpha = 1.1 (the middle of the paper's grid 1.00..1.20; alpha**s is 17 at epoch 30 and
117 at epoch 50, so focusing takes hold over the ~60 epochs the paper's runs last) and tau = 1e-4.
tau only means something relative to the row-gradient norms, which are small (about 1e-5 .. 1e-2
on the shipped data; benchmarks/README.md, "Kernel design measurements"): tau = 1e-4 puts n / tau
around 0.1 .. 5 for the triplet tasks, where the softmax balances; tau >= 1e-2 makes the weights
nearly uniform and tau <= 1e-6 one-hot. Both are starting points: the paper tunes them per data
set on validation (grids in SPEC section 4). A task is often absent (zero gradient) on a row,
which is what ``drop_absent`` changes.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numba.extending import overload, register_jitable

from ..jitshare import shared_jit
from ..fmath import fexp, ffloor, fsqrt
from .base import Combiner, StepContext

VARIANTS = ("pmtrec", "pmtrec-nofocus", "pmtrec-nobalance")
#: The hyper-parameters each ablation fixes (an explicit other value is rejected).
FIXED = {"pmtrec-nofocus": {"alpha": 1.0}, "pmtrec-nobalance": {"tau": 1.0}}
DEFAULTS = {"alpha": 1.1, "tau": 1e-4}


ROW_BLOCK = 64  # rows per parallel work item


@njit(cache=True, fastmath={"reassoc"})
def _sum_squares(g):
    """``sum_k g[k]^2`` in float64, added in SIMD lanes (the only fast-math in this module).

    The flag lets LLVM vectorise this one reduction (it may reassociate its additions, nothing
    else; the caller's code keeps strict IEEE order). The lanes are added in a fixed order for a
    given CPU, the same for every row and every thread count. The flag is on this reduction only,
    not the whole kernel, so the softmax and the exp's range reduction keep IEEE order.
    """
    ss = 0.0
    for k in range(g.shape[0]):
        v = np.float64(g[k])
        ss += v * v
    return ss


def sum_squares(g):
    """``sum_k g[k]^2`` in float64, left to right (plain Python and CUDA kernels); CPU kernels
    get :func:`_sum_squares` (SIMD lanes) in its place."""
    ss = 0.0
    for k in range(g.shape[0]):
        v = np.float64(g[k])
        ss += v * v
    return ss


@overload(sum_squares, target="cpu", inline="always")
def _sum_squares_cpu(g):
    return lambda g: _sum_squares(g)


@overload(sum_squares, target="cuda")
def _sum_squares_cuda(g):
    return sum_squares


@register_jitable
def _norm_rescaled(g):
    """||g|| for a row whose float64 sum of squares is 0 or under/overflowed: 0 for an all-zero
    row, otherwise the sum of squares of ``g / max|g|``, scaled back."""
    mx = 0.0
    for k in range(g.shape[0]):
        mx = max(mx, abs(np.float64(g[k])))
    if mx == 0.0:
        return 0.0
    ss = 0.0
    for k in range(g.shape[0]):
        v = np.float64(g[k]) / mx
        ss += v * v
    return mx * fsqrt(ss)


@register_jitable
def _logit(g, main, focus, tau, drop_absent):
    """The softmax input of one task on one row, the careful way: the norm of its gradient ``g``
    (times ``focus`` for the main task) over ``tau``; 0 for an absent task (zero gradient), or
    -inf if it is dropped."""
    ss = sum_squares(g)
    if 1e-280 < ss < 1e280:  # the usual case
        n = fsqrt(ss)
    elif ss != ss:  # NaN in the row: let it propagate
        n = ss
    else:  # zero row, or a sum of squares that under/overflowed
        n = _norm_rescaled(g)
    if n == 0.0:  # absent on this row: takes part with n = 0, or is dropped
        return -np.inf if drop_absent else 0.0
    if main:
        n = n * focus  # n > 0 here, so never 0 * inf
    return n / tau


@register_jitable(inline="always")
def _nonzero(g):
    """Whether the row ``g`` has a nonzero entry (one vectorised pass)."""
    nz = False
    for k in range(g.shape[0]):
        nz |= g[k] != 0
    return nz


@register_jitable(inline="always")
def _block_logits(G, r0, m, focus, tau, drop_absent, Z, present, idx):
    """The logits of rows ``r0 .. r0+m-1`` into ``Z[t, j]`` (the same values as :func:`_logit`)
    and ``present[t, j]``: whether task t has a nonzero gradient on row ``r0 + j``.

    Fast path: per task, the rows where it is present are listed in ``idx`` and only their sums
    of squares are taken (an absent task's is 0: most tasks are absent from most
    rows); then ``sqrt``, focus and ``/ tau`` in one vectorised pass. If any sum of squares is
    NaN, or under/overflowed, the whole block is redone with :func:`_logit`.
    """
    T = G.shape[0]
    for t in range(T):
        n = 0
        for j in range(m):
            nz = _nonzero(G[t, r0 + j])
            present[t, j] = nz
            Z[t, j] = 0.0
            idx[n] = j  # kept only if the row is present (no branch)
            n += nz
        for i in range(n):
            Z[t, idx[i]] = _sum_squares(G[t, r0 + idx[i]])
    absent = -np.inf if drop_absent else 0.0
    careful = False
    for t in range(T):
        f = focus if t == 0 else 1.0  # n * 1.0 == n: the same as not multiplying
        for j in range(m):
            ss = Z[t, j]
            careful |= not ((1e-280 < ss < 1e280) or not present[t, j])
            n = np.sqrt(ss)
            Z[t, j] = absent if n == 0.0 else (n * f) / tau
    if careful:
        for t in range(T):
            for j in range(m):
                Z[t, j] = _logit(G[t, r0 + j], t == 0, focus, tau, drop_absent)


@shared_jit(inline="always")
def _softmax_inplace(w):
    """Softmax of the logits ``w`` [T] in place, with max-subtraction and the limits of SPEC 4."""
    T = w.shape[0]
    m = -np.inf
    for t in range(T):
        if w[t] > m:
            m = w[t]
    if m == -np.inf:  # every task absent and dropped
        for t in range(T):
            w[t] = 1.0 / T
    elif m == np.inf:  # an infinite logit takes all the weight
        cnt = 0
        for t in range(T):
            if w[t] == np.inf:
                cnt += 1
        for t in range(T):
            w[t] = 1.0 / cnt if w[t] == np.inf else 0.0
    else:
        # exp(w[t] - m), without calling exp where the result is known (the calls are most of the
        # softmax's time): exp(0) = 1 for the largest logit, and one exp(0 - m) for the absent
        # tasks (logit 0), computed once per row
        e_absent = fexp(0.0 - m)
        s = 0.0
        for t in range(T):
            z = w[t]
            e = 1.0 if z == m else (e_absent if z == 0.0 else fexp(z - m))  # exp(-inf) = 0: dropped
            w[t] = e
            s += e
        for t in range(T):
            w[t] = w[t] / s


# exp(x) for x <= 0 without a libm call, so that a loop over a block of rows vectorises (libm's
# exp is one scalar call per value, and was most of the softmax's time). Range reduction
# x = k ln2 + r, |r| <= ln2 / 2 (ln2 split in two parts, fdlibm's constants: k * _LN2_HI is exact),
# e^r by its Taylor polynomial to degree 13 (truncation error < 5e-18 relative), then 2^k built
# from its bits in two halves (each a normal number down to x = -1100, so results that are
# subnormal, down to exp(-745), come out right and smaller ones round to 0). Within 1 ulp of
# libm's exp (tests/test_combiners_pmtrec.py compares them over the whole range).
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_EXP_FLOOR = -1100.0  # exp of anything below is 0 in float64 (and -inf is clamped to it)


@shared_jit(inline="always")
def _exp_poly(r):
    """e^r for |r| <= ln2 / 2: Taylor polynomial of degree 13, Horner's scheme."""
    p = 1.0 / 6227020800.0  # 1/13!
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    return p * r + 1.0


@shared_jit(inline="always")
def _exp_reduce(x):
    """``(r, k)`` with ``x = k ln2 + r``, ``|r| <= ln2 / 2`` (``x`` clamped below at -1100)."""
    v = max(x, _EXP_FLOOR)
    kf = ffloor(v * _LOG2E + 0.5)
    return (v - kf * _LN2_HI) - kf * _LN2_LO, kf


@shared_jit(inline="always")
def _pow2(k):
    """``2.0 ** k`` for an integer ``-1075 < k < 1024`` by exact doublings/halvings (the scalar
    form of the bit construction in :func:`exp_nonpositive`, for targets without bit views)."""
    p = 1.0
    b = 2.0 if k >= 0 else 0.5
    n = k if k >= 0 else -k
    while n > 0:
        if n & 1:
            p *= b
        b *= b
        n >>= 1
    return p


@shared_jit(inline="always")
def exp_nonpositive1(x):
    """``exp(x)`` for one ``x <= 0``: the same bits as :func:`exp_nonpositive` (the same reduction
    and polynomial, ``2^k`` as the product of the same two powers of two)."""
    r, kf = _exp_reduce(x)
    k = np.int64(kf)
    k1 = k >> 1
    return (_exp_poly(r) * _pow2(k1)) * _pow2(k - k1)


@shared_jit(inline="always")
def softmax_row(z, w, T):
    """Softmax over tasks of one row's logits ``z[:T]`` into ``w[:T]``: the row form of
    :func:`_block_softmax` (max subtraction, :func:`exp_nonpositive1`, tasks added in order), and
    :func:`_softmax_inplace` for the limits (a NaN or +inf logit, every task dropped)."""
    mx = z[0]
    for t in range(1, T):
        mx = z[t] if z[t] > mx else mx
    ok = -np.inf < mx < np.inf
    for t in range(T):
        ok &= z[t] == z[t]
        w[t] = z[t]
    if not ok:
        _softmax_inplace(w[:T])
        return
    tot = 0.0
    for t in range(T):
        e = exp_nonpositive1(z[t] - mx)
        w[t] = e
        tot += e
    for t in range(T):
        w[t] = w[t] / tot


@shared_jit(inline="always")
def weighted_sum_entry(G, W, r, k):
    """``sum_t W[r, t] G[t, r, k]`` in float64, tasks added in order starting from task 0's term
    (the expression of :func:`_weighted_sum_block` for one entry)."""
    acc = W[r, 0] * np.float64(G[0, r, k])
    for t in range(1, G.shape[0]):
        acc += W[r, t] * np.float64(G[t, r, k])
    return acc


@register_jitable(inline="always")
def exp_nonpositive(x, out, bits1, bits2):
    """``out[j] = exp(x[j])`` for every ``x[j] <= 0`` (``-inf`` gives 0; not for NaN), in loops
    that vectorise. ``bits1`` / ``bits2`` are int64 scratch arrays of ``x``'s length (contiguous)
    that receive the bits of the two powers of two whose product is ``2^k``."""
    n = x.shape[0]
    for j in range(n):
        r, kf = _exp_reduce(x[j])
        out[j] = _exp_poly(r)
        k = np.int64(kf)
        k1 = k >> 1  # k = k1 + k2 with k1, k2 >= -794: 2^k1 and 2^k2 are both normal numbers
        bits1[j] = (k1 + 1023) << 52
        bits2[j] = (k - k1 + 1023) << 52
    f1 = bits1.view(np.float64)
    f2 = bits2.view(np.float64)
    for j in range(n):
        out[j] = (out[j] * f1[j]) * f2[j]


@register_jitable(inline="always")
def _block_softmax(Z, m, W, r0, mx, tot, x, e, b1, b2):
    """Softmax over tasks of the logits ``Z[:, :m]`` of a block of rows, written to
    ``W[r0:r0+m, :]``, vectorised across the rows (``mx``, ``tot``, ``x``, ``e``, ``b1``, ``b2``:
    scratch of the block's length). Returns False, writing nothing, if a row needs the limits of
    :func:`_softmax_inplace` (a NaN or +inf logit, or every task dropped)."""
    T = Z.shape[0]
    for j in range(m):
        mx[j] = Z[0, j]
    for t in range(1, T):
        for j in range(m):
            z = Z[t, j]
            mx[j] = z if z > mx[j] else mx[j]
    ok = True
    for j in range(m):
        ok &= -np.inf < mx[j] < np.inf  # false for NaN (a NaN first logit), +inf, all dropped
    for t in range(T):
        for j in range(m):
            ok &= Z[t, j] == Z[t, j]  # no NaN logit anywhere
    if not ok:
        return False
    for j in range(m):
        tot[j] = 0.0
    for t in range(T):
        for j in range(m):
            x[j] = Z[t, j] - mx[j]  # <= 0; exactly 0 for the row's largest logit: exp gives 1
        exp_nonpositive(x[:m], e[:m], b1[:m], b2[:m])
        for j in range(m):
            Z[t, j] = e[j]
            tot[j] += e[j]  # tasks added in order 0 .. T-1
    for t in range(T):
        for j in range(m):
            W[r0 + j, t] = Z[t, j] / tot[j]
    return True


@register_jitable(inline="always")
def _weighted_sum_block(G, r0, m, W, out):
    """``out[r] = sum_t W[r, t] * G[t, r]`` for the rows ``r0 .. r0+m-1``, in float64 with the
    tasks added in order (``((w0 g0 + w1 g1) + w2 g2) + ...``), one rounding to ``out``'s dtype.

    For up to three tasks each column is one expression written straight to ``out`` (one loop
    per case, so that it vectorises, unlike adding the tasks one by one into a float64 scratch
    row or choosing the case row by row). More tasks go through a scratch row.
    """
    T = G.shape[0]
    d = G.shape[2]
    if T == 1:
        for r in range(r0, r0 + m):
            g0, o = G[0, r], out[r]
            w0 = W[r, 0]
            for k in range(d):
                o[k] = w0 * np.float64(g0[k])
    elif T == 2:
        for r in range(r0, r0 + m):
            g0, g1, o = G[0, r], G[1, r], out[r]
            w0, w1 = W[r, 0], W[r, 1]
            for k in range(d):
                o[k] = w0 * np.float64(g0[k]) + w1 * np.float64(g1[k])
    elif T == 3:
        for r in range(r0, r0 + m):
            g0, g1, g2, o = G[0, r], G[1, r], G[2, r], out[r]
            w0, w1, w2 = W[r, 0], W[r, 1], W[r, 2]
            for k in range(d):
                o[k] = (w0 * np.float64(g0[k]) + w1 * np.float64(g1[k])) + w2 * np.float64(g2[k])
    else:
        acc = np.empty(d)
        for r in range(r0, r0 + m):
            for k in range(d):
                acc[k] = 0.0
            for t in range(T):
                g = G[t, r]
                wt = W[r, t]
                for k in range(d):
                    acc[k] += wt * np.float64(g[k])
            o = out[r]
            for k in range(d):
                o[k] = acc[k]


@njit(parallel=True, cache=True)
def _pmtrec_rows(G, focus, tau, drop_absent, out, W):  # pragma: no cover - compiled
    """Fill ``out`` [R, d] and the weights ``W`` [R, T] (float64) from ``G`` [T, R, d].

    Parallel over blocks of rows: the block's logits (:func:`_block_logits`), the block's
    softmax (:func:`_block_softmax`, vectorised across rows; rows at the limits go through
    :func:`_softmax_inplace`), then ``out[r] = sum_t W[r, t] G[t, r]`` in float64, the tasks
    added in order (:func:`_weighted_sum_block`; an absent task adds ``w * 0``, and a NaN weight
    propagates). Nothing is shared between blocks: the result is the same for any thread count.
    """
    T, R, d = G.shape
    for b in prange((R + ROW_BLOCK - 1) // ROW_BLOCK):
        r0 = b * ROW_BLOCK
        m = min(ROW_BLOCK, R - r0)
        Z = np.empty((T, ROW_BLOCK))
        present = np.empty((T, ROW_BLOCK), np.bool_)
        idx = np.empty(ROW_BLOCK, np.int64)
        _block_logits(G, r0, m, focus, tau, drop_absent, Z, present, idx)
        mx = np.empty(ROW_BLOCK)
        tot = np.empty(ROW_BLOCK)
        x = np.empty(ROW_BLOCK)
        e = np.empty(ROW_BLOCK)
        b1 = np.empty(ROW_BLOCK, np.int64)
        b2 = np.empty(ROW_BLOCK, np.int64)
        if not _block_softmax(Z, m, W, r0, mx, tot, x, e, b1, b2):
            for j in range(m):
                w = W[r0 + j]
                for t in range(T):
                    w[t] = Z[t, j]
                _softmax_inplace(w)
        _weighted_sum_block(G, r0, m, W, out)


def pmtrec_reference(G, alpha: float, tau: float, epoch: int):
    """PMTRec as Algorithm 1 reads (lines 8-12), in plain NumPy: the definition that the tests
    and docs/worked_example.py use and :func:`pmtrec_combine` is checked against.

    ``G`` [T, R, d]: row gradients of the T tasks (task 0 the main RecSys task) on R rows;
    ``epoch`` is s, starting at 1. Returns the combined gradient [R, d] and the weights [R, T]
    (float64). The fast kernel computes the same with a fused, cache-blocked, overflow-safe loop
    and an option for absent tasks; this one is for reading.
    """
    Grads = np.asarray(G, dtype=np.float64)       # line 8: Grads = Stack(Grad, dim=0)   [T, R, d]
    Norm = np.linalg.norm(Grads, axis=-1)         # line 9: Norm = Norm(Grads, dim=-1)   [T, R]
    Norm[0] = Norm[0] * float(alpha) ** epoch     # line 10: task focusing on the main task
    z = Norm / tau                                # line 11: Attn = Softmax(Norm / tau, dim=0)
    z = z - z.max(axis=0, keepdims=True)          #   (the log-sum-exp shift the paper mentions)
    Attn = np.exp(z) / np.exp(z).sum(axis=0, keepdims=True)
    grad = (Attn[:, :, None] * Grads).sum(axis=0)  # line 12: Sum(Attn.unsqueeze(-1) * Grads, dim=0)
    return grad, Attn.T


def focus_factor(alpha: float, epoch: int) -> float:
    """``alpha ** epoch`` in float64; inf (not an exception) when it overflows."""
    with np.errstate(over="ignore"):
        return float(np.power(np.float64(alpha), np.float64(epoch)))


def pmtrec_combine(
    G: np.ndarray,
    alpha: float,
    tau: float,
    epoch: int,
    drop_absent: bool = False,
    out_weights: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """PMTRec's per-row combination of ``G`` [T, R, d] (float32 or float64) -> g [R, d], G's dtype.

    alpha        task-focusing base (> 0); the main task's norm (task 0) is multiplied by alpha**epoch
    tau          softmax temperature (> 0, finite)
    epoch        the epoch counter s (starting at 1)
    drop_absent  leave tasks with an all-zero gradient on a row out of that row's softmax
    out_weights  optional float64 [R, T] array that receives each row's task weights
    out          optional [R, d] array of G's dtype to write g into (returned)
    """
    G = np.ascontiguousarray(G)
    if G.ndim != 3:
        raise ValueError(f"pmtrec: expected G of shape [T, rows, d], got {G.shape}")
    if G.dtype not in (np.float32, np.float64):
        raise TypeError(f"pmtrec: G must be float32 or float64, got {G.dtype}")
    if not (alpha > 0 and np.isfinite(alpha)):
        raise ValueError(f"pmtrec: alpha must be positive and finite, got {alpha}")
    if not (tau > 0 and np.isfinite(tau)):
        raise ValueError(f"pmtrec: tau must be positive and finite, got {tau}")
    T, R, d = G.shape
    if out_weights is None:
        W = np.empty((R, T), dtype=np.float64)
    else:
        W = out_weights
        if W.shape != (R, T) or W.dtype != np.float64 or not W.flags.c_contiguous:
            raise ValueError(f"pmtrec: out_weights must be a C-contiguous float64 array of shape {(R, T)}")
    if out is None:
        out = np.empty((R, d), dtype=G.dtype)
    elif out.shape != (R, d) or out.dtype != G.dtype or not out.flags.c_contiguous:
        raise ValueError(f"pmtrec: out must be a C-contiguous {G.dtype} array of shape {(R, d)}")
    _pmtrec_rows(G, focus_factor(alpha, epoch), float(tau), bool(drop_absent), out, W)
    return out


class PMTRec(Combiner):
    """PMTRec (the paper's method) and its ablations, selected by ``variant``.

    alpha, tau    see :func:`pmtrec_combine`; the module docstring explains the defaults
                  (None: the variant's default)
    variant       "pmtrec" (full), "pmtrec-nofocus" (alpha fixed at 1), "pmtrec-nobalance" (tau fixed
                  at 1); an explicit alpha / tau that the variant fixes to another value is an error,
                  so a run never records a value it did not use
    drop_absent   exclude tasks absent from a row from that row's softmax (default off, SPEC section 4)
    record_weights  keep the last step's per-row weights [R, T] in ``last_weights`` (for inspection)
    """

    name = "pmtrec"

    def __init__(
        self,
        alpha: float | None = None,
        tau: float | None = None,
        variant: str = "pmtrec",
        drop_absent: bool = False,
        record_weights: bool = False,
    ):
        if variant not in VARIANTS:
            raise ValueError(f"pmtrec: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        self.variant = variant
        given = {"alpha": alpha, "tau": tau}
        for key, value in FIXED.get(variant, {}).items():
            if given[key] is not None and float(given[key]) != value:
                raise ValueError(f"{variant}: {key} is fixed at {value:g} by this ablation, got {key}={given[key]:g}; "
                                 f"leave {key} out for {variant} (or use pmtrec)")
            given[key] = value
        self.alpha = float(DEFAULTS["alpha"] if given["alpha"] is None else given["alpha"])
        self.tau = float(DEFAULTS["tau"] if given["tau"] is None else given["tau"])
        self.drop_absent = bool(drop_absent)
        self.record_weights = bool(record_weights)
        self.last_weights = None
        # validate once, at construction
        if not (self.alpha > 0 and np.isfinite(self.alpha)):
            raise ValueError(f"pmtrec: alpha must be positive and finite, got {alpha}")
        if not (self.tau > 0 and np.isfinite(self.tau)):
            raise ValueError(f"pmtrec: tau must be positive and finite, got {tau}")

    def combine(self, G: np.ndarray, ctx: StepContext) -> np.ndarray:
        W = None
        if self.record_weights:
            W = np.empty((G.shape[1], G.shape[0]), dtype=np.float64)
            self.last_weights = W
        return pmtrec_combine(G, self.alpha, self.tau, ctx.epoch, self.drop_absent, out_weights=W)

    def config(self) -> dict:
        return {"variant": self.variant, "alpha": self.alpha, "tau": self.tau, "drop_absent": self.drop_absent}


class PMTRecNoFocus(PMTRec):
    """Ablation 1: PMTRec without task focusing (alpha = 1)."""

    name = "pmtrec-nofocus"

    def __init__(self, alpha: float | None = None, tau: float | None = None, drop_absent: bool = False,
                 record_weights: bool = False):
        super().__init__(alpha, tau, "pmtrec-nofocus", drop_absent, record_weights)


class PMTRecNoBalance(PMTRec):
    """Ablation 2: PMTRec without magnitude balancing (tau = 1, the paper's definition)."""

    name = "pmtrec-nobalance"

    def __init__(self, alpha: float | None = None, tau: float | None = None, drop_absent: bool = False,
                 record_weights: bool = False):
        super().__init__(alpha, tau, "pmtrec-nobalance", drop_absent, record_weights)
