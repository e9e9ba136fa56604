"""Scalar math shared by every task kernel, CPU and CUDA alike.

Written once as ``register_jitable`` functions: Numba inlines them into ``njit`` kernels and
``numba.cuda.jit`` kernels, and plain Python can call them too (handy for teaching and tests).
"""

from __future__ import annotations

import math

from numba.extending import register_jitable


@register_jitable
def softplus(x):
    """``log(1 + exp(x))`` without overflow: ``max(x, 0) + log1p(exp(-|x|))``."""
    if x > 0.0:
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))


@register_jitable
def sigmoid(x):
    """Logistic function, stable for large ``|x|``."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


@register_jitable
def neg_log_sigmoid(x):
    """``-log sigma(x) = softplus(-x)``: the pairwise ranking loss of a score difference ``x``."""
    return softplus(-x)


@register_jitable
def d_neg_log_sigmoid(x):
    """``d/dx [-log sigma(x)] = -sigma(-x)``."""
    return -sigmoid(-x)
