"""CUDA twin of :func:`pmtnumba.data.samplers.sample_unlinked` (BPR's negative items).

One thread per sample calls the same :func:`~pmtnumba.data.samplers.draw_negative` (counter-based
draws of :mod:`pmtnumba.rng`), so the GPU draws exactly the negatives the CPU draws.
"""

from __future__ import annotations

from numba import cuda

from .samplers import draw_negative


@cuda.jit
def sample_unlinked_cuda(anchors, indptr, indices, n_targets, key, max_tries, out):
    """``out[s]``: a target in ``[0, n_targets)`` not in CSR row ``anchors[s]`` (see the CPU kernel)."""
    s = cuda.grid(1)
    if s < anchors.shape[0]:
        out[s] = draw_negative(indptr, indices, anchors[s], n_targets, key, s, max_tries)
