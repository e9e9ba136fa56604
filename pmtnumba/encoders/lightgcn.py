"""LightGCN (He et al., SIGIR 2020): linear propagation over the normalised user-item graph.

Forward, with ``A_hat`` the normalised adjacency of the training interactions
(:class:`~pmtnumba.encoders.propagate.NormAdjacency`) and ``a_k = 1 / (K + 1)``::

    E^(0) = E                      (the parameters, [N, d])
    E^(k+1) = A_hat E^(k)          k = 0 .. K-1
    F = sum_k a_k E^(k)            (the final embeddings the tasks and the evaluation use)

Backward: F is linear in E, ``F = P E`` with ``P = sum_k a_k A_hat^k``, so for any loss L,
``dL/dE = P^T dL/dF = sum_k a_k (A_hat^T)^k dL/dF = P dL/dF`` because ``A_hat`` is symmetric:
the backward pass is the forward pass applied to the gradient (docs/gradients.md, LightGCN).
It runs on every task's gradient at once, as a stack ``[T, N, d]``.

Both directions are K calls of :func:`~pmtnumba.encoders.propagate.spmm_accumulate` (one pass
per layer: the product and the running sum), so the cost is O(K (nnz + N) d) per table and the
results are bit-identical for any thread count. The gradient on E is nonzero on the rows within
K hops of a row the tasks touched, which on the shipped data is nearly every row: the returned
``G0`` keeps only rows with a nonzero gradient (all rows: no copy).
"""

from __future__ import annotations

import numpy as np

from .base import Encoder
from .mf import init_table
from .propagate import NormAdjacency, compact_rows, scale_into, scatter_rows, spmm_accumulate


def lightgcn_propagate(adj: NormAdjacency, X, layers: int, out=None, work=None):
    """``out = sum_{k=0..K} a_k A_hat^k X`` for a stack ``X [B, N, d]``, ``a_k = 1/(K+1)``.

    ``work`` (optional) is a [2, B, N, d] scratch array of X's dtype. Returns ``out``.
    """
    B, N, d = X.shape
    dt = X.dtype
    a = dt.type(1.0 / (layers + 1))
    if out is None:
        out = np.empty_like(X)
    if work is None:
        work = np.empty((2,) + X.shape, dt)
    data = adj.data(dt)
    scale_into(X, a, out)
    cur = X
    for k in range(layers):
        nxt = work[k % 2]
        spmm_accumulate(adj.indptr, adj.indices, data, cur, nxt, out, a)
        cur = nxt
    return out


class LightGCN(Encoder):
    """LightGCN over the training graph ``adj``; parameters ``E [N, d]`` (float32, Xavier init as
    MF's table), ``layers`` = K propagation steps (default 3)."""

    name = "lightgcn"

    def __init__(self, adj: NormAdjacency, dim: int, seed: int, layers: int = 3, dtype=np.float32):
        if layers < 0:
            raise ValueError(f"--layers must be >= 0, got {layers}")
        self.adj = adj
        self.n_users, self.n_items = adj.n_users, adj.n_items
        self.layers = int(layers)
        self.E = init_table(adj.n_users, adj.n_items, dim, seed).astype(dtype, copy=False)
        N = adj.n_rows
        self._F = np.empty((1, N, dim), self.E.dtype)
        self._work = np.empty((2, 1, N, dim), self.E.dtype)
        self._bwd = None  # (dense gradient, output, scratch) buffers for T tasks

    def forward(self, key=None, train: bool = False) -> np.ndarray:
        lightgcn_propagate(self.adj, self.E[None], self.layers, self._F, self._work)
        return self._F[0]

    def backward(self, rows, G):
        T, _, d = G.shape
        N = self.adj.n_rows
        if self._bwd is None or self._bwd[0].shape[0] != T or self._bwd[0].dtype != G.dtype:
            self._bwd = (np.empty((T, N, d), G.dtype), np.empty((T, N, d), G.dtype),
                         np.empty((2, T, N, d), G.dtype))
        dF, out, work = self._bwd
        scatter_rows(rows, G, N, out=dF)
        lightgcn_propagate(self.adj, dF, self.layers, out, work)
        rows0, G0 = compact_rows(out)
        return rows0, G0, {}

    def config(self) -> dict:
        return {"layers": self.layers}
