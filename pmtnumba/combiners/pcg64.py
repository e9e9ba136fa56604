"""NumPy's PCG64 draws computed at any position: GradDrop's uniforms on the GPU without a copy.

The CPU GradDrop draws its per-coordinate uniforms ``U = rng.random(D)`` from the run's NumPy
generator (PCG64: a 128-bit LCG ``s <- M s + inc`` with the XSL-RR output, a float64 from the top
53 bits). Its CUDA twin computes the same ``U[q]`` on the device: the LCG's ``n``-step map is
again affine, ``s <- M_n s + C_n``, so a thread jumps from the generator's state to its position
by composing the maps of the set bits of ``n`` (:func:`jump_table` holds them for ``n = 2^i``),
then steps on. The host generator is then advanced by ``D`` draws (:func:`advance_generator`), so
every later draw (PCGrad's orders, the next step) is the one the CPU run makes.

128-bit numbers are (hi, lo) pairs of uint64; the functions are ``shared_jit`` (plain Python on
NumPy scalars under the CUDA simulator and in tests, compiled into CUDA kernels), with every
constant a uint64 so that no int64/uint64 mixing promotes to float.
"""

from __future__ import annotations

import numpy as np

from ..jitshare import shared_jit

MULT = (2549297995355413924 << 64) + 4865540595714422341  # PCG_DEFAULT_MULTIPLIER_128
_MASK128 = (1 << 128) - 1
_MASK64 = (1 << 64) - 1
_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_S11 = np.uint64(11)
_S58 = np.uint64(58)
_S63 = np.uint64(63)
_S64 = np.uint64(64)
_ONE = np.uint64(1)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53


@shared_jit()
def mulhi64(a, b):
    """The high 64 bits of the 128-bit product of two uint64 (32-bit limbs, no overflow)."""
    a0 = a & _M32
    a1 = a >> _S32
    b0 = b & _M32
    b1 = b >> _S32
    p0 = a0 * b0
    p1 = a0 * b1
    p2 = a1 * b0
    mid = (p0 >> _S32) + (p1 & _M32) + (p2 & _M32)
    return a1 * b1 + (p1 >> _S32) + (p2 >> _S32) + (mid >> _S32)


@shared_jit()
def affine128(mh, ml, ch, cl, sh, sl):
    """``(M s + C) mod 2^128`` for 128-bit M, C, s given as (hi, lo) uint64 pairs; returns (hi, lo)."""
    lo = ml * sl
    hi = mulhi64(ml, sl) + mh * sl + ml * sh
    rl = lo + cl
    carry = _ONE if rl < lo else np.uint64(0)
    return hi + ch + carry, rl


@shared_jit()
def output_double(sh, sl):
    """PCG64's XSL-RR output of state (sh, sl) as NumPy's ``random()`` float64 in [0, 1)."""
    x = sh ^ sl
    r = sh >> _S58
    x = (x >> r) | (x << ((_S64 - r) & _S63))
    return np.float64(x >> _S11) * _INV53


def _split(x: int) -> tuple[np.uint64, np.uint64]:
    return np.uint64(x >> 64), np.uint64(x & _MASK64)


def jump_table(inc: int) -> np.ndarray:
    """uint64 [64, 4]: row i = (M_hi, M_lo, C_hi, C_lo) of the 2^i-step map ``s <- M s + C``."""
    out = np.zeros((64, 4), np.uint64)
    m, c = MULT, inc
    for i in range(64):
        out[i] = (*_split(m), *_split(c))
        m, c = (m * m) & _MASK128, ((m + 1) * c) & _MASK128
    return out


@shared_jit()
def jump(table, n, sh, sl):
    """The state ``n`` steps after (sh, sl) (``n`` uint64), composing the table's maps."""
    i = 0
    while n != np.uint64(0):
        if n & _ONE:
            sh, sl = affine128(table[i, 0], table[i, 1], table[i, 2], table[i, 3], sh, sl)
        n = n >> _ONE
        i += 1
    return sh, sl


def advance(state: int, inc: int, n: int) -> int:
    """The 128-bit state ``n`` steps after ``state`` (host, Python integers)."""
    m, c, am, ac = MULT, inc, 1, 0
    while n:
        if n & 1:
            am, ac = (am * m) & _MASK128, (ac * m + c) & _MASK128
        m, c = (m * m) & _MASK128, ((m + 1) * c) & _MASK128
        n >>= 1
    return (am * state + ac) & _MASK128


def generator_state(rng: np.random.Generator) -> tuple[int, int] | None:
    """(state, inc) of a PCG64 generator, or None for another bit generator."""
    st = rng.bit_generator.state
    if st.get("bit_generator") != "PCG64":
        return None
    return int(st["state"]["state"]), int(st["state"]["inc"])


def advance_generator(rng: np.random.Generator, n: int) -> None:
    """Move ``rng`` on by ``n`` float64 draws, as ``rng.random(n)`` does (its buffered 32-bit
    half-word, which ``random`` leaves alone, is kept)."""
    st = rng.bit_generator.state
    st["state"]["state"] = advance(int(st["state"]["state"]), int(st["state"]["inc"]), int(n))
    rng.bit_generator.state = st
