"""Counter-based random numbers, shared by the CPU kernels and their CUDA twins.

A stateful generator cannot be split across threads without making the draws depend on the
thread count. Instead every random number is a pure function of a key and a counter:

    key   = stream_key(seed, epoch, step, stream)     # one per (run, epoch, step, task)
    r     = draw(key, sample, k)                       # the k-th draw of one sample

``draw`` hashes its inputs with the SplitMix64 finaliser (Steele, Lea & Flood, OOPSLA 2014), a
bijective 64-bit mixer with good avalanche. The same sample gets the same numbers whichever
thread (or GPU) computes it, so the training run is bit-reproducible for a seed.

The functions are ``register_jitable``: plain Python when called from Python, inlined into any
Numba kernel (CPU ``njit`` or ``numba.cuda.jit``) that calls them. This is the one place their
math is written.
"""

from __future__ import annotations

import numpy as np
from numba.extending import register_jitable

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53


@register_jitable
def mix64(z):
    """SplitMix64 finaliser: a bijection of uint64 with full avalanche."""
    z = np.uint64(z)
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@register_jitable
def stream_key(seed, epoch, step, stream):
    """Key of one random stream: a run's ``seed``, the ``epoch``, the ``step`` and a ``stream`` id
    (one per task, so tasks draw independent numbers)."""
    k = mix64(np.uint64(seed) + _GOLDEN)
    k = mix64(k ^ (np.uint64(epoch) * _GOLDEN))
    k = mix64(k ^ (np.uint64(step) * _M1))
    return mix64(k ^ (np.uint64(stream) * _M2))


@register_jitable
def draw(key, sample, k):
    """The ``k``-th uniform 64-bit draw of ``sample`` under ``key``."""
    return mix64(key ^ mix64(np.uint64(sample) * _GOLDEN + np.uint64(k)))


@register_jitable
def randbelow(key, sample, k, n):
    """Uniform integer in ``[0, n)`` (n < 2**32) by Lemire's multiply-shift on the top 32 bits;
    the bias is below n / 2**32, negligible for catalogue sizes."""
    r = draw(key, sample, k) >> _S32
    return np.int64((r * np.uint64(n)) >> _S32)


@register_jitable
def uniform01(key, sample, k):
    """Uniform float64 in [0, 1) with 53 random bits."""
    return np.float64(draw(key, sample, k) >> _S11) * _INV53


def make_key(seed: int, epoch: int, step: int, stream: int) -> np.uint64:
    """``stream_key`` called from Python (wraps uint64 overflow silently, as the kernels do)."""
    with np.errstate(over="ignore"):
        return np.uint64(stream_key(seed, epoch, step, stream))
