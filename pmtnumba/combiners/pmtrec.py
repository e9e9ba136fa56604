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

Cost (bpr + coview + cobuy on videogame and on a 55k x 17k synthetic set, R ~ 8,000 rows, d = 32,
one thread, inside real training steps): about 0.45-0.5 ms per step, against 1.12-1.17 ms for the
first, row-at-a-time version and 0.08-0.10 ms for EW's ``G.sum(0)``. The kernel works on blocks
of rows: it lists, per task, the rows where the task is present (56 % of the (task, row) pairs
are absent there), takes their sums of squares four rows at a time (in float64, column by
column: the order that defines the result, so the four chains of additions are what the CPU can
overlap), calls ``exp`` only where its result is not known, and skips absent tasks in the
weighted sum. What is left: ~0.07 ms reading G, ~0.1 ms of logits, ~0.17 ms of softmax (mostly
the ``exp`` calls: libm, not vectorised) and ~0.1 ms of weighted sum.

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
tau only means something relative to the row-gradient norms. Measured with EW over the first three
epochs on the shipped office, videogame and epinion data (d = 32, batch 2048), the 10th-90th
percentiles of the per-row norms are about 5e-6 .. 5e-4 for bpr, social, category, coview and
cobuy, 4e-4 .. 3e-3 for rating and 2e-3 .. 1e-2 for align_uniform. tau = 1e-4 puts n / tau at
about 0.1 .. 5 for the first group, where the softmax balances; tau >= 1e-2 makes the weights
nearly uniform and tau <= 1e-6 one-hot. Both are starting points: the paper tunes them per data
set on validation (grids in SPEC section 4). In those runs a task was absent (zero gradient) on
0 % (bpr, office) to 73 % (coview, videogame) of a step's rows, which is what ``drop_absent`` changes.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numba.extending import register_jitable

from .base import Combiner, StepContext

VARIANTS = ("pmtrec", "pmtrec-nofocus", "pmtrec-nobalance")


ROW_BLOCK = 64  # rows per parallel work item


@register_jitable(inline="always")
def _sum_squares(g):
    """``sum_k g[k]^2`` in float64, adding the columns in order (the order that defines the result)."""
    ss = 0.0
    for k in range(g.shape[0]):
        v = np.float64(g[k])
        ss += v * v
    return ss


@register_jitable(inline="always")
def _sum_squares4(g0, g1, g2, g3):
    """:func:`_sum_squares` of four rows at once: the same additions in the same order, but four
    independent chains the CPU can overlap (one chain waits on each addition)."""
    s0 = s1 = s2 = s3 = 0.0
    for k in range(g0.shape[0]):
        v0, v1, v2, v3 = np.float64(g0[k]), np.float64(g1[k]), np.float64(g2[k]), np.float64(g3[k])
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
    return s0, s1, s2, s3


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
    return mx * np.sqrt(ss)


@register_jitable
def _logit(g, main, focus, tau, drop_absent):
    """The softmax input of one task on one row, the careful way: the norm of its gradient ``g``
    (times ``focus`` for the main task) over ``tau``; 0 for an absent task (zero gradient), or
    -inf if it is dropped."""
    ss = _sum_squares(g)
    if 1e-280 < ss < 1e280:  # the usual case
        n = np.sqrt(ss)
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

    Fast path: per task, the rows where it is present are listed in ``idx`` and their sums of
    squares taken four rows at a time (an absent task's is 0: most tasks are absent from most
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
        i = 0
        while i + 4 <= n:
            j0, j1, j2, j3 = idx[i], idx[i + 1], idx[i + 2], idx[i + 3]
            Z[t, j0], Z[t, j1], Z[t, j2], Z[t, j3] = _sum_squares4(G[t, r0 + j0], G[t, r0 + j1], G[t, r0 + j2],
                                                                    G[t, r0 + j3])
            i += 4
        for i in range(i, n):
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


@register_jitable(inline="always")
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
        e_absent = np.exp(0.0 - m)
        s = 0.0
        for t in range(T):
            z = w[t]
            e = 1.0 if z == m else (e_absent if z == 0.0 else np.exp(z - m))  # exp(-inf) = 0: dropped
            w[t] = e
            s += e
        for t in range(T):
            w[t] = w[t] / s


@njit(parallel=True, cache=True)
def _pmtrec_rows(G, focus, tau, drop_absent, out, W):  # pragma: no cover - compiled
    """Fill ``out`` [R, d] and the weights ``W`` [R, T] (float64) from ``G`` [T, R, d].

    Parallel over blocks of rows: the block's logits (:func:`_block_logits`), then per row the
    softmax and ``out[r] = sum_t W[r, t] G[t, r]``, accumulated in float64 task by task into a
    scratch row (so the loop over the d columns vectorises; each column still adds the tasks in
    order). Absent tasks are skipped in the sum: their terms are ``+0.0`` and the accumulator,
    which starts at ``+0.0``, is never ``-0.0``, so adding them changes no bit (unless the weight
    is NaN, which must propagate).
    """
    T, R, d = G.shape
    for b in prange((R + ROW_BLOCK - 1) // ROW_BLOCK):
        r0 = b * ROW_BLOCK
        m = min(ROW_BLOCK, R - r0)
        Z = np.empty((T, ROW_BLOCK))
        present = np.empty((T, ROW_BLOCK), np.bool_)
        idx = np.empty(ROW_BLOCK, np.int64)
        _block_logits(G, r0, m, focus, tau, drop_absent, Z, present, idx)
        acc = np.empty(d)
        for j in range(m):
            r = r0 + j
            w = W[r]
            for t in range(T):
                w[t] = Z[t, j]
            _softmax_inplace(w)
            for k in range(d):
                acc[k] = 0.0
            for t in range(T):
                wt = w[t]
                if present[t, j] or wt != wt:  # an absent task's row adds wt * 0 = +0: nothing
                    g = G[t, r]
                    for k in range(d):
                        acc[k] += wt * np.float64(g[k])
            o = out[r]
            for k in range(d):
                o[k] = acc[k]


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
    variant       "pmtrec" (full), "pmtrec-nofocus" (alpha forced to 1), "pmtrec-nobalance" (tau forced to 1)
    drop_absent   exclude tasks absent from a row from that row's softmax (default off, SPEC section 4)
    record_weights  keep the last step's per-row weights [R, T] in ``last_weights`` (for inspection)
    """

    name = "pmtrec"

    def __init__(
        self,
        alpha: float = 1.1,
        tau: float = 1e-4,
        variant: str = "pmtrec",
        drop_absent: bool = False,
        record_weights: bool = False,
    ):
        if variant not in VARIANTS:
            raise ValueError(f"pmtrec: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        self.variant = variant
        self.alpha = 1.0 if variant == "pmtrec-nofocus" else float(alpha)
        self.tau = 1.0 if variant == "pmtrec-nobalance" else float(tau)
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

    def __init__(self, alpha: float = 1.0, tau: float = 1e-4, drop_absent: bool = False, record_weights: bool = False):
        super().__init__(alpha, tau, "pmtrec-nofocus", drop_absent, record_weights)


class PMTRecNoBalance(PMTRec):
    """Ablation 2: PMTRec without magnitude balancing (tau = 1, the paper's definition)."""

    name = "pmtrec-nobalance"

    def __init__(self, alpha: float = 1.1, tau: float = 1.0, drop_absent: bool = False, record_weights: bool = False):
        super().__init__(alpha, tau, "pmtrec-nobalance", drop_absent, record_weights)
