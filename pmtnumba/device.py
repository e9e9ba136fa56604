"""Which device a run uses: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when a usable GPU is there).

A GPU is *usable* when the optional ``numba-cuda`` package imports and its driver finds a device
(``numba.cuda.is_available()``). The CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, the tests' way to
run the CUDA kernels without a GPU) counts as usable only when that variable is set explicitly in
the environment. Nothing here imports ``numba.cuda`` unless a question about CUDA is asked, so the
CPU install never loads it.
"""

from __future__ import annotations

import os
import warnings

from .errors import PmtError

DEVICES = ("cpu", "cuda", "auto")


class NoGpuError(PmtError):
    """``--device cuda`` on a machine without a usable GPU (one line, names the reason)."""


def simulator_requested() -> bool:
    """Whether the environment asks for the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def simulator_loaded() -> bool:
    """Whether ``numba.cuda`` was imported as the simulator (it reads the variable once, at its
    import; its API functions then come from the simulator's modules). Imports numba.cuda."""
    from numba import cuda

    return cuda.is_available.__module__.endswith("simulator_init")


def gpu_problem() -> str | None:
    """Why no usable GPU is there (a short phrase), or None when there is one."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from numba import cuda
    except ImportError:
        return "the optional numba-cuda package is not installed (pip install 'pmtnumba[cuda]')"
    if simulator_loaded():
        # the simulator runs kernels as Python: usable only when asked for explicitly
        return None if simulator_requested() else "no CUDA driver or NVIDIA GPU was found"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ok = cuda.is_available()
    except Exception as exc:  # a broken driver install: report, never trace back
        return f"the CUDA driver failed to initialise ({str(exc).strip().splitlines()[0]})"
    if not ok:
        return "no CUDA driver or NVIDIA GPU was found"
    return None


def gpu_usable() -> bool:
    return gpu_problem() is None


def gpu_name() -> str | None:
    """The name of the current GPU ("CUDA simulator" under the simulator), or None without one."""
    if not gpu_usable():
        return None
    from numba import cuda

    if simulator_loaded():
        return "CUDA simulator"
    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


def resolve_device(device: str) -> str:
    """``"cpu"`` or ``"cuda"`` for a requested ``device``; ``"auto"`` picks CUDA when usable.

    Raises :class:`NoGpuError` (a one-line :class:`PmtError`) for ``"cuda"`` without a usable GPU,
    and ``ValueError`` for an unknown name.
    """
    if device not in DEVICES:
        raise ValueError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cpu":
        return "cpu"
    problem = gpu_problem()
    if device == "auto":
        return "cpu" if problem else "cuda"
    if problem:
        raise NoGpuError(f"--device cuda: {problem}; use --device cpu or auto")
    return "cuda"


def describe(device: str) -> str:
    """One line for a run header: ``device: cuda (NVIDIA H100)`` or ``device: cpu``."""
    if device == "cuda":
        return f"device: cuda ({gpu_name()})"
    return "device: cpu"


def gpu_free_memory() -> int | None:
    """Bytes free on the current GPU, or None where that is not known (the simulator, no GPU)."""
    if not gpu_usable() or simulator_loaded():
        return None
    from numba import cuda

    try:
        free, _total = cuda.current_context().get_memory_info()
    except Exception:  # a driver that cannot say: the check is skipped, allocation still fails cleanly
        return None
    return int(free)


def is_gpu_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is the CUDA driver's out-of-memory error (checked without importing numba.cuda)."""
    return type(exc).__name__ == "CudaAPIError" and "OUT_OF_MEMORY" in str(exc)
