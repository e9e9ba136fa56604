"""Top-K selection over score rows, with per-user masks of items that must not be ranked.

This is the inner loop of full-ranking evaluation: for every user we have scores over *all*
items (float32) and want the K best items that the user has not already seen (train items, and
for the test split also validation items). Items are ordered by (score descending, item id
ascending); NaN and ``-inf`` scores are never ranked (``-inf`` is the usual way to mask an item
in a score matrix).

How the float32 kernel works (one user; users run in parallel, one per worker)
---------------------------------------------------------------------------------
* **One integer per candidate.** A candidate is stored as one int64 *key*: the float32 score's
  bits made order-preserving as a signed integer (``-0.0`` and ``0.0`` get the same value) in
  the high 32 bits, ``0xFFFFFFFF - item`` in the low 32. Comparing two keys compares (score,
  then lower id first) in one integer comparison, so the result is fully deterministic.
* **Filter, then select.** Items that pass a threshold are appended to a small buffer of keys
  (512 for K = 40); when the buffer is full, a quickselect keeps its K best keys and the
  threshold rises to just above the K-th best score (a later item with an equal score has a
  larger id and loses, so the test stays exact: ``score >= successor(K-th score)``). At the end
  the K keys are sorted.
* **A lower bound before the scan.** While fewer than K items are held (the first tile of a
  row, or a whole row in :func:`topk_rows`), a buffer that starts at ``-inf`` would have to take
  in and select thousands of items. Instead, the items are split into G = 256 groups (item
  ``j`` in group ``j mod G``) and the group maxima are computed with element-wise vector maxima
  (no reductions: ~0.05 ns per score). With ``m`` excluded items in the range, at least K of the
  ``K + m`` best groups have a maximum that is a rankable item (each excluded item spoils at most
  one group), so the ``(K + m)``-th largest group maximum is a lower bound on the K-th best
  score: no item below it can make the top K. It is found by bisection on the ordered bits
  (about 20 vectorised counts over the G maxima). On random scores about K + m + 10 items pass
  it, instead of the ~K (1 + ln(I / K)) heap entries of the previous kernel.
* **Scanning by 64-item masks.** A block of 64 scores is compared with the threshold into a
  64-bit mask (vectorised; NaN never passes); an empty mask (almost all blocks) costs nothing
  more, and the set bits of a non-empty one are visited with a trailing-zero count.
* **Masking without writing.** Only items that pass the threshold are checked against the user's
  sorted exclusion list (a pointer that only moves forward), so masking costs nothing per
  scanned item and the score buffer stays read-only.
* **Tiles.** :func:`topk_tile_update` takes the items in tiles (``scores[:, j]`` is item
  ``col0 + j``), keeping each user's K best keys between calls, so that a caller can score a
  block of users tile by tile and never hold a whole score row. Feeding the tiles in increasing
  ``col0`` gives exactly the result of one pass over the whole row (the strict tie rule relies
  on items arriving by increasing id).
* **Output.** Best-first item ids and their scores (a ``-0.0`` score comes back as ``0.0``);
  when fewer than K items are rankable, the tail is padded with item ``-1`` (score ``-inf``).

Measured (one core, K = 40, the 55,223 x 17,408 evaluation with ~40 masked items per user, tiles
of 64 users x 8,192 items just written by the GEMM): the kernel's time went from 1.02 s (0.76 s
in the first tile of each row, 0.23 s in the second, 0.03 s in the last 1,024 items) to 0.28 s
(0.17 / 0.09 / 0.02 s), i.e. from ~1.0 to ~0.3 ns per score (first tile ~0.37, later ones ~0.2),
and ``evaluate`` from 1.73 s to 0.95 s, of which ~0.6 s is the GEMM.

Comparison with alternatives. The previous kernel was a K-item binary heap in (score, id) order
(16-item block maxima compared with the heap root; kept as :func:`topk_rows_heap`): ~75% of its
time went to heap insertions (~K (1 + ln(I / K)) = 280 per user on random scores) and to
item-by-item looks at blocks that beat the root. Measured on precomputed score tiles of 2,048
users (read from memory, hence slower than in the evaluation): heap 1.07 ns per score; a buffer
without the lower bound (start at ``-inf``, select when full) 1.1-1.4 ns: until the threshold
is tight, most 64-item blocks hold a candidate; with the bound found by a (branchy) quickselect
over the group maxima, 16-item sub-blocks and per-item exclusion tests 0.76 ns; with bisection
and bit masks 0.46 ns. In the evaluation, the branch-free partition of :func:`_select` then
took the kernel from 0.35 s to 0.28 s.

float64 scores (:func:`topk_from_scores` only) use the previous heap kernel,
:func:`topk_rows_heap`, which gives the same order.

Scratch: per call, a key buffer (``max(512, 4 K)`` int64) and the group maxima
(``max(256, 2 K)`` float32); the K best keys of each row between tiles live in a caller's
``[rows, K]`` int64 array.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.cpython.unsafe.numbers import trailing_zeros, viewer
from numba.extending import register_jitable

__all__ = [
    "topk_from_scores",
    "topk_rows",
    "topk_rows_heap",
    "topk_tile_update",
    "topk_tile_finish",
    "csr_union",
    "empty_csr",
    "check_csr",
    "union_of",
    "ranks_before",
    "rankable",
    "plain_score",
    "lower_bound",
]

_BLOCK = 16  # heap kernel: items per block in the steady-state scan
_MASK_BLOCK = 64  # key kernel: items per block, one bit each in a 64-bit mask
_GROUPS = 256  # key kernel: groups whose maxima give the lower bound (at least 2 K)
_BUFFER = 512  # key kernel: candidate keys held before a select (at least 4 K)
_BISECT_STEPS = 20  # key kernel: bisection steps for the bound (a stop sooner is still valid)
_FMAX = np.float32(3.4028234663852886e38)  # largest finite float32: "s >= _FMAX" skips -inf
_MIN32 = -(2**31)
_LO32 = 0xFFFFFFFF


# --------------------------------------------------------------------------------------------
# CSR helpers needed for masking
# --------------------------------------------------------------------------------------------


def empty_csr(n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """A CSR with ``n_rows`` empty rows (the "exclude nothing" mask)."""
    return np.zeros(int(n_rows) + 1, np.int64), np.zeros(0, np.int32)


def check_csr(csr, name: str = "csr", n_cols: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate and normalise a CSR ``(indptr, indices)``; returns int64 / int32 contiguous arrays.

    Checks: ``indptr`` starts at 0, is non-decreasing and ends at ``len(indices)``; indices are
    non-negative (and ``< n_cols`` when given) and sorted ascending within each row. Raises
    ``ValueError`` naming ``name`` otherwise. Cost: O(rows + nnz), negligible next to ranking.
    """
    try:
        indptr, indices = csr
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a CSR pair (indptr, indices)") from None
    indptr = np.ascontiguousarray(indptr, dtype=np.int64)
    indices = np.ascontiguousarray(indices, dtype=np.int32)
    if indptr.ndim != 1 or indptr.size < 1 or indices.ndim != 1:
        raise ValueError(f"{name}: indptr and indices must be 1-D, indptr non-empty")
    if indptr[0] != 0 or indptr[-1] != indices.size or np.any(np.diff(indptr) < 0):
        raise ValueError(f"{name}: indptr must start at 0, be non-decreasing and end at nnz")
    if indices.size:
        if indices.min() < 0:
            raise ValueError(f"{name}: negative item id")
        if n_cols is not None and indices.max() >= n_cols:
            raise ValueError(f"{name}: item id {int(indices.max())} >= number of items {n_cols}")
        # sorted within rows: a decrease is only allowed where a new row starts
        dec = np.flatnonzero(np.diff(indices) < 0) + 1
        if dec.size:
            starts = np.zeros(indices.size + 1, np.bool_)
            starts[indptr[:-1]] = True
            if not np.all(starts[dec]):
                raise ValueError(f"{name}: indices must be sorted within each row")
    return indptr, indices


@njit(cache=True)
def _union_count(ap, ai, bp, bi, counts):
    for r in range(ap.size - 1):
        i, ie, j, je = ap[r], ap[r + 1], bp[r], bp[r + 1]
        c = 0
        last = -1
        while i < ie or j < je:
            if j >= je or (i < ie and ai[i] <= bi[j]):
                v = ai[i]
                i += 1
            else:
                v = bi[j]
                j += 1
            if v != last:
                c += 1
                last = v
        counts[r] = c


@njit(cache=True)
def _union_fill(ap, ai, bp, bi, indptr, out):
    for r in range(ap.size - 1):
        i, ie, j, je = ap[r], ap[r + 1], bp[r], bp[r + 1]
        p = indptr[r]
        last = -1
        while i < ie or j < je:
            if j >= je or (i < ie and ai[i] <= bi[j]):
                v = ai[i]
                i += 1
            else:
                v = bi[j]
                j += 1
            if v != last:
                out[p] = v
                p += 1
                last = v


def csr_union(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise union of two CSRs with the same number of rows (sorted, de-duplicated)."""
    ap, ai = check_csr(a, "csr_union(a)")
    bp, bi = check_csr(b, "csr_union(b)")
    if ap.size != bp.size:
        raise ValueError(f"csr_union: row counts differ ({ap.size - 1} vs {bp.size - 1})")
    counts = np.empty(ap.size - 1, np.int64)
    _union_count(ap, ai, bp, bi, counts)
    indptr = np.zeros(ap.size, np.int64)
    np.cumsum(counts, out=indptr[1:])
    out = np.empty(int(indptr[-1]), np.int32)
    _union_fill(ap, ai, bp, bi, indptr, out)
    return indptr, out


def _is_single_csr(x) -> bool:
    return (
        isinstance(x, tuple)
        and len(x) == 2
        and isinstance(x[0], np.ndarray)
        and x[0].ndim == 1
        and np.issubdtype(x[0].dtype, np.integer)
    )


def _n_rows_of(exclude) -> int:
    first = exclude if _is_single_csr(exclude) else exclude[0]
    return int(np.asarray(first[0]).size) - 1


def union_of(exclude, n_rows: int, n_cols: int | None = None, name: str = "exclude"):
    """One exclusion CSR from ``None``, a single CSR, or a list/tuple of CSRs.

    A single CSR is recognised as a pair whose first element is a 1-D integer array of length
    ``n_rows + 1``; anything else is treated as a sequence of CSRs and merged with ``csr_union``.
    """
    if exclude is None:
        return empty_csr(n_rows)
    if _is_single_csr(exclude):
        exclude = [exclude]
    csrs = [check_csr(c, f"{name}[{t}]", n_cols) for t, c in enumerate(exclude)]
    for t, (p, _) in enumerate(csrs):
        if p.size - 1 != n_rows:
            raise ValueError(f"{name}[{t}]: has {p.size - 1} rows, expected {n_rows}")
    if not csrs:
        return empty_csr(n_rows)
    out = csrs[0]
    for c in csrs[1:]:
        out = csr_union(out, c)
    return out


# --------------------------------------------------------------------------------------------
# Shared scalar math: called by the CPU kernels below and by their CUDA twins in topk_cuda.py
# --------------------------------------------------------------------------------------------
# Plain ``register_jitable`` (no ``inline="always"``): with numba-cuda 0.30 a core
# ``register_jitable(inline="always")`` function fails to type inside a CUDA kernel; LLVM inlines
# these small functions on both targets anyway.


@register_jitable
def ranks_before(sa, ia, sb, ib):
    """Whether (score ``sa``, item ``ia``) ranks before (``sb``, ``ib``): the evaluation's order.

    Higher score first; equal scores (``-0.0 == 0.0``): lower item id first. The int64 keys of
    the CPU key kernel (:func:`_key`) order candidates exactly like this (tested).
    """
    return sa > sb or (sa == sb and ia < ib)


@register_jitable
def rankable(s):
    """Whether a score may be ranked at all: false for NaN and ``-inf`` (the usual mask)."""
    return s > -np.inf


@register_jitable
def plain_score(s):
    """The score as returned in the top-K lists: ``-0.0`` comes back as ``0.0``."""
    return abs(s) if s == 0 else s


@register_jitable
def lower_bound(a, lo, hi, x):
    """The first position in ``a[lo:hi]`` (sorted ascending) whose value is ``>= x`` (``hi`` if
    none): binary search (a user's sorted exclusion list)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


# --------------------------------------------------------------------------------------------
# The key kernel (float32 scores; see the module doc)
# --------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _ord(s):
    """A float32 score's bits as an int64 in score order (-0.0 and 0.0 both give 0)."""
    b = np.int64(viewer(s, types.int32))
    m = b >> 31  # 0 for a non-negative sign bit, -1 otherwise
    return ((b ^ m) - m) + (m & np.int64(_MIN32))  # b, or -2**31 - b when the sign bit is set


@njit(cache=True, inline="always")
def _from_ord(o):
    """The float32 whose :func:`_ord` is ``o`` (``o + 1`` gives the next larger float)."""
    return viewer(np.int32(o if o >= 0 else np.int64(_MIN32) - o), types.float32)


@njit(cache=True, inline="always")
def _key(s, item):
    """One int64 that orders (score desc, item asc) as a plain integer (larger = better)."""
    return (_ord(s) << 32) | np.int64(_LO32 - item)


@njit(cache=True)
def _select(a, n, k):
    """Reorder ``a[:n]`` (distinct values) so that ``a[:k]`` holds its ``k`` largest (1 <= k <= n).

    Quickselect with a branch-free Lomuto partition (every element is swapped, the store
    position advances by the comparison's 0/1): the comparisons of random keys are unpredictable,
    and without branches to mispredict this is ~3.5x faster than a Hoare partition (70 keys:
    0.2 us instead of 0.7 us).
    """
    lo = 0
    hi = n  # the k-th position lies in a[lo:hi]; a[:lo] >= a[lo:hi] >= a[hi:]
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        x = a[lo]
        y = a[mid]
        z = a[hi - 1]
        if (x < y) != (x < z):  # pivot: median of the first, middle and last value
            pi = lo
        elif (y < x) != (y < z):
            pi = mid
        else:
            pi = hi - 1
        p = a[pi]
        a[pi] = a[hi - 1]
        a[hi - 1] = p
        st = lo
        for i in range(lo, hi - 1):
            v = a[i]
            a[i] = a[st]
            a[st] = v
            st += v > p
        a[hi - 1] = a[st]
        a[st] = p  # now a[lo:st] > p = a[st] >= a[st + 1:hi]
        if st == k - 1 or st == k:
            return
        if st > k:
            hi = st
        else:
            lo = st + 1


@njit(cache=True)
def _min_of(a, k):
    m = a[0]
    for t in range(1, k):
        if a[t] < m:
            m = a[t]
    return m


@njit(cache=True)
def _entry_threshold(keys, k):
    """The lowest score a later item needs to beat the worst of ``k`` held keys (a larger id
    loses a tie, so: the next float above the worst score; NaN, passed by nothing, above +inf)."""
    return _from_ord((_min_of(keys, k) >> 32) + 1)


@njit(cache=True)
def _group_bound(row, gmax, need):
    """A score that at least ``need`` disjoint groups of ``row`` reach (-_FMAX if none does).

    Groups: item ``j`` is in group ``j mod G`` (``G = len(gmax)``; the last ``len(row) mod G``
    items are left out). Their maxima are element-wise vector maxima (NaN never wins), and the
    bound is the largest float ``b`` with ``#{groups: max >= b} >= need``, found by bisection on
    :func:`_ord` values (stopped after ``_BISECT_STEPS``: any earlier ``b`` is lower, still valid).
    """
    g = gmax.shape[0]
    for t in range(g):
        gmax[t] = -np.inf
    n_rows = row.shape[0] // g
    grid = row[: n_rows * g].reshape(n_rows, g)
    for r in range(n_rows):
        for t in range(g):
            v = grid[r, t]
            gmax[t] = v if v > gmax[t] else gmax[t]
    c = 0
    lo_s = _FMAX
    hi_s = -_FMAX
    for t in range(g):
        v = gmax[t]
        ok = v >= -_FMAX  # a group with a rankable maximum
        c += ok
        lo_s = v if (ok and v < lo_s) else lo_s
        hi_s = v if v > hi_s else hi_s
    if c < need:
        return -_FMAX
    lo = _ord(lo_s)  # invariant: >= need groups reach _from_ord(lo), fewer reach _from_ord(hi)
    hi = _ord(hi_s) + 1
    for _ in range(_BISECT_STEPS):
        if hi - lo <= 1:
            break
        mid = (lo + hi) >> 1
        b = _from_ord(mid)
        c = 0
        for t in range(g):
            c += gmax[t] >= b
        if c >= need:
            lo = mid
        else:
            hi = mid
    return _from_ord(lo)


@njit(cache=True, inline="always")
def _take(s, item, ex, e, e_end, buf, n, k, thr):
    """A candidate (score ``s`` >= ``thr``, id ``item``) for the buffer ``buf[:n]``: skipped if
    excluded (``ex[e:e_end]``, sorted, walked forward), else appended; when the buffer is full,
    its K best are kept first and the threshold rises (then ``s`` is tested again). Returns the
    new ``(e, n, thr)``."""
    while e < e_end and ex[e] < item:
        e += 1
    if e < e_end and ex[e] == item:
        return e, n, thr
    if n == buf.shape[0]:  # keep the K best, raise the threshold (re-test: it may have passed it)
        _select(buf, n, k)
        n = k
        thr = max(thr, _entry_threshold(buf, k))
    if s >= thr:
        buf[n] = _key(s, item)
        n += 1
    return e, n, thr


@njit(cache=True)
def _offer(row, col0, ex, ea, eb, keys, size, buf, gmax):
    """Offer items ``col0 .. col0 + len(row) - 1`` (scores ``row``) to one user's top-K.

    ``keys[:size]`` are the user's K best keys so far (any order; K = ``len(keys)``), updated in
    place; ``ex[ea:eb]`` is the user's sorted exclusion list; ``buf`` (> K) and ``gmax`` are
    scratch. Returns the new number of held keys.
    """
    k = keys.shape[0]
    w = row.shape[0]
    e = lower_bound(ex, ea, eb, col0)  # the excluded ids in this range: ex[e:e_end]
    e_end = lower_bound(ex, e, eb, col0 + w)
    n = size
    for t in range(size):
        buf[t] = keys[t]
    thr = -_FMAX  # an item enters the buffer iff score >= thr (never NaN or -inf)
    if size == k:
        thr = _entry_threshold(keys, k)
    elif k + (e_end - e) <= gmax.shape[0] <= w:
        thr = max(thr, _group_bound(row, gmax, k + (e_end - e)))
    nblk = w // _MASK_BLOCK
    blocks = row[: nblk * _MASK_BLOCK].reshape(nblk, _MASK_BLOCK)
    for q in range(nblk):
        bits = np.uint64(0)
        for t in range(_MASK_BLOCK):  # vectorised: compares into a bit mask
            bits |= np.uint64(blocks[q, t] >= thr) << np.uint64(t)
        while bits != 0:
            t = trailing_zeros(bits)
            bits &= bits - np.uint64(1)
            j = q * _MASK_BLOCK + t
            e, n, thr = _take(row[j], col0 + j, ex, e, e_end, buf, n, k, thr)
    for j in range(nblk * _MASK_BLOCK, w):
        if row[j] >= thr:
            e, n, thr = _take(row[j], col0 + j, ex, e, e_end, buf, n, k, thr)
    if n > k:
        _select(buf, n, k)
        n = k
    for t in range(n):
        keys[t] = buf[t]
    return n


@njit(cache=True)
def _write_out(keys, size, out_items, out_scores):
    """Sort ``keys[:size]`` and write them best first (ids, float32 scores), pad with -1/-inf."""
    kk = keys[:size]
    kk.sort()  # ascending: the best key last
    for t in range(size):
        x = kk[size - 1 - t]
        out_items[t] = np.int32(_LO32 - (x & _LO32))
        out_scores[t] = _from_ord(x >> 32)
    for t in range(size, out_items.shape[0]):
        out_items[t] = -1
        out_scores[t] = -np.inf


@njit(cache=True, inline="always")
def _scratch(k):
    return np.empty(max(_BUFFER, 4 * k), np.int64), np.empty(max(_GROUPS, 2 * k), np.float32)


@njit(parallel=True, cache=True, nogil=True)
def topk_rows(scores, rows, ex_indptr, ex_indices, out_items, out_scores):
    """Top-K item ids of every float32 score row, in parallel over rows (Numba kernel).

    Parameters
    ----------
    scores : float32 [B, I], C-contiguous
        One row of scores per user of the block, over all items.
    rows : int64 [B]
        The user id of each score row: its row in the exclusion CSR.
    ex_indptr, ex_indices : int64 [U+1], int32 [nnz]
        Exclusion CSR (items never to rank), sorted within rows. Use an empty CSR for none.
    out_items : int32 [B, K], C-contiguous (written)
        Item ids best-first; ``-1`` where fewer than K items were rankable.
    out_scores : float32 [B, K] (written)
        Their scores (``-inf`` in padded slots).

    K is ``out_items.shape[1]`` (>= 1). The result is independent of the thread count: each row
    is computed by one thread, in a fixed order, and written to its own output row. Rows are
    taken in up to 64 contiguous chunks, each with its own scratch.
    """
    n = scores.shape[0]
    k = out_items.shape[1]
    n_chunks = min(n, 64)
    for c in prange(n_chunks):
        buf, gmax = _scratch(k)
        keys = np.empty(k, np.int64)
        for b in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            u = rows[b]
            size = _offer(scores[b], 0, ex_indices, ex_indptr[u], ex_indptr[u + 1], keys, 0, buf,
                          gmax)
            _write_out(keys, size, out_items[b], out_scores[b])


@njit(cache=True, nogil=True)
def topk_tile_update(scores, col0, rows, ex_indptr, ex_indices, sizes, keys):
    """Feed one tile of items to the running top-K of a block of users (serial, GIL released).

    ``scores[b, j]`` (float32) is the score of item ``col0 + j`` for user ``rows[b]``. User
    ``b``'s K best keys so far are ``keys[b, :sizes[b]]`` (int64 [B, K], any initial content;
    ``sizes`` starts at 0). Tiles must be fed in increasing ``col0`` order (the tie rule relies
    on items arriving by increasing id); call :func:`topk_tile_finish` after the last one. Used
    by the tiled evaluation strategy (:mod:`pmtnumba.evaluation.ranking`): each worker thread
    alternates a single-threaded BLAS GEMM of a tile with this serial kernel on it, while other
    workers do the same on other blocks of users.
    """
    buf, gmax = _scratch(keys.shape[1])
    for b in range(scores.shape[0]):
        u = rows[b]
        sizes[b] = _offer(
            scores[b], col0, ex_indices, ex_indptr[u], ex_indptr[u + 1], keys[b], sizes[b],
            buf, gmax,
        )


@njit(cache=True, nogil=True)
def topk_tile_finish(sizes, keys, out_items, out_scores):
    """Write the keys left by :func:`topk_tile_update` as best-first ids / float32 scores."""
    for b in range(keys.shape[0]):
        _write_out(keys[b], sizes[b], out_items[b], out_scores[b])


# --------------------------------------------------------------------------------------------
# The heap kernel (float64 scores; the previous float32 kernel, kept as a second implementation)
# --------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _worse(sa, ia, sb, ib):
    """Whether (score sa, item ia) ranks below (sb, ib): lower score, or equal score, higher id."""
    return ranks_before(sb, ib, sa, ia)


@njit(cache=True, inline="always")
def _sift_down(hs, hi, size, pos):
    s = hs[pos]
    it = hi[pos]
    while True:
        c = 2 * pos + 1
        if c >= size:
            break
        r = c + 1
        if r < size and _worse(hs[r], hi[r], hs[c], hi[c]):
            c = r
        if _worse(hs[c], hi[c], s, it):
            hs[pos] = hs[c]
            hi[pos] = hi[c]
            pos = c
        else:
            break
    hs[pos] = s
    hi[pos] = it


@njit(cache=True, inline="always")
def _sift_up(hs, hi, pos):
    s = hs[pos]
    it = hi[pos]
    while pos > 0:
        p = (pos - 1) >> 1
        if _worse(s, it, hs[p], hi[p]):
            hs[pos] = hs[p]
            hi[pos] = hi[p]
            pos = p
        else:
            break
    hs[pos] = s
    hi[pos] = it


@njit(cache=True)
def _scan(row, lo, hi_end, col0, hs, hi, size):
    """Offer items ``col0 + lo .. col0 + hi_end - 1`` (scores ``row[lo:hi_end]``) to the heap.

    ``hs``/``hi`` hold the heap (scores / item ids, capacity K), ``size`` its fill; returns the
    new fill.
    """
    k = hi.shape[0]
    j = lo
    # fill phase: the heap is not full yet, every item scoring more than -inf enters
    while j < hi_end and size < k:
        s = row[j]
        if rankable(s):  # false for NaN and -inf: those are never ranked
            hs[size] = s
            hi[size] = col0 + j
            _sift_up(hs, hi, size)
            size += 1
        j += 1
    if size < k:
        return size
    # steady phase: an item enters only if it beats the root (ties lose, see module doc)
    thr = hs[0]
    nblk = (hi_end - j) // _BLOCK
    if nblk > 0:
        # the blocks as a 2-D [nblk, 16] view: in this form LLVM vectorises the block maxima
        blocks = row[j : j + nblk * _BLOCK].reshape(nblk, _BLOCK)
        for q in range(nblk):
            m = thr  # start from the root (same dtype as row); NaNs never raise m
            for t in range(_BLOCK):
                v = blocks[q, t]
                m = v if v > m else m
            if m > thr:
                for t in range(_BLOCK):
                    s = blocks[q, t]
                    if s > thr:
                        hs[0] = s
                        hi[0] = col0 + j + q * _BLOCK + t
                        _sift_down(hs, hi, k, 0)
                        thr = hs[0]
        j += nblk * _BLOCK
    while j < hi_end:
        s = row[j]
        if s > thr:
            hs[0] = s
            hi[0] = col0 + j
            _sift_down(hs, hi, k, 0)
            thr = hs[0]
        j += 1
    return size


@njit(cache=True)
def _scan_row(row, col0, ex_indices, ea, eb, hs, hi, size):
    """Offer the items ``col0 .. col0 + len(row) - 1`` to the heap, skipping excluded ones.

    ``ex_indices[ea:eb]`` is the user's whole sorted exclusion list; the part that falls in this
    range of items is found by binary search, then walked alongside the items: the scan runs
    over the gaps between consecutive excluded ids. Returns the new heap fill.
    """
    n = row.shape[0]
    lo = lower_bound(ex_indices, ea, eb, col0)
    pos = 0
    for e in range(lo, eb):
        x = ex_indices[e] - col0
        if x >= n:
            break
        if x > pos:
            size = _scan(row, pos, x, col0, hs, hi, size)
        if x + 1 > pos:
            pos = x + 1
    if pos < n:
        size = _scan(row, pos, n, col0, hs, hi, size)
    return size


@njit(cache=True)
def _finish(hs, hi, size):
    """Heap-sort the heap in place (worst to the back: best-first order), pad with -1."""
    m = size
    while m > 1:
        m -= 1
        ts = hs[0]
        ti = hi[0]
        hs[0] = hs[m]
        hi[0] = hi[m]
        hs[m] = ts
        hi[m] = ti
        _sift_down(hs, hi, m, 0)
    for r in range(size, hi.shape[0]):
        hi[r] = -1
        hs[r] = -np.inf


@njit(parallel=True, cache=True, nogil=True)
def topk_rows_heap(scores, rows, ex_indptr, ex_indices, out_items, out_scores):
    """Top-K of every score row with a bounded binary heap (any float dtype; Numba kernel).

    Same arguments and result as :func:`topk_rows`, which is ~4x faster on float32 scores; this
    one serves float64 scores. Per user: a min-heap of K (score, item) pairs ordered as the
    result (its root is the worst), fed the items of the gaps between the user's excluded ids in
    increasing id order; in the steady state, 16-item block maxima are compared with the root
    and only a block that beats it is looked at item by item (an equal score loses: it has the
    larger id). ``out_scores`` (same dtype as ``scores``) holds the heap's scores.
    """
    n = scores.shape[0]
    for b in prange(n):
        u = rows[b]
        size = _scan_row(
            scores[b], 0, ex_indices, ex_indptr[u], ex_indptr[u + 1], out_scores[b], out_items[b], 0
        )
        _finish(out_scores[b], out_items[b], size)


def topk_from_scores(scores, k: int, exclude=None, users=None, return_scores: bool = False):
    """Top-``k`` item ids of each row of a score matrix, skipping excluded items.

    Parameters
    ----------
    scores : float array [n, I]
        Scores of ``n`` users over all ``I`` items (float32 is fastest; float64 also works).
        NaN and ``-inf`` scores are never ranked.
    k : int
        Number of items per user (>= 1).
    exclude : None, a CSR ``(indptr, indices)`` or a list of CSRs
        Items never to rank, per user (e.g. ``[train]`` for validation, ``[train, valid]`` for
        test). The CSRs are indexed by user id: row ``users[i]`` masks score row ``i``.
    users : int array [n] or None
        User id of each score row (default: row ``i`` is user ``i``).
    return_scores : bool
        Also return the scores of the selected items.

    Returns
    -------
    int32 [n, k] item ids, best first (descending score; equal scores: lower item id first),
    ``-1`` where fewer than ``k`` items were rankable; and float [n, k] scores if asked.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError("scores must be a 2-D array [n_users, n_items]")
    if scores.dtype != np.float32 and scores.dtype != np.float64:
        scores = scores.astype(np.float32)
    scores = np.ascontiguousarray(scores)
    n, n_items = scores.shape
    k = int(k)
    if k < 1:
        raise ValueError("k must be >= 1")
    if exclude is not None and not _is_single_csr(exclude) and len(exclude) == 0:
        exclude = None
    if exclude is None:
        # nothing to mask: every row looks up row 0 of a one-row empty CSR
        rows = np.zeros(n, dtype=np.int64)
        ex = empty_csr(1)
    else:
        if users is None:
            rows = np.arange(n, dtype=np.int64)
        else:
            rows = np.ascontiguousarray(users, dtype=np.int64)
            if rows.shape != (n,):
                raise ValueError("users must have one id per score row")
        ex = union_of(exclude, _n_rows_of(exclude), n_items)
        if users is None and ex[0].size - 1 != n:
            raise ValueError(
                f"scores has {n} rows but the exclusion CSR has {ex[0].size - 1} users; pass users="
            )
        if n and (rows.min() < 0 or rows.max() >= ex[0].size - 1):
            raise ValueError("a user id is out of range of the exclusion CSR")
    out_items = np.empty((n, k), np.int32)
    out_scores = np.empty((n, k), scores.dtype)
    if n:
        kernel = topk_rows if scores.dtype == np.float32 else topk_rows_heap
        kernel(scores, rows, ex[0], ex[1], out_items, out_scores)
    return (out_items, out_scores) if return_scores else out_items
