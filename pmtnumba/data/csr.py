"""Compressed sparse rows: the one adjacency structure of the engine.

A set of items per user (or neighbours per row) is ``(indptr int64 [n+1], indices int32 [nnz])``
with ``indices[indptr[r]:indptr[r+1]]`` sorted and distinct. Samplers use it for membership tests
(binary search) and uniform neighbour draws; evaluation uses it to mask seen items.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from ..jitshare import shared_jit


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


def symmetric_pairs(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both directions of each link, self-loops dropped (duplicates removed by the CSR builder)."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    keep = pairs[:, 0] != pairs[:, 1]
    p = pairs[keep]
    return np.concatenate([p[:, 0], p[:, 1]]), np.concatenate([p[:, 1], p[:, 0]])


@shared_jit(inline="always")
def csr_contains(indptr, indices, r, x):
    """Whether ``x`` is in row ``r`` (binary search in the sorted slice)."""
    lo = indptr[r]
    hi = indptr[r + 1]
    while lo < hi:
        mid = (lo + hi) >> 1
        v = indices[mid]
        if v < x:
            lo = mid + 1
        elif v > x:
            hi = mid
        else:
            return True
    return False
