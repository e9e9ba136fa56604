"""CUDA twin of :class:`pmtnumba.encoders.ngcf.NGCF`'s forward and backward passes.

The same equations as ngcf.py (its docstring and docs/gradients.md derive them), one thread per
output entry instead of one per row, each entry computed with the CPU's sequence of operations:

    forward, per layer k       S = L E^(k)                              spmm_cuda
                               Z, E^(k+1), F's block k+1                _layer_forward_cuda
    backward, from the top     gZ = gE * D * LeakyReLU'(Z)              _grad_z_cuda
                               gS = gM + gP * E, acc = dF_k + gM + gP * S  _grad_rows_cuda
                               gW1, gW2, gb: float64 sums per CHUNK rows, chunks in order
                                                                        _weight_parts_cuda, _weight_sum_cuda
                               gE^(k) = acc + L gS                      spmm_add_cuda

The activation, its slope and the message-dropout factor are ngcf.py's own ``shared_jit``
functions (:func:`~.ngcf.leaky_relu`, :func:`~.ngcf.leaky_relu_slope`, :func:`~.ngcf.dropout_scale`):
one definition for both devices, so the device drops exactly the entries the CPU drops for the
same key. The loops over ``j`` and ``c`` are written again here: the CPU's row kernels run them in
the order that vectorises over a row, which a per-entry thread cannot share; the order of the
additions into each entry is the same. The GPU may fuse a multiply and an add (one rounding
instead of two): the only source of difference (docs/gpu.md).

Everything stays on the device: the adjacency, the layer weights (updated there by their Adam,
training/dense_cuda.py), the forward's intermediates and the [T, N, d] backward buffers, all
allocated once per run.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from ..scan_cuda import THREADS, blocks
from .ngcf import CHUNK, dropout_scale, leaky_relu, leaky_relu_slope
from .propagate_cuda import (CompactWorkspace, _entry, compact_rows_cuda, scatter_rows_cuda, spmm_add_cuda,
                             spmm_cuda, zero3_cuda)


@cuda.jit
def _layer_forward_cuda(S, E, W1, W2, b, key, layer, thr, inv_keep, Z, Enext, F, col):
    """``Z = (S + E) W1 + (S * E) W2 + b``, ``Enext = dropout(LeakyReLU(Z))``, also into
    ``F[:, col:col + d]``; thread (r, c)."""
    i = cuda.grid(1)
    N, d = E.shape
    if i < N * d:
        r = i // d
        c = i - r * d
        z = b[c]
        for j in range(d):
            z += (S[r, j] + E[r, j]) * W1[j, c] + (S[r, j] * E[r, j]) * W2[j, c]
        Z[r, c] = z
        o = leaky_relu(z) * dropout_scale(key, r, layer, c, d, thr, inv_keep)
        Enext[r, c] = o
        F[r, col + c] = o


@cuda.jit
def _copy_block(X, F, col):
    """``F[:, col:col + d] = X`` (E^(0), the first block of the final embeddings)."""
    i = cuda.grid(1)
    N, d = X.shape
    if i < N * d:
        r = i // d
        c = i - r * d
        F[r, col + c] = X[r, c]


@cuda.jit
def _take_block(dF, col, out):
    """``out[t] = dF[t, :, col:col + d]`` (the top layer's gradient, gE^(K) = dF_K)."""
    i = cuda.grid(1)
    T, N, d = out.shape
    if i < T * N * d:
        t, r, c = _entry(i, N, d)
        out[t, r, c] = dF[t, r, col + c]


@cuda.jit
def _grad_z_cuda(gE, Z, key, layer, thr, inv_keep, gZ):
    """``gZ = gE * D * LeakyReLU'(Z)``; thread (t, r, c)."""
    i = cuda.grid(1)
    T, N, d = gE.shape
    if i < T * N * d:
        t, r, c = _entry(i, N, d)
        gZ[t, r, c] = gE[t, r, c] * (leaky_relu_slope(Z[r, c]) * dropout_scale(key, r, layer, c, d, thr, inv_keep))


@cuda.jit
def _grad_rows_cuda(gZ, S, E, W1, W2, dF, col0, zero, gS, acc):
    """``gM = gZ W1^T``, ``gP = gZ W2^T`` (added over c in order), then ``gS = gM + gP * E`` and
    ``acc = dF_k + (gM + gP * S)``; thread (t, r, j)."""
    i = cuda.grid(1)
    T, N, d = gZ.shape
    if i < T * N * d:
        t, r, j = _entry(i, N, d)
        m = zero
        q = zero
        for c in range(d):
            g = gZ[t, r, c]
            m += g * W1[j, c]
            q += g * W2[j, c]
        gS[t, r, j] = m + q * E[r, j]
        acc[t, r, j] = dF[t, r, col0 + j] + (m + q * S[r, j])


@cuda.jit
def _weight_parts_cuda(gZ, S, E, part):
    """``part[ch, t, q, c]``, float64, over the rows of chunk ``ch``: q < d: ``sum (S + E)[r, q] gZ[t, r, c]``;
    d <= q < 2d: ``sum (S * E)[r, q - d] gZ[t, r, c]``; q = 2d: ``sum gZ[t, r, c]``."""
    i = cuda.grid(1)
    n_ch, T, Q, d = part.shape
    if i < n_ch * T * Q * d:
        c = i % d
        q = (i // d) % Q
        t = (i // (d * Q)) % T
        ch = i // (d * Q * T)
        N = E.shape[0]
        s = 0.0
        for r in range(ch * CHUNK, min(N, (ch + 1) * CHUNK)):
            if q < d:
                x = np.float64(S[r, q] + E[r, q])
            elif q < 2 * d:
                x = np.float64(S[r, q - d] * E[r, q - d])
            else:
                x = 1.0
            s += x * np.float64(gZ[t, r, c])
        part[ch, t, q, c] = s


@cuda.jit
def _weight_sum_cuda(part, k, gW1, gW2, gb):
    """Layer ``k``'s weight gradients: the chunks' partial sums added in chunk order."""
    i = cuda.grid(1)
    n_ch, T, Q, d = part.shape
    if i < T * Q * d:
        c = i % d
        q = (i // d) % Q
        t = i // (d * Q)
        s = part[0, t, q, c]
        for ch in range(1, n_ch):
            s += part[ch, t, q, c]
        if q < d:
            gW1[t, k, q, c] = s
        elif q < 2 * d:
            gW2[t, k, q - d, c] = s
        else:
            gb[t, k, c] = s


class NGCFDevice:
    """An NGCF encoder's device half, for steps with ``T`` tasks (``encoder`` is the CPU one).

    ``params`` holds the device copies of ``W1``, ``W2``, ``b`` (updated in place, and copied back,
    by the step's :class:`~pmtnumba.training.dense_cuda.DenseDevice`); :meth:`backward` leaves each
    task's gradients on them in ``grads`` ([T, *shape]).
    """

    def __init__(self, encoder, T: int):
        adj = encoder.adj
        E = encoder.E
        N, d = E.shape
        K = self.layers = int(encoder.layers)
        self.N, self.d, self.T = N, d, T
        dt = E.dtype
        self.dtype = dt.type
        self.thr = int(encoder._thr)
        self.inv_keep = encoder._inv_keep(self.thr)
        self.indptr = cuda.to_device(np.ascontiguousarray(adj.indptr, np.int64))
        self.indices = cuda.to_device(adj.indices if adj.nnz else np.zeros(1, adj.indices.dtype))
        data = adj.data(dt)
        self.data = cuda.to_device(data if data.size else np.zeros(1, dt))
        self.params = {k: cuda.to_device(v) for k, v in encoder.dense_params().items()}
        self.grads = {k: cuda.device_array((T,) + v.shape, dt) for k, v in encoder.dense_params().items()}
        self.Es = cuda.device_array((K + 1, N, d), dt)
        self.S = cuda.device_array((K, N, d), dt)
        self.Z = cuda.device_array((K, N, d), dt)
        self.F = cuda.device_array((N, d * (K + 1)), dt)
        self.key = np.uint64(0)
        self.dF = cuda.device_array((T, N, d * (K + 1)), dt)
        self.gE, self.gZ, self.gS, self.acc = (cuda.device_array((T, N, d), dt) for _ in range(4))
        self.part = cuda.device_array(((N + CHUNK - 1) // CHUNK, T, 2 * d + 1, d), np.float64)
        self.G0 = cuda.device_array((T, N, d), dt)
        self.rows0 = cuda.device_array(max(N, 1), np.int64)
        self.compact = CompactWorkspace(N)

    def forward(self, E, key):
        """The final embeddings ``F`` [N, d (K+1)] of the device table ``E``, message dropout drawn
        with ``key`` (the CPU's training forward with the same key)."""
        N, d = self.N, self.d
        self.key = np.uint64(key)
        W1, W2, b = self.params["W1"], self.params["W2"], self.params["b"]
        self.Es[0].copy_to_device(E)
        _copy_block[blocks(N * d), THREADS](E, self.F, 0)
        for k in range(self.layers):
            spmm_cuda[blocks(N * d), THREADS](self.indptr, self.indices, self.data, self.Es[k:k + 1],
                                              self.S[k:k + 1], self.dtype(0))
            _layer_forward_cuda[blocks(N * d), THREADS](self.S[k], self.Es[k], W1[k], W2[k], b[k], self.key, k,
                                                        self.thr, self.inv_keep, self.Z[k], self.Es[k + 1], self.F,
                                                        (k + 1) * d)
        return self.F

    def backward(self, rows, R_dev, G):
        """Per-task gradients on E's rows from ``G [T, S, d (K+1)]`` on the final rows ``rows[:R]``:
        returns ``(rows0, R0_dev, G0)`` as :meth:`LightGCNDevice.backward`, and leaves the weights'
        per-task gradients in ``grads``."""
        T, N, d, K = self.T, self.N, self.d, self.layers
        W1, W2 = self.params["W1"], self.params["W2"]
        gW1, gW2, gb = self.grads["W1"], self.grads["W2"], self.grads["b"]
        zero3_cuda[blocks(self.dF.size), THREADS](self.dF)
        scatter_rows_cuda[blocks(G.size), THREADS](rows, G, R_dev, self.dF)
        n = T * N * d
        _take_block[blocks(n), THREADS](self.dF, K * d, self.gE)
        for k in range(K - 1, -1, -1):
            S, Ek = self.S[k], self.Es[k]
            _grad_z_cuda[blocks(n), THREADS](self.gE, self.Z[k], self.key, k, self.thr, self.inv_keep, self.gZ)
            _grad_rows_cuda[blocks(n), THREADS](self.gZ, S, Ek, W1[k], W2[k], self.dF, k * d, self.dtype(0),
                                                self.gS, self.acc)
            _weight_parts_cuda[blocks(self.part.size), THREADS](self.gZ, S, Ek, self.part)
            _weight_sum_cuda[blocks(T * (2 * d + 1) * d), THREADS](self.part, k, gW1, gW2, gb)
            spmm_add_cuda[blocks(n), THREADS](self.indptr, self.indices, self.data, self.gS, self.acc, self.gE)
        compact_rows_cuda(self.gE, self.compact, self.rows0, self.G0)
        return self.rows0, self.compact.R_dev, self.G0


def ptx_signatures():
    """(kernel, signature) pairs for tests/cuda_ptx_check.py."""
    E, X = "float32[:, ::1]", "float32[:, :, ::1]"
    u64, f32 = "uint64", "float32"
    return [
        (_layer_forward_cuda, f"void({E}, {E}, {E}, {E}, float32[::1], {u64}, int64, int64, {f32}, {E}, {E}, {E}, "
                              "int64)"),
        (_copy_block, f"void({E}, {E}, int64)"),
        (_take_block, f"void({X}, int64, {X})"),
        (_grad_z_cuda, f"void({X}, {E}, {u64}, int64, int64, {f32}, {X})"),
        (_grad_rows_cuda, f"void({X}, {E}, {E}, {E}, {E}, {X}, int64, {f32}, {X}, {X})"),
        (_weight_parts_cuda, f"void({X}, {E}, {E}, float64[:, :, :, ::1])"),
        (_weight_sum_cuda, f"void(float64[:, :, :, ::1], int64, float32[:, :, :, ::1], float32[:, :, :, ::1], "
                           f"{X})"),
    ]
