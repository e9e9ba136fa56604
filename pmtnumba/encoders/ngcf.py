"""NGCF (Wang et al., SIGIR 2019) with a hand-derived backward pass.

Forward, with ``L = A_hat`` the normalised adjacency of the training interactions, ``E^(0) = E``
(the parameters, [N, d]) and per layer k = 0 .. K-1 its own ``W1^(k), W2^(k)`` [d, d] and
``b^(k)`` [d]::

    S^(k)   = L E^(k)                                                   (spmm)
    Z^(k)   = (S^(k) + E^(k)) W1^(k) + (S^(k) * E^(k)) W2^(k) + b^(k)   (_layer_forward)
    E^(k+1) = D^(k) * LeakyReLU_0.2(Z^(k))                              (_layer_forward)
    F       = [E^(0) | E^(1) | ... | E^(K)]                             ([N, d (K+1)])

``(L + I) E W1`` of the paper is ``(S + E) W1``; ``*`` is the elementwise product. ``D^(k)`` is
message dropout (training only): each entry kept with probability ``1 - p`` and scaled by
``1 / (1 - p)``, the keep decision a pure function of (key, row, layer, column) through the
counter-based generator (:mod:`pmtnumba.rng`), so the forward pass and its backward see the same
mask and the result does not depend on the thread count. Sixteen bits of a draw decide one entry
(``p`` is rounded to a multiple of 2^-16).

Backward (docs/gradients.md, NGCF), for each task's ``dF`` [N, d (K+1)] split into the blocks
``dF_k``, from the top layer down with ``gE^(K) = dF_K``::

    gZ       = gE^(k+1) * D^(k) * LeakyReLU'(Z^(k))        (_layer_backward_rows)
    gW1^(k)  = (S + E)^T gZ,  gW2^(k) = (S * E)^T gZ,  gb^(k) = 1^T gZ    (_weight_grads)
    gM       = gZ W1^(k)T,    gP = gZ W2^(k)T             (_layer_backward_rows)
    gS       = gM + gP * E                                (_layer_backward_rows)
    gE^(k)   = dF_k + gM + gP * S + L gS                  (_layer_backward_rows, then spmm_add)

(``L`` symmetric: ``L^T gS = L gS``). Every task is run through it at once as a [T, N, d] stack.
Row kernels are parallel over rows (one thread per row, fixed loop order); the weight gradients
sum rows in fixed chunks of ``CHUNK`` rows, the chunks in order, in float64: every result is
bit-identical for any thread count.

Differences from the NGCF authors' code, on purpose (the issue's reference formulation): one
bias per layer (theirs: one per product), ``(L + I)`` in the first product (theirs: ``L``), and
no L2 normalisation of each layer's output before the concatenation.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..jitshare import shared_jit
from ..rng import draw
from .base import Encoder
from .mf import init_table, xavier_uniform
from .propagate import NormAdjacency, compact_rows, scatter_rows, spmm, spmm_add

SLOPE = 0.2  # LeakyReLU slope
CHUNK = 256  # rows per partial sum of the weight gradients (fixed: thread-count independent)


def keep_threshold(p: float) -> int:
    """Message dropout: an entry is dropped when its 16 random bits are below this (p * 2^16)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"NGCF message dropout must be in [0, 1), got {p}")
    return int(round(p * 65536.0))


@shared_jit(inline="always")
def leaky_relu(z):
    """NGCF's activation: ``z`` for ``z > 0``, else ``SLOPE * z``."""
    return z if z > 0 else SLOPE * z


@shared_jit(inline="always")
def leaky_relu_slope(z):
    """Its derivative at ``z`` (1 or ``SLOPE``, float64; 0 counts as negative, as in PyTorch)."""
    return 1.0 if z > 0 else SLOPE


@shared_jit(inline="always")
def dropout_scale(key, r, layer, c, d, thr, inv_keep):
    """The dropout factor of entry (r, c) of layer ``layer``'s output: 0 or ``inv_keep``
    (1 / (1 - p)); 1 when ``thr == 0`` (no dropout). Four entries share one 64-bit draw."""
    if thr == 0:
        return 1.0
    w = draw(key, r, layer * ((d + 3) >> 2) + (c >> 2))
    bits = np.int64((w >> np.uint64(16 * (c & 3))) & np.uint64(0xFFFF))
    return inv_keep if bits >= thr else 0.0


@njit(parallel=True, cache=True)
def _layer_forward(S, E, W1, W2, b, key, layer, thr, inv_keep, Z, Enext):
    """``Z = (S + E) W1 + (S * E) W2 + b`` and ``Enext = dropout(LeakyReLU(Z))``, per row."""
    N, d = E.shape
    for r in prange(N):
        z = Z[r]
        s = S[r]
        e = E[r]
        for c in range(d):
            z[c] = b[c]
        for j in range(d):
            m1 = s[j] + e[j]
            pj = s[j] * e[j]
            w1 = W1[j]
            w2 = W2[j]
            for c in range(d):
                z[c] += m1 * w1[c] + pj * w2[c]
        o = Enext[r]
        for c in range(d):
            o[c] = leaky_relu(z[c]) * dropout_scale(key, r, layer, c, d, thr, inv_keep)


@njit(parallel=True, cache=True)
def _layer_backward_rows(gE, Z, S, E, W1T, W2T, key, layer, thr, inv_keep, dF, col0, gZ, gS, acc):
    """Per row and task: ``gZ``, ``gS = gM + gP * E`` and ``acc = dF_k + gM + gP * S`` (the
    direct part of gE^(k); the caller adds ``L gS``), with ``gM = W1 gz`` and ``gP = W2 gz`` summed
    as rows of the transposes ``W1T``, ``W2T`` (an elementwise loop that vectorises). ``gE``,
    ``gZ``, ``gS``, ``acc`` are [T, N, d]; ``dF`` [T, N, d(K+1)] with this layer's input block at
    column ``col0``."""
    T, N, d = gE.shape
    for r in prange(N):
        z = Z[r]
        s = S[r]
        e = E[r]
        for t in range(T):
            gz = gZ[t, r]
            ge = gE[t, r]
            for c in range(d):
                gz[c] = ge[c] * (leaky_relu_slope(z[c]) * dropout_scale(key, r, layer, c, d, thr, inv_keep))
            gm = gS[t, r]  # gM accumulates here, then becomes gS
            gp = acc[t, r]  # gP accumulates here, then becomes acc
            for j in range(d):
                gm[j] = 0
                gp[j] = 0
            for c in range(d):
                g = gz[c]
                w1 = W1T[c]
                w2 = W2T[c]
                for j in range(d):
                    gm[j] += g * w1[j]
                    gp[j] += g * w2[j]
            df = dF[t, r]
            for j in range(d):
                m = gm[j]
                q = gp[j]
                gm[j] = m + q * e[j]
                gp[j] = df[col0 + j] + (m + q * s[j])


@njit(parallel=True, cache=True)
def _weight_grads(gZ, S, E, part):
    """Partial sums per chunk of ``CHUNK`` rows: ``part[ch, t, :d] = (S + E)^T gZ[t]``,
    ``part[ch, t, d:2d] = (S * E)^T gZ[t]``, ``part[ch, t, 2d] = 1^T gZ[t]`` (float64)."""
    T, N, d = gZ.shape
    n_ch = part.shape[0]
    for ch in prange(n_ch):
        P = part[ch]
        P[...] = 0.0
        for r in range(ch * CHUNK, min(N, (ch + 1) * CHUNK)):
            s = S[r]
            e = E[r]
            for t in range(T):
                gz = gZ[t, r]
                Pt = P[t]
                for j in range(d):
                    m1 = np.float64(s[j] + e[j])
                    pj = np.float64(s[j] * e[j])
                    p1 = Pt[j]
                    p2 = Pt[d + j]
                    for c in range(d):
                        g = np.float64(gz[c])
                        p1[c] += m1 * g
                        p2[c] += pj * g
                pb = Pt[2 * d]
                for c in range(d):
                    pb[c] += np.float64(gz[c])


class NGCF(Encoder):
    """NGCF over the training graph ``adj``: ``E [N, d]`` (Xavier, as MF's table), per layer
    ``W1[k], W2[k]`` [d, d] (Xavier) and ``b[k]`` [d] (zero); ``layers`` = K; ``dropout`` = p of
    the message dropout (training forward only). Final embeddings have width ``d (K + 1)``."""

    name = "ngcf"

    def __init__(self, adj: NormAdjacency, dim: int, seed: int, layers: int = 3, dropout: float = 0.1,
                 dtype=np.float32):
        if layers < 1:
            raise ValueError(f"--layers must be >= 1 for ngcf, got {layers}")
        self.adj = adj
        self.n_users, self.n_items = adj.n_users, adj.n_items
        self.layers = K = int(layers)
        self.dropout = float(dropout)
        self._thr = keep_threshold(self.dropout)
        self.E = init_table(adj.n_users, adj.n_items, dim, seed).astype(dtype, copy=False)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x9CF]))
        self.W1 = np.stack([xavier_uniform(dim, dim, rng, dtype) for _ in range(K)])
        self.W2 = np.stack([xavier_uniform(dim, dim, rng, dtype) for _ in range(K)])
        self.b = np.zeros((K, dim), dtype)
        N = adj.n_rows
        self._Es = np.empty((K + 1, N, dim), dtype)  # E^(0..K) of the last forward
        self._S = np.empty((K, N, dim), dtype)
        self._Z = np.empty((K, N, dim), dtype)
        self._F = np.empty((N, dim * (K + 1)), dtype)
        self._key = np.uint64(0)
        self._train_thr = 0
        self._bwd = None

    @property
    def out_dim(self) -> int:
        return int(self.E.shape[1]) * (self.layers + 1)

    def dense_params(self) -> dict:
        return {"W1": self.W1, "W2": self.W2, "b": self.b}

    def _inv_keep(self, thr):
        return self.E.dtype.type(1.0 / (1.0 - thr / 65536.0))

    def forward(self, key=None, train: bool = False) -> np.ndarray:
        thr = self._thr if (train and key is not None) else 0
        key = np.uint64(0 if key is None else key)
        self._key, self._train_thr = key, thr
        adj, d = self.adj, self.E.shape[1]
        data = adj.data(self.E.dtype)
        self._Es[0] = self.E
        for k in range(self.layers):
            spmm(adj.indptr, adj.indices, data, self._Es[k][None], self._S[k][None])
            _layer_forward(self._S[k], self._Es[k], self.W1[k], self.W2[k], self.b[k], key, k, thr,
                           self._inv_keep(thr), self._Z[k], self._Es[k + 1])
        for k in range(self.layers + 1):
            self._F[:, k * d:(k + 1) * d] = self._Es[k]
        return self._F

    def backward(self, rows, G):
        T = G.shape[0]
        adj, d, K = self.adj, self.E.shape[1], self.layers
        N = adj.n_rows
        dt = G.dtype
        if self._bwd is None or self._bwd[0].shape[0] != T or self._bwd[0].dtype != dt:
            self._bwd = tuple(np.empty(s, dt) for s in ((T, N, d * (K + 1)), (T, N, d), (T, N, d), (T, N, d),
                                                          (T, N, d)))
        dF, gE, gZ, gS, acc = self._bwd
        scatter_rows(rows, G, N, out=dF)
        gE[...] = dF[:, :, K * d:]
        data = adj.data(dt)
        n_ch = (N + CHUNK - 1) // CHUNK
        part = np.empty((n_ch, T, 2 * d + 1, d))
        gW1 = np.empty((T,) + self.W1.shape, dt)
        gW2 = np.empty((T,) + self.W2.shape, dt)
        gb = np.empty((T,) + self.b.shape, dt)
        thr = self._train_thr
        for k in range(K - 1, -1, -1):
            S, Ek = self._S[k], self._Es[k]
            W1T = np.ascontiguousarray(self.W1[k].T)
            W2T = np.ascontiguousarray(self.W2[k].T)
            _layer_backward_rows(gE, self._Z[k], S, Ek, W1T, W2T, self._key, k, thr,
                                 self._inv_keep(thr), dF, k * d, gZ, gS, acc)
            _weight_grads(gZ, S, Ek, part)
            tot = part.sum(axis=0)  # chunks in a fixed order (NumPy's pairwise sum over a fixed shape)
            gW1[:, k] = tot[:, :d]
            gW2[:, k] = tot[:, d:2 * d]
            gb[:, k] = tot[:, 2 * d]
            spmm_add(adj.indptr, adj.indices, data, gS, acc, gE)  # gE^(k) = acc + L gS
        rows0, G0 = compact_rows(gE)
        return rows0, G0, {"W1": gW1, "W2": gW2, "b": gb}

    def config(self) -> dict:
        return {"layers": self.layers, "dropout": self.dropout}
