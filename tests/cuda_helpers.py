"""Helpers of the CUDA twins' tests: skip without numba-cuda or when numba.cuda is not the
simulator (tests/conftest.py loads it so), and a record of the max abs/rel difference per kernel."""

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")
from pmtnumba.device import simulator_loaded  # noqa: E402

if not simulator_loaded():  # pragma: no cover - a real GPU process: these tests target the simulator
    pytest.skip("numba.cuda was not loaded as the simulator", allow_module_level=True)

DIFFS: dict = {}


def diff(name: str, cpu, gpu) -> tuple[float, float]:
    """Record and return (max abs, max rel) difference of two arrays (rel over |cpu| > 1e-30)."""
    a = np.asarray(cpu, np.float64)
    b = np.asarray(gpu, np.float64)
    assert a.shape == b.shape, (name, a.shape, b.shape)
    ab = float(np.max(np.abs(a - b))) if a.size else 0.0
    den = np.abs(a)
    m = den > 1e-30
    rel = float(np.max(np.abs(a - b)[m] / den[m])) if m.any() else 0.0
    DIFFS[name] = (ab, rel)
    print(f"\nCUDA-vs-CPU {name}: max abs {ab:.3g}, max rel {rel:.3g}")
    return ab, rel
