"""CUDA twin of :func:`pmtnumba.combiners.pmtrec.pmtrec_combine`.

One thread per row ``k < R``: the logits with the same :func:`~pmtnumba.combiners.pmtrec._logit`
(norm, focus for the main task, ``/ tau``, absent tasks), the softmax with
:func:`~pmtnumba.combiners.pmtrec.softmax_row` (the row form of the CPU's block softmax: the same
range reduction and polynomial ``exp``, the same limits), then ``out[k, c]`` with
:func:`~pmtnumba.combiners.pmtrec.weighted_sum_entry`. Differences from the CPU (docs/gpu.md): the
CPU adds a row's squares in SIMD lanes, the GPU left to right, and the GPU may fuse
multiply-adds; both change the last bits only.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from .pmtrec import _logit, softmax_row, weighted_sum_entry

MAX_TASKS = 16  # tasks per step on the GPU (a thread's local arrays)


@cuda.jit
def pmtrec_cuda(G, R_dev, focus, tau, drop_absent, out, W):
    k = cuda.grid(1)
    if k < R_dev[0]:
        T = G.shape[0]
        z = cuda.local.array(MAX_TASKS, np.float64)
        w = cuda.local.array(MAX_TASKS, np.float64)
        for t in range(T):
            z[t] = _logit(G[t, k], t == 0, focus, tau, drop_absent)
        softmax_row(z, w, T)
        for t in range(T):
            W[k, t] = w[t]
        for c in range(G.shape[2]):
            out[k, c] = weighted_sum_entry(G, W, k, c)
