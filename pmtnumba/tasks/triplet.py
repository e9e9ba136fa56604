"""The pairwise ranking loss on triplets, shared by BPR and every link-prediction task.

For a triplet (a, b, c) -- an anchor ``a``, a positive ``b`` and a negative ``c`` -- with
``x = e_a . e_b - e_a . e_c = e_a . (e_b - e_c)``, the loss is

    l = -log sigma(x) = softplus(-x)

and with ``delta = dl/dx = -sigma(-x)`` the chain rule gives (docs/gradients.md, section BPR)

    dl/de_a = delta * (e_b - e_c)
    dl/de_b = delta * e_a
    dl/de_c = -delta * e_a

A task's loss is the mean over its ``n`` triplets, so each contribution is scaled by ``1/n``.
BPR uses (u, i, j) = (user, positive item, sampled negative); ``social`` uses (u, friend,
non-friend); ``category``, ``coview`` and ``cobuy`` use (i, linked item, unlinked item).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from numba.extending import register_jitable

from ..jitshare import shared_jit
from ..prefetch import PREFETCH_AHEAD, prefetch_row
from .base import Batch, Task, TaskOutput
from .rowgrad import reduce_slots


@register_jitable
def loss_and_delta(x):
    """``(-log sigma(x), d/dx[-log sigma(x)] = -sigma(-x))`` without overflow for any ``x``: with
    ``z = exp(-|x|)`` (one ``exp`` for both), the loss is ``max(-x, 0) + log1p(z)`` and the
    derivative ``-1 / (1 + z)`` for ``x <= 0``, ``-z / (1 + z)`` for ``x > 0``."""
    z = math.exp(-abs(x))
    loss = -x + math.log1p(z) if -x > 0.0 else math.log1p(z)
    delta = -(1.0 / (1.0 + z)) if -x >= 0.0 else -(z / (1.0 + z))
    return loss, delta


@shared_jit(inline="always")
def triplet_sample(E, a, b, c, scale, o, out_rows, out_grads):
    """One triplet (rows ``a``, ``b``, ``c``): writes its three slots ``o, o+1, o+2`` (rows and
    gradients times ``scale``) and returns its unscaled loss. The math of the module docstring,
    written once for every kernel that forms triplets."""
    d = E.shape[1]
    ea, eb, ec = E[a], E[b], E[c]  # 1-D row views: the loops below vectorise
    x = 0.0
    for k in range(d):
        x += np.float64(ea[k]) * (np.float64(eb[k]) - np.float64(ec[k]))
    loss, delta = loss_and_delta(x)
    delta = delta * scale
    out_rows[o] = a
    out_rows[o + 1] = b
    out_rows[o + 2] = c
    ga, gb, gc = out_grads[o], out_grads[o + 1], out_grads[o + 2]
    for k in range(d):
        ga[k] = delta * (np.float64(eb[k]) - np.float64(ec[k]))
        gb[k] = delta * np.float64(ea[k])
        gc[k] = -delta * np.float64(ea[k])
    return loss


# The dot product x = e_a . (e_b - e_c) is a float reduction: LLVM vectorises it only if it may
# reassociate the additions (fastmath flag "reassoc", nothing else: no approximate exp/log, no
# assumptions about NaN or inf). The sum is then taken in SIMD lanes and the lanes added at the
# end: a fixed order for a given CPU (the same for every thread count, so runs stay
# bit-reproducible on a machine), which may differ in the last bit from a plain left-to-right sum
# and between CPUs with different vector widths. (Timings: benchmarks/README.md, "Kernel design
# measurements".)
_REASSOC = {"reassoc"}


@njit(parallel=True, cache=True, fastmath=_REASSOC)
def triplet_slots(E, a, b, c, scale, out_rows, out_grads, out_loss):
    """Per-triplet loss and gradient contributions, three slots per triplet.

    Parameters
    ----------
    E : float [N, d]                   embedding rows (float32 in training, float64 in checks)
    a, b, c : int64 [n]                anchor, positive and negative row ids
    scale : float                      multiplies every gradient (``1/n`` for a mean loss)
    out_rows : int64 [3n]              written: slot rows (a, b, c per triplet)
    out_grads : float [3n, d]          written: slot gradients
    out_loss : float64 [n]             written: each triplet's (unscaled) loss

    The three rows of the triplet a few iterations ahead are prefetched (random rows of a large
    table mostly miss the cache).
    """
    n = a.shape[0]
    for s in prange(n):
        if s + PREFETCH_AHEAD < n:
            prefetch_row(E, a[s + PREFETCH_AHEAD])
            prefetch_row(E, b[s + PREFETCH_AHEAD])
            prefetch_row(E, c[s + PREFETCH_AHEAD])
        out_loss[s] = triplet_sample(E, a[s], b[s], c[s], scale, 3 * s, out_rows, out_grads)


def triplet_loss_grad(E, a, b, c):
    """Mean pairwise ranking loss over explicit triplets, and its gradient rows.

    A pure function on explicit inputs, for checking against any other implementation::

        loss, rows, grads = triplet_loss_grad(E, a, b, c)

    ``loss = mean_s -log sigma(E[a_s] . E[b_s] - E[a_s] . E[c_s])``; ``rows`` are the distinct
    rows touched (ascending) and ``grads[k] = d loss / d E[rows[k]]``.
    """
    E = np.ascontiguousarray(E)
    a = np.ascontiguousarray(a, dtype=np.int64)
    b = np.ascontiguousarray(b, dtype=np.int64)
    c = np.ascontiguousarray(c, dtype=np.int64)
    n = a.shape[0]
    if n == 0:
        return 0.0, np.empty(0, np.int64), np.empty((0, E.shape[1]), E.dtype)
    rows = np.empty(3 * n, np.int64)
    grads = np.empty((3 * n, E.shape[1]), E.dtype)
    loss = np.empty(n, np.float64)
    triplet_slots(E, a, b, c, 1.0 / n, rows, grads, loss)
    urows, g = reduce_slots(rows, grads, n_rows=E.shape[0])
    return float(loss.sum() / n), urows, g


class TripletTask(Task):
    """A task whose loss is the triplet loss: subclasses draw (a, b, c) in ``triplets``; ``compute``
    runs the shared kernel (BPR, social, category, coview, cobuy)."""

    def max_slots(self, batch_size: int) -> int:
        return 3 * batch_size

    def triplets(self, batch: Batch, key):  # pragma: no cover - interface
        """The step's (anchor, positive, negative) triplets as int64 row ids (skips removed)."""
        raise NotImplementedError

    def compute(self, E, batch: Batch, key, out_rows, out_grads) -> TaskOutput:
        a, b, c = self.triplets(batch, key)
        n = a.shape[0]
        if n == 0:
            return TaskOutput(0, 0.0, 0)
        loss = np.empty(n, np.float64)
        triplet_slots(E, a, b, c, 1.0 / n, out_rows[: 3 * n], out_grads[: 3 * n], loss)
        return TaskOutput(3 * n, float(loss.sum() / n), n)
