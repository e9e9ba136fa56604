"""Every CUDA twin compiles for a real GPU (PTX for compute capability 9.0), checked without one.

The simulator tests run the kernels as Python and cannot catch code that the CUDA compiler
rejects (a NumPy ufunc, an IR-inlined helper); this runs tests/cuda_ptx_check.py in a process
without the simulator. Skipped where numba-cuda's compiler libraries (libnvvm, libnvrtc) are not
installed (a plain ``pip install -e '.[test]'`` has numba-cuda but not the CUDA toolkit).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba.cuda")


def test_every_twin_compiles_to_ptx():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    script = Path(__file__).with_name("cuda_ptx_check.py")
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                         cwd=Path(__file__).parents[1])
    if out.returncode == 77:
        pytest.skip("numba-cuda's compiler (libnvvm/libnvrtc) is not installed")
    print(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("ok ") >= 30
