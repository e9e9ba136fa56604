"""NGCF's dense parameters (its layer weights ``W1``, ``W2``, ``b``) in a device step: their
per-task gradients combined as :func:`pmtnumba.training.step.combine_encoder_gradients` combines
them on the CPU, then one Adam each, everything on the device.

How each combiner sees them is the CPU's rule (training/step.py says why):

- Row-wise combiners (EW, PMTRec): each layer's matrix or bias is one "row" with its own per-task
  norms, so the same kernels as the embedding rows (``ew_cuda``, ``pmtrec_cuda``) run on the
  ``[T, K, size]`` view of each parameter's gradients.
- Gram-based task-wise baselines (PCGrad, GradVac, CAGrad, Aligned-MTL, Nash-MTL, RLW): the CPU
  concatenates the embedding rows and every dense parameter into one vector per task. The Gram
  matrix of that vector is the sum of the Gram matrices of its parts, so each part's is reduced
  on the device (combiners/gram_cuda.py), the host adds the T x T results and solves for the
  weights once, and the same weights multiply every part.
- Anything else (GradDrop, whose per-coordinate draws follow the CPU's concatenated layout): the
  gradients go to the host, ``combine_encoder_gradients`` combines them, the results come back.

Each parameter's Adam is the CPU's (``mode="sparse"`` over all its rows, on the
``[rows, last axis]`` view): ``adam_sparse_cuda`` with every row listed.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from ..combiners.base_cuda import ew_cuda
from ..combiners.gram_cuda import GramWorkspace
from ..combiners.pmtrec_cuda import pmtrec_cuda
from ..optim.adam_cuda import adam_sparse_cuda
from ..scan_cuda import THREADS, blocks


@cuda.jit
def _finite_flat(X, info, at):
    """``info[at] = 0`` if an entry of the flat ``X`` is not finite (it is left alone otherwise)."""
    i = cuda.grid(1)
    if i < X.shape[0] and not X[i] - X[i] == 0:
        info[at] = 0


class DenseDevice:
    """The dense parameters of one device step.

    ``params[name]``: the device parameter ``[K, ...]`` (K layers); ``grads[name]``: its per-task
    gradients ``[T, K, ...]`` (written by the encoder's backward); ``host[name]``: the encoder's
    host array of the parameter; ``adams[name]``: the host :class:`~pmtnumba.optim.Adam` of the
    parameter (hyper-parameters, step count, and the host copy of its moments); ``gram``: whether
    the combiner reduces a Gram matrix on the device.
    """

    def __init__(self, params: dict, grads: dict, host: dict, adams: dict, T: int, gram: bool):
        self.params, self.grads, self.host, self.adams, self.T = params, grads, host, adams, T
        self.K = next(iter(params.values())).shape[0]
        self.size = {k: int(p[0].size) for k, p in params.items()}  # one layer's entries
        self.g = {k: cuda.device_array(p.shape, p.dtype) for k, p in params.items()}
        self.MV = {k: cuda.to_device(adams[k].MV) for k in params}
        self.rows = {k: cuda.to_device(np.arange(adams[k].E.shape[0], dtype=np.int64)) for k in params}
        self.R = {k: cuda.to_device(np.array([adams[k].E.shape[0]], np.int64)) for k in params}
        self.RK = cuda.to_device(np.array([self.K], np.int64))
        self.one = cuda.to_device(np.ones(1, np.int64))
        self.W = cuda.device_array((self.K, T), np.float64)
        self.grams = {k: GramWorkspace(T, self.K * n) for k, n in self.size.items()} if gram else None

    def _by_layer(self, name):
        """``(G [T, K, size], g [K, size])``: one "row" per layer."""
        n = self.size[name]
        return self.grads[name].reshape(self.T, self.K, n), self.g[name].reshape(self.K, n)

    def _flat(self, name):
        """``(G2 [T, K * size], g [K * size])``: the parameter as one vector per task."""
        n = self.K * self.size[name]
        return self.grads[name].reshape(self.T, n), self.g[name].reshape(n)

    def ew(self) -> None:
        for name, n in self.size.items():
            G, g = self._by_layer(name)
            ew_cuda[blocks(self.K * n), THREADS](G, self.RK, g)

    def pmtrec(self, focus: float, tau: float, drop_absent: bool) -> None:
        for name in self.size:
            G, g = self._by_layer(name)
            pmtrec_cuda[blocks(self.K), THREADS](G, self.RK, focus, tau, drop_absent, g, self.W)

    def gram(self) -> np.ndarray:
        """The sum of the parameters' Gram matrices (float64 [T, T], on the host)."""
        A = np.zeros((self.T, self.T))
        for name in self.size:
            G2, _ = self._flat(name)
            A += self.grams[name].gram(G2, self.one, G2.shape[1])
        return A

    def weighted_sum(self, w: np.ndarray) -> None:
        """``g = sum_t w[t] G[t]`` for every parameter."""
        for name in self.size:
            G2, g = self._flat(name)
            self.grams[name].weighted_sum(G2, w, self.one, G2.shape[1], g)

    def to_host(self) -> dict:
        """The per-task gradients on the host, as the CPU encoder's backward returns them."""
        return {k: v.copy_to_host() for k, v in self.grads.items()}

    def set_combined(self, gd: dict) -> None:
        """Upload combined gradients computed on the host."""
        for k, v in gd.items():
            self.g[k].copy_to_device(np.ascontiguousarray(v, self.g[k].dtype))

    def check_finite(self, info, at: int) -> None:
        """Clear the step's finite flag ``info[at]`` if a per-task or combined gradient is not finite."""
        for name in self.size:
            for X in self._flat(name)[0].reshape(-1), self.g[name].reshape(-1):
                _finite_flat[blocks(X.shape[0]), THREADS](X, info, at)

    def adam(self) -> None:
        """One Adam step of every parameter with its combined gradient."""
        for name, ad in self.adams.items():
            rows, last = ad.E.shape
            args = ad.next_args()
            adam_sparse_cuda[blocks(rows), THREADS](self.params[name].reshape(rows, last), self.MV[name],
                                                    self.rows[name], self.R[name], self.g[name].reshape(rows, last),
                                                    *args)

    def download(self) -> None:
        """Copy the parameters into the encoder's arrays and their moments into the host Adams."""
        for name, ad in self.adams.items():
            self.params[name].copy_to_host(self.host[name])
            self.MV[name].copy_to_host(ad.MV)


def ptx_signatures():
    """(kernel, signature) pairs for tests/cuda_ptx_check.py."""
    return [(_finite_flat, "void(float32[::1], float64[::1], int64)")]
