"""``shared_jit``: scalar math written once for the CPU kernels and their CUDA twins.

It is Numba's ``register_jitable`` (the function stays plain Python when called from Python,
e.g. under the CUDA simulator, and is compiled into any kernel that calls it) with one change:
``inline="always"`` (Numba-IR inlining, which the CPU kernels use so that loops over row views
vectorise) applies to CPU kernels only. numba-cuda cannot type a call to an IR-inlined
``register_jitable`` function (arguments come out "omitted"), so CUDA kernels get the plain
call (NVVM inlines small device functions itself). Registering an overload for the ``cuda``
target does not import ``numba.cuda``.
"""

from __future__ import annotations

from numba.extending import overload


def shared_jit(inline: str = "never"):
    """Decorator: make ``fn`` callable from CPU (``inline`` as given) and CUDA kernels."""

    def wrap(fn):
        def ov(*args, **kwargs):
            return fn

        overload(fn, jit_options={}, strict=False, inline=inline, target="cpu")(ov)
        overload(fn, jit_options={}, strict=False, target="cuda")(ov)
        return fn

    return wrap
