"""Full-ranking evaluation of embedding models, in memory-bounded user chunks.

For every evaluated user we need the score of *every* item (``user_emb[u] @ item_emb.T``) and its
top-K after masking already-seen items. On Epinions (22,167 users x 296,278 items) the full score
matrix would take 26 GB, so users are processed in chunks:

1. ``np.matmul(user_emb[chunk], item_emb.T, out=buf[:b])`` - a float32 GEMM into one score
   buffer allocated once (at most ``max_buffer_bytes``, 256 MiB by default);
2. :func:`pmtnumba.evaluation.topk.topk_rows` - a Numba kernel, parallel over the chunk's users,
   selects each user's top-K skipping the excluded items (no ``-inf`` is written: it walks the
   sorted exclusion list alongside the items);
3. once all chunks are done, :func:`pmtnumba.evaluation.metrics.metrics_from_topk` computes the
   metrics from the ``[n, K]`` top-K lists (small: 22,167 x 40 int32 is 3.5 MB).

Peak memory is the embeddings + the score buffer + the top-K lists + the CSRs. Only users with at
least one held-out item are scored (the others are skipped by the metrics anyway).

CSR convention (the whole project): a per-user item set is ``(indptr int64 [U+1],
indices int32 [nnz])`` with the items of user ``u`` in ``indices[indptr[u]:indptr[u+1]]``,
sorted ascending and distinct. :func:`csr_from_pairs` builds one from interaction pairs.

Typical use::

    from pmtnumba.evaluation import csr_from_pairs, evaluate
    train = csr_from_pairs(tr_users, tr_items, n_users)
    valid = csr_from_pairs(va_users, va_items, n_users)
    test = csr_from_pairs(te_users, te_items, n_users)
    val_metrics = evaluate(E_u, E_i, valid, exclude=[train])
    test_metrics = evaluate(E_u, E_i, test, exclude=[train, valid])
    print(test_metrics["recall@20"], test_metrics["ndcg@20"])
"""

from __future__ import annotations

import numpy as np

from .metrics import metrics_from_topk
from .topk import check_csr, empty_csr, topk_rows, union_of

__all__ = [
    "csr_from_pairs",
    "evaluate",
    "topk_for_users",
    "auto_chunk_size",
    "DEFAULT_BUFFER_BYTES",
]

#: Upper bound on the score buffer of one chunk (bytes).
DEFAULT_BUFFER_BYTES = 256 * 2**20


def csr_from_pairs(users, items, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-user item sets as a CSR ``(indptr int64 [n_users+1], indices int32 [nnz])``.

    Pairs ``(users[t], items[t])`` are grouped by user; within a user the items are sorted
    ascending and duplicates collapse to one. Users without pairs get empty rows.

    Raises ``ValueError`` for a user id outside ``[0, n_users)`` or a negative item id.
    """
    users = np.asarray(users, dtype=np.int64).ravel()
    items = np.asarray(items, dtype=np.int64).ravel()
    n_users = int(n_users)
    if users.shape != items.shape:
        raise ValueError("users and items must have the same length")
    if users.size:
        if users.min() < 0 or users.max() >= n_users:
            raise ValueError(f"a user id is outside [0, {n_users})")
        if items.min() < 0:
            raise ValueError("negative item id")
        if items.max() > np.iinfo(np.int32).max:
            raise ValueError("item id does not fit int32")
    order = np.lexsort((items, users))  # by user, then item
    u = users[order]
    it = items[order]
    if u.size:
        keep = np.ones(u.size, np.bool_)
        keep[1:] = (u[1:] != u[:-1]) | (it[1:] != it[:-1])
        u = u[keep]
        it = it[keep]
    indptr = np.zeros(n_users + 1, np.int64)
    np.cumsum(np.bincount(u, minlength=n_users), out=indptr[1:])
    return indptr, it.astype(np.int32)


def auto_chunk_size(n_items: int, max_buffer_bytes: int = DEFAULT_BUFFER_BYTES) -> int:
    """Users per chunk so that a float32 ``[chunk, n_items]`` score buffer fits the budget.

    At least 1 user (a single row must fit), at most 4096 users (larger chunks gain nothing).
    Examples: 17,408 items -> 3,855 users (256 MiB); 296,278 items -> 226 users.
    """
    per_row = 4 * max(1, int(n_items))
    return int(max(1, min(4096, int(max_buffer_bytes) // per_row)))


def _as_f32(x, name):
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array")
    return np.ascontiguousarray(x, dtype=np.float32)


def _chunked_topk(user_emb, item_emb, rows, ex, k, chunk_size, max_buffer_bytes):
    """Top-``k`` of ``user_emb[rows] @ item_emb.T`` in chunks of users (see module doc)."""
    n = rows.size
    n_items = item_emb.shape[0]
    if chunk_size is None:
        chunk_size = auto_chunk_size(n_items, max_buffer_bytes)
    chunk_size = max(1, min(int(chunk_size), max(n, 1)))
    out_items = np.empty((n, k), np.int32)
    out_scores = np.empty((n, k), np.float32)
    if n == 0:
        return out_items, out_scores
    buf = np.empty((chunk_size, n_items), np.float32)  # the only large allocation
    item_t = item_emb.T  # a view: BLAS reads it transposed, nothing is copied
    for start in range(0, n, chunk_size):
        stop = min(n, start + chunk_size)
        r = rows[start:stop]
        block = buf[: stop - start]
        np.matmul(user_emb[r], item_t, out=block)
        topk_rows(block, r, ex[0], ex[1], out_items[start:stop], out_scores[start:stop])
    return out_items, out_scores


def evaluate(
    user_emb,
    item_emb,
    heldout,
    exclude=None,
    ks=(5, 10, 20, 40),
    chunk_size=None,
    users=None,
    max_buffer_bytes: int = DEFAULT_BUFFER_BYTES,
) -> dict:
    """Full-ranking metrics of embeddings on one held-out split.

    Parameters
    ----------
    user_emb : float [U, d]; item_emb : float [I, d]
        Final user and item representations; the score of (u, i) is ``user_emb[u] @ item_emb[i]``
        computed in float32.
    heldout : CSR ``(indptr, indices)`` over the ``U`` users
        The split's held-out items (validation or test).
    exclude : None, a CSR or a list of CSRs over the ``U`` users
        Items never ranked: ``[train]`` when validating, ``[train, valid]`` when testing.
    ks : iterable of int
        Cut-offs (default 5, 10, 20, 40); lists of ``max(ks)`` items are computed.
    chunk_size : int or None
        Users per chunk; default: as many as fit ``max_buffer_bytes`` (see
        :func:`auto_chunk_size`). The result does not depend on it.
    users : int array or None
        Evaluate only these users (default: all). Users without a held-out item are skipped.
    max_buffer_bytes : int
        Budget for the score buffer when ``chunk_size`` is None (256 MiB).

    Returns
    -------
    dict
        ``recall@k``, ``ndcg@k``, ``hr@k``, ``precision@k``, ``mrr@k`` for each ``k`` and
        ``n_users`` (users evaluated); see :mod:`pmtnumba.evaluation.metrics` for definitions.

    The result is deterministic: it does not depend on ``chunk_size`` or the thread count
    (ties in score rank the lower item id first; sums run in a fixed order).
    """
    user_emb = _as_f32(user_emb, "user_emb")
    item_emb = _as_f32(item_emb, "item_emb")
    if user_emb.shape[1] != item_emb.shape[1]:
        raise ValueError(f"embedding widths differ: {user_emb.shape[1]} vs {item_emb.shape[1]}")
    n_users, n_items = user_emb.shape[0], item_emb.shape[0]
    h_indptr, h_indices = check_csr(heldout, "heldout", n_items)
    if h_indptr.size - 1 != n_users:
        raise ValueError(f"heldout has {h_indptr.size - 1} users, user_emb has {n_users}")
    ex = union_of(exclude, n_users, n_items)
    ks_list = [int(k) for k in np.atleast_1d(np.asarray(ks))]
    if not ks_list or min(ks_list) < 1:
        raise ValueError("ks must be a non-empty list of cut-offs >= 1")
    kmax = max(ks_list)
    if users is None:
        cand = np.arange(n_users, dtype=np.int64)
    else:
        cand = np.asarray(users, dtype=np.int64).ravel()
        if cand.size and (cand.min() < 0 or cand.max() >= n_users):
            raise ValueError("a user id is out of range")
    rows = np.ascontiguousarray(cand[np.diff(h_indptr)[cand] > 0])  # users with held-out items
    top, _ = _chunked_topk(user_emb, item_emb, rows, ex, kmax, chunk_size, max_buffer_bytes)
    return metrics_from_topk(top, h_indptr, h_indices, ks_list, users=rows)


def topk_for_users(
    user_emb,
    item_emb,
    users,
    exclude=None,
    k: int = 20,
    chunk_size=None,
    return_scores: bool = False,
    max_buffer_bytes: int = DEFAULT_BUFFER_BYTES,
):
    """Recommendations: the top-``k`` items of each user in ``users``, best first.

    Same scoring, masking, tie-breaking and chunking as :func:`evaluate`. ``exclude`` is None,
    a CSR or a list of CSRs over all ``U`` users (typically ``[train]`` or all seen items).

    Returns int32 ``[len(users), k]`` item ids (``-1`` where fewer than ``k`` items are
    rankable), and float32 scores of the same shape if ``return_scores``.
    """
    user_emb = _as_f32(user_emb, "user_emb")
    item_emb = _as_f32(item_emb, "item_emb")
    if user_emb.shape[1] != item_emb.shape[1]:
        raise ValueError(f"embedding widths differ: {user_emb.shape[1]} vs {item_emb.shape[1]}")
    n_users, n_items = user_emb.shape[0], item_emb.shape[0]
    k = int(k)
    if k < 1:
        raise ValueError("k must be >= 1")
    rows = np.ascontiguousarray(np.asarray(users, dtype=np.int64).ravel())
    if rows.size and (rows.min() < 0 or rows.max() >= n_users):
        raise ValueError("a user id is out of range")
    ex = empty_csr(n_users) if exclude is None else union_of(exclude, n_users, n_items)
    top, sc = _chunked_topk(user_emb, item_emb, rows, ex, k, chunk_size, max_buffer_bytes)
    return (top, sc) if return_scores else top
