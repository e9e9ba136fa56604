"""CUDA twins of the link and category samplers of :mod:`pmtnumba.data.link_samplers`.

Each kernel runs one thread per sample and calls the same per-sample function as its CPU kernel
(``link_anchored_sample``, ``link_independent_sample``, ``category_anchored_sample``,
``category_independent_sample``), so both draw the same triplets. Skipped samples write -1, as on
the CPU; :func:`compact_triplets_cuda` then drops them keeping the order, like the CPU's
``anchor[keep]`` (a deterministic prefix sum, :mod:`pmtnumba.scan_cuda`).
"""

from __future__ import annotations

from numba import cuda

from ..scan_cuda import THREADS, blocks, exclusive_scan
from .link_samplers import (
    category_anchored_sample,
    category_independent_sample,
    link_anchored_sample,
    link_independent_sample,
)


@cuda.jit
def sample_link_anchored_cuda(anchors, indptr, indices, n_targets, key, max_tries, out_pos, out_neg):
    s = cuda.grid(1)
    if s < anchors.shape[0]:
        link_anchored_sample(anchors, indptr, indices, n_targets, key, max_tries, s, out_pos, out_neg)


@cuda.jit
def sample_link_independent_cuda(indptr, indices, n_targets, key, max_tries, out_anchor, out_pos, out_neg):
    s = cuda.grid(1)
    if s < out_anchor.shape[0]:
        link_independent_sample(indptr, indices, n_targets, key, max_tries, s, out_anchor, out_pos, out_neg)


@cuda.jit
def sample_category_anchored_cuda(anchors, item_cat, cat_indptr, cat_items, item_pos, key, out_pos, out_neg):
    s = cuda.grid(1)
    if s < anchors.shape[0]:
        category_anchored_sample(anchors, item_cat, cat_indptr, cat_items, item_pos, key, s, out_pos, out_neg)


@cuda.jit
def sample_category_independent_cuda(item_cat, cat_indptr, cat_items, pair_cum, key, out_anchor, out_pos, out_neg):
    s = cuda.grid(1)
    if s < out_anchor.shape[0]:
        category_independent_sample(item_cat, cat_indptr, cat_items, pair_cum, key, s, out_anchor, out_pos, out_neg)


@cuda.jit
def _keep_flags(pos, n, flags):
    s = cuda.grid(1)
    if s < n:
        flags[s] = 1 if pos[s] >= 0 else 0


@cuda.jit
def _scatter_kept(anchor, pos, neg, n, where, offset, a, b, c, n_out):
    s = cuda.grid(1)
    if s < n and pos[s] >= 0:
        k = where[s]
        a[k] = anchor[s] + offset
        b[k] = pos[s] + offset
        c[k] = neg[s] + offset
    if s == 0:
        n_out[0] = where[n]


def compact_triplets_cuda(anchor, pos, neg, n: int, offset: int, a, b, c, n_out, flags, where, sums) -> None:
    """Kept samples (``pos >= 0``) in order into ``a, b, c`` (plus the row ``offset``); their count
    into the device scalar ``n_out[0]``. ``flags``/``where``/``sums``: int64 scratch."""
    _keep_flags[blocks(n), THREADS](pos, n, flags)
    exclusive_scan(flags, n, where, sums)
    _scatter_kept[blocks(n), THREADS](anchor, pos, neg, n, where, offset, a, b, c, n_out)
