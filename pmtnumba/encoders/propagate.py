"""Graph propagation: the normalised user-item adjacency and a deterministic sparse-dense product.

The graph encoders (LightGCN, NGCF) multiply embedding tables by the symmetrically normalised
adjacency of the TRAINING interactions over the joint row space (users ``0..U-1``, items
``U..U+I-1``, the same rows as MF's table)::

    A[u, U+i] = A[U+i, u] = 1   for every training pair (u, i)
    A_hat     = D^-1/2 A D^-1/2,   D = diag(row degrees)

stored as CSR (``indptr`` int64 [N+1], ``indices`` int32 [nnz], sorted within a row, ``data``
[nnz]); a row without interactions is empty (degree 0: it receives nothing and sends nothing).
No dense N x N matrix is ever built: memory is O(nnz).

:func:`spmm` computes ``out[b] = A_hat X[b]`` for a stack of tables ``X [B, N, d]`` (B = 1 for an
embedding table, B = T for the per-task gradients of a step), parallel over rows. Each output row
is written by one thread, its neighbours added in CSR order: the result is bit-identical for any
thread count (the engine's rule, SPEC section 3). The inner loop runs over the d columns (an
elementwise update, vectorised without any reassociation).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numba.extending import register_jitable

from ..data.csr import csr_from_pairs


class NormAdjacency:
    """``A_hat`` of a user-item training graph as CSR, with its values in float32 and float64.

    ``n_users``, ``n_items``, ``n_rows = n_users + n_items``, ``indptr``, ``indices``, ``degree``
    (float64 [N]), ``data64`` / ``data32`` (the same values, for tables of either dtype).
    """

    def __init__(self, train_users, train_items, n_users: int, n_items: int):
        u = np.asarray(train_users, np.int64).ravel()
        i = np.asarray(train_items, np.int64).ravel() + int(n_users)
        N = int(n_users) + int(n_items)
        if u.size and (u.min() < 0 or u.max() >= n_users or i.min() < n_users or i.max() >= N):
            raise ValueError(f"a training pair is outside {n_users} users x {n_items} items")
        self.n_users, self.n_items, self.n_rows = int(n_users), int(n_items), N
        self.indptr, self.indices = csr_from_pairs(np.concatenate([u, i]), np.concatenate([i, u]), N)
        deg = np.diff(self.indptr).astype(np.float64)
        self.degree = deg
        inv = np.zeros(N)
        np.divide(1.0, np.sqrt(deg), out=inv, where=deg > 0)
        rows = np.repeat(np.arange(N), np.diff(self.indptr))
        self.data64 = inv[rows] * inv[self.indices]
        self.data32 = self.data64.astype(np.float32)

    @property
    def nnz(self) -> int:
        return int(self.indices.shape[0])

    def data(self, dtype) -> np.ndarray:
        """The values in ``dtype`` (float32 or float64), to multiply a table of that dtype."""
        return self.data32 if np.dtype(dtype) == np.float32 else self.data64

    def to_scipy(self):
        """The same matrix as ``scipy.sparse.csr_matrix`` (float64), for references and tests."""
        import scipy.sparse as sp

        return sp.csr_matrix((self.data64, self.indices, self.indptr), shape=(self.n_rows, self.n_rows))


@register_jitable(inline="always")
def _row_product(indptr, indices, data, X, b, r, o):
    """``o[:] += sum_p data[p] * X[b, indices[p], :]`` over row ``r``'s entries, in CSR order."""
    d = X.shape[2]
    for p in range(indptr[r], indptr[r + 1]):
        w = data[p]
        x = X[b, indices[p]]
        for c in range(d):
            o[c] += w * x[c]


@njit(parallel=True, cache=True)
def spmm(indptr, indices, data, X, out):
    """``out[b] = A_hat X[b]`` for ``X``, ``out`` of shape [B, N, d] (distinct arrays).

    Parallel over rows; one thread per output row, neighbours in CSR order (thread-count
    independent).
    """
    B, N, d = X.shape
    for r in prange(N):
        for b in range(B):
            o = out[b, r]
            for c in range(d):
                o[c] = 0
            _row_product(indptr, indices, data, X, b, r, o)


@njit(parallel=True, cache=True)
def spmm_add(indptr, indices, data, X, add, out):
    """``out[b] = add[b] + A_hat X[b]`` (``out`` may be ``add`` itself, not ``X``). Same order
    rules as :func:`spmm`: per row, ``add`` first, then the neighbours in CSR order."""
    B, N, d = X.shape
    for r in prange(N):
        for b in range(B):
            o = out[b, r]
            a = add[b, r]
            for c in range(d):
                o[c] = a[c]
            _row_product(indptr, indices, data, X, b, r, o)


@njit(parallel=True, cache=True)
def spmm_accumulate(indptr, indices, data, X, out, acc, alpha):
    """``out[b] = A_hat X[b]`` and then ``acc[b] += alpha * out[b]`` (one pass: LightGCN's layer
    sum). ``X``, ``out`` and ``acc`` distinct; the same order rules as :func:`spmm`."""
    B, N, d = X.shape
    for r in prange(N):
        for b in range(B):
            o = out[b, r]
            for c in range(d):
                o[c] = 0
            _row_product(indptr, indices, data, X, b, r, o)
            s = acc[b, r]
            for c in range(d):
                s[c] += alpha * o[c]


@njit(parallel=True, cache=True)
def scale_into(X, alpha, out):
    """``out = alpha * X`` (elementwise, parallel over rows of [B, N, d])."""
    B, N, d = X.shape
    for r in prange(N):
        for b in range(B):
            x = X[b, r]
            o = out[b, r]
            for c in range(d):
                o[c] = alpha * x[c]


@njit(parallel=True, cache=True)
def nonzero_rows(X, mark):
    """``mark[r] = 1`` if any ``X[b, r, :]`` is nonzero, else 0 (``X`` [B, N, d])."""
    B, N, d = X.shape
    for r in prange(N):
        nz = False
        for b in range(B):
            x = X[b, r]
            for c in range(d):
                nz |= x[c] != 0
        mark[r] = nz


def compact_rows(X):
    """The rows of ``X [B, N, d]`` where any slice is nonzero: ``(rows int64 [R], X[:, rows])``.

    When every row is nonzero ``X`` itself is returned (no copy)."""
    mark = np.empty(X.shape[1], np.uint8)
    nonzero_rows(X, mark)
    rows = np.flatnonzero(mark).astype(np.int64)
    if rows.shape[0] == X.shape[1]:
        return rows, X
    return rows, np.ascontiguousarray(X[:, rows])


def scatter_rows(rows, G, n_rows: int, out=None):
    """A zero [T, n_rows, d] table with ``G [T, R, d]`` placed at the (distinct) ``rows``."""
    T, _, d = G.shape
    if out is None:
        out = np.zeros((T, n_rows, d), G.dtype)
    else:
        out[...] = 0
    out[:, rows] = G
    return out
