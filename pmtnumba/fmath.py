"""``sqrt`` and ``exp`` for scalar math shared by CPU kernels and their CUDA twins.

NumPy's ufuncs (``np.sqrt``, ``np.exp``) compile in Numba's CPU kernels but not in ``numba.cuda``
kernels, and ``math.sqrt`` called from plain Python (the CUDA simulator, ``NUMBA_DISABLE_JIT``)
turns a float32 into a Python float. :func:`fsqrt` / :func:`fexp` are NumPy's in plain Python and
``math.sqrt`` / ``math.exp`` in compiled code on every target (both keep float32 as float32 and
are correctly rounded for ``sqrt``; ``exp`` is libm's on the CPU and libdevice's on a GPU, see
docs/gpu.md).
"""

from __future__ import annotations

import math

import numpy as np
from numba.extending import overload


def fsqrt(x):
    """Square root keeping the argument's float type."""
    return np.sqrt(x)


@overload(fsqrt, target="generic", inline="always")
def _fsqrt_jit(x):
    return lambda x: math.sqrt(x)


def fexp(x):
    """Exponential keeping the argument's float type."""
    return np.exp(x)


@overload(fexp, target="generic", inline="always")
def _fexp_jit(x):
    return lambda x: math.exp(x)


def ffloor(x):
    """Floor as a float (for arguments of magnitude below 2**62)."""
    return np.floor(x)


@overload(ffloor, target="generic", inline="always")
def _ffloor_jit(x):
    return lambda x: np.float64(math.floor(x))


def flog(x):
    """Natural logarithm keeping the argument's float type."""
    return np.log(x)


@overload(flog, target="generic", inline="always")
def _flog_jit(x):
    return lambda x: math.log(x)


def flog1p(x):
    """``log(1 + x)`` keeping the argument's float type."""
    return np.log1p(x)


@overload(flog1p, target="generic", inline="always")
def _flog1p_jit(x):
    return lambda x: math.log1p(x)
