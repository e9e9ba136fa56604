"""Samplers of the link-prediction tasks (``social``, ``category``, ``coview``, ``cobuy``).

Every kernel draws, for sample ``s`` of a step, an (anchor, positive, negative) triplet using
only the counter-based draws ``draw(key, s, k)`` for k = 0, 1, ... (:mod:`pmtnumba.rng`), so the
result is the same whatever thread computes it. A sample that cannot be formed (an anchor with
no link, an item whose category is unknown or has no other item, an anchor linked to every
other target) writes ``-1`` as its positive and negative; the caller drops it with NumPy before
running the triplet kernel.

Two link structures are used, both on *local* ids (users ``0..U-1`` for ``social``, items
``0..I-1`` for the item tasks; the caller adds the row offset):

* a symmetric CSR ``(indptr, indices)`` of the links (sorted, distinct, no self-loops), for
  ``social``, ``coview`` and ``cobuy``;
* a category CSR ``(cat_indptr, cat_items)``: the items of category ``c`` are
  ``cat_items[cat_indptr[c]:cat_indptr[c+1]]`` (sorted), with ``item_pos[i]`` the position of item
  ``i`` in ``cat_items`` (-1 for an unknown category). Items of one category are contiguous, which
  makes both category draws exact, without rejection.

Counter use per sample: anchored link sampling draws the positive with k = 0 and negatives with
k = 1, 2, ...; independent sampling draws the link with k = 0 and negatives with k = 1, 2, ...

Negatives of the link tasks are uniform over the targets that are neither the anchor nor linked
to it: rejection with up to ``max_tries`` draws, then (only for an anchor linked to most targets)
an exact draw of the m-th non-excluded target by a walk over the anchor's sorted links. Both stages
are uniform over the valid targets, so the result is exactly uniform and never invalid.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..jitshare import shared_jit
from ..rng import randbelow, uniform01
from ..prefetch import prefetch_csr_row
from .csr import csr_contains, csr_from_pairs, symmetric_pairs

_TWO32 = 4294967296


@shared_jit(inline="always")
def below(key, sample, k, n):
    """Uniform integer in ``[0, n)`` for any ``n >= 1``: :func:`randbelow` when ``n < 2**32``,
    else ``floor(u * n)`` with a 53-bit uniform ``u`` (category pair counts can exceed 2**32)."""
    if n < _TWO32:
        return randbelow(key, sample, k, n)
    r = np.int64(uniform01(key, sample, k) * n)
    if r >= n:
        r = n - 1
    return r


@shared_jit(inline="always")
def draw_unlinked(indptr, indices, r, n_targets, key, sample, k0, max_tries):
    """A target uniform over ``[0, n_targets)`` minus ``{r}`` minus row ``r`` of the CSR, or -1 if
    there is none. Uses the draws ``k0 .. k0 + max_tries`` of ``sample``.

    Requires row ``r`` sorted, distinct, without ``r`` itself and inside ``[0, n_targets)``.
    """
    lo = indptr[r]
    hi = indptr[r + 1]
    n_valid = n_targets - 1 - (hi - lo)
    if n_valid <= 0:
        return -1
    for t in range(max_tries):
        j = randbelow(key, sample, k0 + t, n_targets)
        if j != r and not csr_contains(indptr, indices, r, j):
            return j
    # exact fallback: the m-th (0-based) integer not in the sorted exclusion set links(r) + {r}
    cand = randbelow(key, sample, k0 + max_tries, n_valid)
    p = lo
    r_pending = True
    while True:
        if p < hi and (not r_pending or np.int64(indices[p]) < r):
            x = np.int64(indices[p])
            p += 1
        elif r_pending:
            x = np.int64(r)
            r_pending = False
        else:
            break
        if x <= cand:
            cand += 1
        else:
            break
    return cand


@shared_jit(inline="always")
def upper_index(cum, x):
    """The last ``i`` with ``cum[i] <= x`` for a non-decreasing ``cum`` with ``cum[0] <= x``
    (``np.searchsorted(cum, x, side="right") - 1``, written out so CUDA twins call the same code)."""
    lo = 0
    hi = cum.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if cum[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


@shared_jit()
def link_anchored_sample(anchors, indptr, indices, n_targets, key, max_tries, s, out_pos, out_neg):
    """Sample ``s`` of :func:`sample_link_anchored` (shared with its CUDA twin)."""
    r = anchors[s]
    deg = indptr[r + 1] - indptr[r]
    out_pos[s] = -1
    out_neg[s] = -1
    if deg > 0:
        neg = draw_unlinked(indptr, indices, r, n_targets, key, s, 1, max_tries)
        if neg >= 0:
            out_pos[s] = indices[indptr[r] + randbelow(key, s, 0, deg)]
            out_neg[s] = neg


@shared_jit()
def link_independent_sample(indptr, indices, n_targets, key, max_tries, s, out_anchor, out_pos, out_neg):
    """Sample ``s`` of :func:`sample_link_independent` (shared with its CUDA twin)."""
    nnz = indptr[indptr.shape[0] - 1]
    e = below(key, s, 0, nnz)
    r = upper_index(indptr, e)
    neg = draw_unlinked(indptr, indices, r, n_targets, key, s, 1, max_tries)
    if neg < 0:
        out_anchor[s] = -1
        out_pos[s] = -1
        out_neg[s] = -1
    else:
        out_anchor[s] = r
        out_pos[s] = indices[e]
        out_neg[s] = neg


@njit(parallel=True, cache=True)
def sample_link_anchored(anchors, indptr, indices, n_targets, key, max_tries, out_pos, out_neg):
    """Anchored link sampling: for each anchor ``anchors[s]`` (local id) one linked target
    uniformly among its links (k = 0) and one unlinked target that is not the anchor (k >= 1).
    Anchors without a link, or linked to every other target, get ``-1`` in both outputs."""
    n = anchors.shape[0]
    for s in prange(n):
        prefetch_csr_row(anchors, s, indptr, indices)
        link_anchored_sample(anchors, indptr, indices, n_targets, key, max_tries, s, out_pos, out_neg)


@njit(parallel=True, cache=True)
def sample_link_independent(indptr, indices, n_targets, key, max_tries, out_anchor, out_pos, out_neg):
    """Independent link sampling: sample ``s`` draws one directed link uniformly among all
    ``nnz`` CSR entries (k = 0), i.e. each undirected link in either orientation, and then an
    unlinked negative for its anchor (k >= 1). Needs ``nnz >= 1``. Skipped samples (anchor linked
    to everything) get ``-1`` everywhere."""
    n = out_anchor.shape[0]
    for s in prange(n):
        link_independent_sample(indptr, indices, n_targets, key, max_tries, s, out_anchor, out_pos, out_neg)


@shared_jit(inline="always")
def _other_category_item(cat_indptr, cat_items, c, key, sample, k):
    """An item uniform over the items with a known category other than ``c`` (-1 if none):
    category ``c`` is the contiguous block ``[lo, hi)`` of ``cat_items``, so draw a position among
    the others and skip over the block."""
    lo = cat_indptr[c]
    hi = cat_indptr[c + 1]
    n_other = cat_indptr[cat_indptr.shape[0] - 1] - (hi - lo)
    if n_other <= 0:
        return -1
    p = below(key, sample, k, n_other)
    if p >= lo:
        p += hi - lo
    return cat_items[p]


@shared_jit()
def category_anchored_sample(anchors, item_cat, cat_indptr, cat_items, item_pos, key, s, out_pos, out_neg):
    """Sample ``s`` of :func:`sample_category_anchored` (shared with its CUDA twin)."""
    i = anchors[s]
    out_pos[s] = -1
    out_neg[s] = -1
    c = item_cat[i]
    if c >= 0:
        lo = cat_indptr[c]
        n_c = cat_indptr[c + 1] - lo
        if n_c >= 2:
            neg = _other_category_item(cat_indptr, cat_items, c, key, s, 1)
            if neg >= 0:
                q = lo + below(key, s, 0, n_c - 1)
                if q >= item_pos[i]:
                    q += 1
                out_pos[s] = cat_items[q]
                out_neg[s] = neg


@shared_jit()
def category_independent_sample(item_cat, cat_indptr, cat_items, pair_cum, key, s, out_anchor, out_pos, out_neg):
    """Sample ``s`` of :func:`sample_category_independent` (shared with its CUDA twin)."""
    total = pair_cum[pair_cum.shape[0] - 1]
    r = below(key, s, 0, total)
    c = upper_index(pair_cum, r)
    lo = cat_indptr[c]
    m = cat_indptr[c + 1] - lo - 1  # other items per anchor in this category
    q = r - pair_cum[c]
    ia = q // m
    jb = q - ia * m
    if jb >= ia:
        jb += 1
    neg = _other_category_item(cat_indptr, cat_items, c, key, s, 1)
    if neg < 0:
        out_anchor[s] = -1
        out_pos[s] = -1
        out_neg[s] = -1
    else:
        out_anchor[s] = cat_items[lo + ia]
        out_pos[s] = cat_items[lo + jb]
        out_neg[s] = neg


@njit(parallel=True, cache=True)
def sample_category_anchored(anchors, item_cat, cat_indptr, cat_items, item_pos, key, out_pos, out_neg):
    """Anchored category sampling: for item ``i = anchors[s]`` one other item of its category
    (uniform over the category's other items, k = 0) and one item of another known category
    (uniform, k = 1). Items with unknown category (-1), alone in their category, or in the only
    category get ``-1`` in both outputs."""
    n = anchors.shape[0]
    for s in prange(n):
        category_anchored_sample(anchors, item_cat, cat_indptr, cat_items, item_pos, key, s, out_pos, out_neg)


@njit(parallel=True, cache=True)
def sample_category_independent(item_cat, cat_indptr, cat_items, pair_cum, key, out_anchor, out_pos, out_neg):
    """Independent category sampling: sample ``s`` draws one ordered same-category pair (i, j),
    i != j, uniformly among all ``pair_cum[-1]`` such pairs (k = 0; ``pair_cum[c]`` counts the pairs
    of the categories before ``c``, ``n_c (n_c - 1)`` each), then an item of another category
    (k = 1). Needs at least one pair; samples with no other category get ``-1`` everywhere."""
    n = out_anchor.shape[0]
    for s in prange(n):
        category_independent_sample(item_cat, cat_indptr, cat_items, pair_cum, key, s, out_anchor, out_pos, out_neg)


# --------------------------------------------------------------------------------------------
# Building the structures (NumPy, once per run)


def symmetric_link_csr(pairs, n: int):
    """Symmetric CSR over ``n`` local ids from directed ``pairs [L, 2]`` (both directions kept,
    self-loops and duplicates dropped)."""
    if pairs is None or len(pairs) == 0:
        return np.zeros(n + 1, np.int64), np.empty(0, np.int32)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if pairs.min() < 0 or pairs.max() >= n:
        raise ValueError(f"link ids must lie in [0, {n}); got range [{pairs.min()}, {pairs.max()}]")
    rows, cols = symmetric_pairs(pairs)
    return csr_from_pairs(rows, cols, n)


def category_structure(item_category, n_items: int):
    """``(cat_indptr int64 [C+1], cat_items int64 [K], item_pos int64 [n_items], pair_cum
    int64 [C+1])`` from one category per item (-1 = unknown); ``K`` items have a known category and
    ``pair_cum[c+1] - pair_cum[c] = n_c (n_c - 1)`` ordered same-category pairs."""
    cat = np.asarray(item_category, dtype=np.int64)
    if cat.shape[0] != n_items:
        raise ValueError(f"item_category has {cat.shape[0]} entries for {n_items} items")
    known = np.flatnonzero(cat >= 0)
    n_cat = int(cat.max()) + 1 if known.size else 0
    counts = np.bincount(cat[known], minlength=n_cat).astype(np.int64)
    cat_indptr = np.zeros(n_cat + 1, np.int64)
    np.cumsum(counts, out=cat_indptr[1:])
    order = np.lexsort((known, cat[known]))  # by category, then item id
    cat_items = known[order].astype(np.int64)
    item_pos = np.full(n_items, -1, np.int64)
    item_pos[cat_items] = np.arange(cat_items.size)
    pair_cum = np.zeros(n_cat + 1, np.int64)
    np.cumsum(counts * np.maximum(counts - 1, 0), out=pair_cum[1:])
    return cat_indptr, cat_items, item_pos, pair_cum
