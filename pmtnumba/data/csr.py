"""Compressed sparse rows: the one adjacency structure of the engine.

A set of items per user (or neighbours per row) is ``(indptr int64 [n+1], indices int32 [nnz])``
with ``indices[indptr[r]:indptr[r+1]]`` sorted and distinct. Samplers use it for membership tests
(binary search) and uniform neighbour draws; evaluation uses it to mask seen items.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def csr_from_pairs(rows, cols, n_rows: int):
    """Build a sorted, de-duplicated CSR from (row, col) pairs."""
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    if rows.size:
        width = int(cols.max()) + 1
        key = np.unique(rows * width + cols)
        rows, cols = key // width, key % width
    counts = np.bincount(rows, minlength=n_rows) if rows.size else np.zeros(n_rows, np.int64)
    indptr = np.zeros(n_rows + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, cols.astype(np.int32)


def symmetric_pairs(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both directions of each link, self-loops dropped (duplicates removed by the CSR builder)."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    keep = pairs[:, 0] != pairs[:, 1]
    p = pairs[keep]
    return np.concatenate([p[:, 0], p[:, 1]]), np.concatenate([p[:, 1], p[:, 0]])


@njit(cache=True, inline="always")
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
