"""benchmarks/bench_gpu.py runs end to end in its --simulate mode (tiny data, CUDA simulator):
the equality section must find the same rows and the same embeddings as the CPU engine, and the
encoder section NGCF's table and layer weights."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba.cuda")


def test_bench_gpu_simulate():
    root = Path(__file__).parents[1]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_gpu.py"), "--simulate"], env=env,
                         capture_output=True, text=True, cwd=root, timeout=1200)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "device: cuda (CUDA simulator)" in text
    assert re.search(r"first step: rows equal: True \(R = \d+\); G: max abs 0,", text), text
    m = re.search(r"one epoch \(pmtrec\), embeddings: max abs (\S+),", text)  # PCGrad, GradDrop: test_cuda_fit.py
    assert m and float(m.group(1)) < 1e-6, text
    assert "| bpr (bpr) |" in text and "full evaluation:" in text
    m = re.search(r"\| ngcf \| \S+ \| \S+ \| \S+ \| max abs (\S+), .* \| W1: max abs (\S+),", text)
    assert m and float(m.group(1)) < 1e-6 and float(m.group(2)) < 1e-6, text
