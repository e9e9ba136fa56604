"""pmtnumba: personalized multi-task training (PMTRec) of recommender embeddings.

NumPy/Numba engine with hand-derived gradients. The package is organised by what things are:

- :mod:`pmtnumba.data`        data sets, splits, CSR structures and samplers
- :mod:`pmtnumba.tasks`       task losses with their analytic row gradients
- :mod:`pmtnumba.encoders`    embedding encoders (MF)
- :mod:`pmtnumba.combiners`   gradient combiners (EW, PMTRec, task-wise baselines)
- :mod:`pmtnumba.optim`       hand-written (sparse) Adam
- :mod:`pmtnumba.evaluation`  chunked full-ranking evaluation and metrics
- :mod:`pmtnumba.training`    the training loop, early stopping and run I/O
- :mod:`pmtnumba.api`         ``fit``, ``Model`` (recommend, evaluate, load), ``step_inspect``
- :mod:`pmtnumba.plots`       figures of runs (optional ``plot`` extra)
"""

import os as _os

# How Numba's OpenMP threads (libgomp) wait between parallel regions. A training step runs
# several short parallel kernels separated by a few microseconds of Python. libgomp's default
# spins for milliseconds, which on a shared machine with a busy neighbour makes 2 threads far
# slower than 1; pure sleeping (OMP_WAIT_POLICY=PASSIVE) puts two thread wake-ups on the critical
# path of every short region, so 2 threads gain nothing. A short spin of 1,000 rounds (tens of
# microseconds) is the measured middle (benchmarks/README.md, "Kernel design measurements"). Set
# OMP_WAIT_POLICY or GOMP_SPINCOUNT yourself (before importing pmtnumba) to choose otherwise; on a
# loaded machine, 1 thread (--threads 1) is fastest anyway.
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["GOMP_SPINCOUNT"] = "1000"


def _numba_cache_dir() -> str:
    """A Numba cache folder keyed by the hash of the package's source.

    Numba invalidates a cached kernel only when the kernel's own file changes, not when a
    ``register_jitable`` helper it inlines from another file does, so after an update a stale
    cache could silently run old math. Keying the folder by the whole package's source avoids it.
    """
    import hashlib
    from pathlib import Path

    root = Path(__file__).resolve().parent
    h = hashlib.sha1()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    base = _os.environ.get("XDG_CACHE_HOME") or _os.path.join(_os.path.expanduser("~"), ".cache")
    return _os.path.join(base, "pmtnumba", "numba-" + h.hexdigest()[:16])


if "NUMBA_CACHE_DIR" not in _os.environ:
    try:
        _os.environ["NUMBA_CACHE_DIR"] = _numba_cache_dir()
    except OSError:  # unreadable source or no home: keep Numba's default (__pycache__)
        pass

__version__ = "0.1.0"

from .api import Model, StepInspection, fit, step_inspect  # noqa: E402  (the Python API)
