"""CUDA twin of :class:`pmtnumba.encoders.lightgcn.LightGCN`'s forward and backward passes.

The same computation as :func:`~pmtnumba.encoders.lightgcn.lightgcn_propagate` with the twins of
:mod:`.propagate_cuda`: ``out = a X``, then K layers of ``nxt = A_hat cur``, ``out += a nxt``
(``a = 1 / (K + 1)`` in the table's dtype), the forward on the table ``E`` [1, N, d], the backward on
the step's per-task gradients scattered into a [T, N, d] table, then compacted to the rows with a
nonzero gradient, as the CPU's :meth:`LightGCN.backward` does. Everything stays on the device: the
adjacency (uploaded once) and the [T, N, d] buffers (allocated once per run).
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from ..scan_cuda import THREADS, blocks
from .propagate_cuda import (CompactWorkspace, compact_rows_cuda, scale_into_cuda, scatter_rows_cuda,
                             spmm_accumulate_cuda, zero3_cuda)


class LightGCNDevice:
    """A LightGCN encoder's device half, for steps with ``T`` tasks (``encoder`` is the CPU one)."""

    def __init__(self, encoder, T: int):
        adj = encoder.adj
        E = encoder.E
        N, d = E.shape
        self.N, self.d, self.T = N, d, T
        self.layers = int(encoder.layers)
        self.dtype = E.dtype.type
        self.a = self.dtype(1.0 / (self.layers + 1))
        self.indptr = cuda.to_device(np.ascontiguousarray(adj.indptr, np.int64))
        self.indices = cuda.to_device(adj.indices if adj.nnz else np.zeros(1, adj.indices.dtype))
        data = adj.data(E.dtype)
        self.data = cuda.to_device(data if data.size else np.zeros(1, E.dtype))
        self.F = cuda.device_array((1, N, d), E.dtype)
        self.work1 = cuda.device_array((2, 1, N, d), E.dtype)
        self.dF = cuda.device_array((T, N, d), E.dtype)
        self.out = cuda.device_array((T, N, d), E.dtype)
        self.workT = cuda.device_array((2, T, N, d), E.dtype)
        self.G0 = cuda.device_array((T, N, d), E.dtype)
        self.rows0 = cuda.device_array(max(N, 1), np.int64)
        self.compact = CompactWorkspace(N)

    def propagate(self, X, out, work) -> None:
        """``out = sum_k a A_hat^k X`` for a stack ``X [B, N, d]`` (``work`` [2, B, N, d])."""
        n = X.shape[0] * self.N * self.d
        scale_into_cuda[blocks(n), THREADS](X, self.a, out)
        cur = X
        for k in range(self.layers):
            nxt = work[k % 2]
            spmm_accumulate_cuda[blocks(n), THREADS](self.indptr, self.indices, self.data, cur, nxt, out, self.a,
                                                     self.dtype(0))
            cur = nxt

    def forward(self, E, key=None):
        """The final embeddings ``F`` [N, d] of the device table ``E`` (a device view); ``key``
        (the training noise's, as NGCF's) is not used: LightGCN has no training noise."""
        self.propagate(E.reshape(1, self.N, self.d), self.F, self.work1)
        return self.F[0]

    def backward(self, rows, R_dev, G):
        """Per-task gradients on E's rows from ``G [T, S, d]`` on the final rows ``rows[:R]``:
        returns ``(rows0, R0_dev, G0)`` with ``G0[:, :R0]`` on the rows ``rows0[:R0]`` (ascending)."""
        zero3_cuda[blocks(self.dF.size), THREADS](self.dF)
        scatter_rows_cuda[blocks(G.size), THREADS](rows, G, R_dev, self.dF)
        self.propagate(self.dF, self.out, self.workT)
        compact_rows_cuda(self.out, self.compact, self.rows0, self.G0)
        return self.rows0, self.compact.R_dev, self.G0
