"""Top-K ranking metrics for implicit feedback (SPEC section 6).

For a user u with held-out item set T_u and a ranked list of K item ids (best first, rank 1..K):

============  ==========================================================================
metric        per-user value
============  ==========================================================================
Recall@K      hits / |T_u|, hits = number of the top-K items that are in T_u
Precision@K   hits / K (always divided by K, also when fewer than K items were rankable)
HR@K          1 if hits > 0 else 0 (hit ratio)
NDCG@K        DCG / IDCG; DCG = sum over hit ranks r of 1 / log2(r + 1);
              IDCG = sum_{r=1}^{min(|T_u|, K)} 1 / log2(r + 1) (the DCG of a perfect list)
MRR@K         1 / (rank of the first hit) if there is a hit within K, else 0
============  ==========================================================================

Each metric is averaged over the *evaluated* users: those with at least one held-out item. Users
with an empty T_u are skipped (not counted as zeros); their number is not in ``n_users``.

Padding: a top-K row may end in ``-1`` entries (fewer than K rankable items). They are never hits.
Rows are assumed not to repeat an item (the top-K kernel never does).

Determinism: the per-user values are computed in parallel (one user per iteration, written to its
own row of an array) and then summed in a fixed order; the result does not depend on the number of
threads. (A ``prange`` float reduction would: its partial sums depend on how users are split.)
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..data.csr import csr_contains
from .topk import check_csr, topk_from_scores

__all__ = ["metrics_from_topk", "metrics_from_scores", "per_user_metrics", "METRICS"]

#: Metric names, in the column order of :func:`per_user_metrics`.
METRICS = ("recall", "ndcg", "hr", "precision", "mrr")


@njit(parallel=True, cache=True)
def _per_user_kernel(topk, rows, h_indptr, h_indices, ks, disc, idcg, out, valid):
    """Per-user metric values (Numba kernel, parallel over users).

    topk : int32 [n, K]; rows : int64 [n] user id of each topk row (row of the held-out CSR);
    ks : int64 [m] cut-offs, ascending, each <= K; disc[r] = 1/log2(r + 2) for r = 0..K-1;
    idcg[c] = sum(disc[:c]) for c = 0..K; out : float64 [n, 5 * m] (written; column
    ``5 * j + t`` holds metric ``METRICS[t]`` at ``ks[j]``); valid : uint8 [n] (written).
    """
    n = topk.shape[0]
    m = ks.shape[0]
    kmax = ks[m - 1]
    for i in prange(n):
        u = rows[i]
        a = h_indptr[u]
        b = h_indptr[u + 1]
        n_true = b - a
        if n_true == 0:
            valid[i] = 0
            for c in range(5 * m):
                out[i, c] = 0.0
            continue
        valid[i] = 1
        hits = 0
        dcg = 0.0
        first = 0  # 1-based rank of the first hit, 0 = none yet
        j = 0
        for r in range(kmax):
            item = topk[i, r]
            if item >= 0 and csr_contains(h_indptr, h_indices, u, item):
                hits += 1
                dcg += disc[r]
                if first == 0:
                    first = r + 1
            while j < m and ks[j] == r + 1:  # the list is now ks[j] long: record metrics @ks[j]
                k = ks[j]
                ideal = idcg[n_true if n_true < k else k]
                out[i, 5 * j + 0] = hits / n_true
                out[i, 5 * j + 1] = dcg / ideal
                out[i, 5 * j + 2] = 1.0 if hits > 0 else 0.0
                out[i, 5 * j + 3] = hits / k
                out[i, 5 * j + 4] = 1.0 / first if first > 0 else 0.0
                j += 1


def _prepare_ks(ks, k_available: int):
    ks_list = [int(k) for k in np.atleast_1d(np.asarray(ks))]
    if not ks_list:
        raise ValueError("ks must name at least one cut-off")
    if min(ks_list) < 1:
        raise ValueError("every cut-off in ks must be >= 1")
    if max(ks_list) > k_available:
        raise ValueError(f"cut-off {max(ks_list)} is larger than the top-K lists ({k_available})")
    uniq = np.array(sorted(set(ks_list)), dtype=np.int64)
    return ks_list, uniq


def per_user_metrics(topk, heldout, ks=(5, 10, 20, 40), users=None):
    """Per-user metric values behind :func:`metrics_from_topk`.

    Returns ``(values float64 [n, 5 * len(kk)], valid bool [n], kk int64 [len(kk)])`` where ``kk``
    are the distinct cut-offs ascending and column ``5 * j + t`` is ``METRICS[t]`` at ``kk[j]``.
    Rows of users without held-out items have ``valid = False`` and zeros.
    """
    topk = np.ascontiguousarray(topk, dtype=np.int32)
    if topk.ndim != 2:
        raise ValueError("topk must be a 2-D array [n_users, K]")
    n, K = topk.shape
    _, kk = _prepare_ks(ks, K)
    h_indptr, h_indices = check_csr(heldout, "heldout")
    n_rows = h_indptr.size - 1
    if users is None:
        if n != n_rows:
            raise ValueError(
                f"topk has {n} rows but heldout has {n_rows} users; pass users= to say which "
                "user each topk row belongs to"
            )
        rows = np.arange(n, dtype=np.int64)
    else:
        rows = np.ascontiguousarray(users, dtype=np.int64)
        if rows.shape != (n,):
            raise ValueError("users must have one id per topk row")
        if n and (rows.min() < 0 or rows.max() >= n_rows):
            raise ValueError("a user id is out of range of the heldout CSR")
    r = np.arange(1, K + 1, dtype=np.float64)
    disc = 1.0 / np.log2(r + 1.0)
    idcg = np.zeros(K + 1, np.float64)
    np.cumsum(disc, out=idcg[1:])
    out = np.empty((n, 5 * kk.size), np.float64)
    valid = np.empty(n, np.uint8)
    if n:
        _per_user_kernel(topk, rows, h_indptr, h_indices, kk, disc, idcg, out, valid)
    return out, valid.astype(bool), kk


def metrics_from_topk(topk, heldout_indptr, heldout_indices, ks=(5, 10, 20, 40), users=None):
    """Average Recall, NDCG, HR, Precision and MRR at each cut-off from precomputed top-K lists.

    Parameters
    ----------
    topk : int array [n, K]
        Ranked item ids per user, best first; ``-1`` marks an empty slot (never a hit).
    heldout_indptr, heldout_indices : int64 [U+1], int32 [nnz]
        The held-out items of each user (validation or test split) as a CSR, sorted within rows.
    ks : iterable of int
        Cut-offs, each ``<= K``.
    users : int array [n] or None
        The user id (row of the held-out CSR) of each ``topk`` row. Default: row ``i`` is user
        ``i`` (then ``n`` must equal ``U``).

    Returns
    -------
    dict
        ``{"recall@k", "ndcg@k", "hr@k", "precision@k", "mrr@k"}`` for every ``k`` in ``ks``
        (floats, means over evaluated users) and ``"n_users"`` (int), the number of evaluated
        users (those with at least one held-out item). With no evaluated user the metrics are NaN.

    Example
    -------
    >>> import numpy as np
    >>> topk = np.array([[3, 1, 2]])              # user 0 ranks item 3 first, then 1, then 2
    >>> indptr, indices = np.array([0, 2]), np.array([1, 2])   # held-out items {1, 2}
    >>> m = metrics_from_topk(topk, indptr, indices, ks=(1, 3))
    >>> m["recall@3"], m["hr@1"], m["mrr@3"]
    (1.0, 0.0, 0.5)
    """
    values, valid, kk = per_user_metrics(topk, (heldout_indptr, heldout_indices), ks, users)
    return _average(values, valid, kk, ks)


def _average(values, valid, kk, ks):
    n_eval = int(valid.sum())
    if n_eval:
        # fixed-order sum (numpy's pairwise summation over a fixed array): deterministic
        means = values[valid].sum(axis=0) / n_eval
    else:
        means = np.full(values.shape[1], np.nan)
    col = {int(k): j for j, k in enumerate(kk)}
    out: dict = {}
    for k in ks:
        j = col[int(k)]
        for t, name in enumerate(METRICS):
            out[f"{name}@{int(k)}"] = float(means[5 * j + t])
    out["n_users"] = n_eval
    return out


def metrics_from_scores(scores, heldout, exclude=None, ks=(5, 10, 20, 40), users=None):
    """Metrics of a score matrix: top-K with masking, then :func:`metrics_from_topk`.

    This is the function to call to check metrics for scores computed elsewhere (e.g. by
    another library, or ``user_emb @ item_emb.T`` on a small data set).

    Parameters
    ----------
    scores : float array [n, I]
        Scores of ``n`` users over all ``I`` items. Higher is better; equal scores rank the
        lower item id first; NaN and ``-inf`` scores are never ranked.
    heldout : CSR ``(indptr, indices)`` over ``U`` users
        Held-out items per user (the split being evaluated).
    exclude : None, a CSR, or a list of CSRs over the same ``U`` users
        Items never ranked: ``[train]`` for validation, ``[train, valid]`` for test.
    ks : iterable of int
        Cut-offs; the top-K lists are ``max(ks)`` long.
    users : int array [n] or None
        User id of each score row (default: row ``i`` is user ``i``, and ``n == U``).

    Returns
    -------
    dict as :func:`metrics_from_topk`.
    """
    h_indptr, h_indices = check_csr(heldout, "heldout")
    kmax = max(int(k) for k in np.atleast_1d(np.asarray(ks)))
    scores = np.asarray(scores)
    if users is None and scores.shape[0] != h_indptr.size - 1:
        raise ValueError(
            f"scores has {scores.shape[0]} rows but heldout has {h_indptr.size - 1} users; "
            "pass users="
        )
    rows = np.arange(scores.shape[0]) if users is None else np.asarray(users, dtype=np.int64)
    top = topk_from_scores(scores, kmax, exclude=exclude, users=rows)
    return metrics_from_topk(top, h_indptr, h_indices, ks, users=rows)
