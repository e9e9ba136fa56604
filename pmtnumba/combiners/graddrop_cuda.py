"""CUDA twin of :func:`pmtnumba.combiners.graddrop.graddrop_combine`: GradDrop on the device.

GradDrop is not a combination ``sum_t w_t G[t]`` (it keeps or drops each coordinate by its sign
purity and a uniform draw), so it cannot use the Gram matrix path. Its twin is one kernel: thread
``j`` takes coordinates ``j * PER .. j * PER + PER - 1`` of the flattened step gradient, jumps the
run's PCG64 generator to draw number ``j * PER`` (:mod:`.pcg64`), draws its uniforms in order, and
computes each ``g_q`` with :func:`~.graddrop.graddrop_entry`, the CPU kernel's own function. The
uniforms are bit-identical to the CPU's ``rng.random(D)``; the host then advances its generator by
D draws (:func:`.pcg64.advance_generator`), so the run's later draws are the CPU run's too. The step
reads back one number, R (to know D = R * d). Only a fused multiply-add in ``leak + (1 - leak) m``
or ``v * (...)`` can change the last bit of g against the CPU.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from ..scan_cuda import THREADS, blocks
from .graddrop import graddrop_entry
from .pcg64 import affine128, generator_state, jump, jump_table, output_double, advance_generator

PER = 16  # coordinates per thread: one jump, then PER plain steps


@cuda.jit
def graddrop_cuda(G2, R_dev, d, table, sh, sl, per, leak, eps, out):
    j = cuda.grid(1)
    lo = j * per
    D = R_dev[0] * d
    if lo < D:
        h, l = jump(table, np.uint64(lo), sh, sl)
        for q in range(lo, min(lo + per, D)):
            h, l = affine128(table[0, 0], table[0, 1], table[0, 2], table[0, 3], h, l)
            out[q] = graddrop_entry(G2, q, output_double(h, l), leak, eps)


class GradDropDevice:
    """GradDrop's device state: the jump table of the run's generator (uploaded when its stream changes)."""

    def __init__(self):
        self.inc = None
        self.table = None

    @staticmethod
    def supports(rng) -> bool:
        """Whether the generator is PCG64 (NumPy's default), whose draws the device can reproduce."""
        return rng is not None and generator_state(rng) is not None

    def combine(self, combiner, G2, R_dev, d: int, rng, out) -> None:
        """``out[:R * d]`` = GradDrop of ``G2[:, :R * d]`` with the uniforms ``rng.random(R * d)``."""
        state, inc = generator_state(rng)
        if inc != self.inc:
            self.table, self.inc = cuda.to_device(jump_table(inc)), inc
        R = int(R_dev.copy_to_host()[0])  # one number: how far the host generator moves
        sh, sl = np.uint64(state >> 64), np.uint64(state & ((1 << 64) - 1))
        n = G2.shape[1]
        graddrop_cuda[blocks((n + PER - 1) // PER), THREADS](G2, R_dev, d, self.table, sh, sl, PER,
                                                            float(combiner.leak), float(combiner.eps), out)
        advance_generator(rng, R * d)


def ptx_signatures():
    """(kernel, signature) pairs for tests/cuda_ptx_check.py."""
    return [(graddrop_cuda, "void(float32[:, ::1], int64[::1], int64, uint64[:, ::1], uint64, uint64, int64, "
                            "float64, float64, float32[::1])")]
