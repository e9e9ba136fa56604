"""End-to-end: a few training steps with ``device="cuda"`` in the CUDA simulator against the same
fit on the CPU (tiny synthetic data), and ``--device cuda`` without a GPU."""

import os
import subprocess
import sys

import pytest

from tests.conftest import synthetic_dataset
from tests.cuda_helpers import cuda, diff  # noqa: F401  (skips without the simulator)

from pmtnumba.data.split import make_split
from pmtnumba.training.config import FitConfig
from pmtnumba.training.loop import Trainer

pytestmark = [pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
              pytest.mark.usefixtures("small_cuda_blocks")]


def _fit(device, tasks, method, monkeypatch, **kw):
    if device == "cuda":
        monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    ds = synthetic_dataset(n_users=24, n_items=20, per_user=5, seed=1)
    split = make_split(ds, 0)
    cfg = FitConfig(dataset="synthetic", tasks=tasks, method=method, dim=4, batch_size=40, epochs=1, lr=0.05, wd=1e-3,
                    ks=(5, 10, 20), device=device, record_weights=False, seed=3, **kw)
    tr = Trainer(cfg, split)
    res = tr.fit()
    return tr, res


@pytest.mark.parametrize("tasks,method,extra", [
    (["bpr", "social", "category", "rating"], "pmtrec", {}),
    (["bpr", "coview", "cobuy"], "ew", {"aux_sampling": "independent", "adam_mode": "dense"}),
    (["bpr", "social"], "pcgrad", {}),
    (["bpr", "social"], "graddrop", {}),
    (["bpr", "align_uniform", "rating"], "ew", {}),
    (["bpr", "social"], "pmtrec", {"reg": 0.5}),
    (["bpr"], "ew", {"reg": 0.5, "adam_mode": "dense"}),
])
def test_fit_cuda_simulator_matches_cpu(tasks, method, extra, monkeypatch):
    tc, rc = _fit("cpu", tasks, method, monkeypatch, **extra)
    tg, rg = _fit("cuda", tasks, method, monkeypatch, **extra)
    assert tg.device == "cuda" and tg.dstep is not None and rg.config["gpu_name"] == "CUDA simulator"
    assert tc.adam.t == tg.adam.t >= 2  # several steps (and the same number)
    assert ("loss_reg" in rc.curve[0]) == ("reg" in extra)
    for k in rc.curve[0]:
        if k.startswith("loss_"):
            assert abs(rc.curve[0][k] - rg.curve[0][k]) <= 1e-6 * abs(rc.curve[0][k]), k
    name = f"fit 1 epoch {method} {'+'.join(tasks)} {extra or ''}"
    ab, rel = diff(name + " E", tc.encoder.E, tg.encoder.E)
    assert ab < 1e-6
    diff(name + " Adam moments", tc.adam.MV, tg.adam.MV)
    assert rc.test == rg.test


def test_device_cuda_without_gpu_is_one_line():
    """A fresh process without NUMBA_ENABLE_CUDASIM has no usable GPU on a CI machine: the CLI
    prints one line, no traceback (skipped where a real GPU is present)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    probe = subprocess.run([sys.executable, "-c", "from pmtnumba.device import gpu_usable; print(gpu_usable())"],
                           env=env, capture_output=True, text=True)
    if probe.stdout.strip() == "True":
        pytest.skip("a real GPU is present")
    out = subprocess.run([sys.executable, "-m", "pmtnumba_cli.main", "fit", "--dataset", "videogame", "--device",
                          "cuda", "--epochs", "1"], env=env, capture_output=True, text=True)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith("error: --device cuda: ") and "use --device cpu or auto" in lines[0]


@pytest.mark.parametrize("encoder", ["mf", "ngcf"])
def test_gpu_memory_is_checked_before_training(monkeypatch, encoder):
    """The device estimate (training/limits.py) against the GPU's free memory: refused in one line
    naming the parts when it does not fit, accepted when it does; the simulator reports no figure
    (no check)."""
    import pmtnumba.training.loop as loop
    from pmtnumba.errors import PmtError

    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    split = make_split(synthetic_dataset(n_users=16, n_items=12, per_user=4, seed=1), 0)
    cfg = FitConfig(dataset="synthetic", tasks=["bpr", "social"], method="ew", encoder=encoder, layers=1, dim=4,
                    batch_size=32, epochs=1, device="cuda", seed=3)
    assert loop.gpu_free_memory() is None
    Trainer(cfg, split)
    monkeypatch.setattr(loop, "gpu_free_memory", lambda: 2048)
    with pytest.raises(PmtError) as e:
        Trainer(cfg, split)
    msg = str(e.value)
    assert "\n" not in msg and "on the GPU needs about" in msg and "only 0.0 MiB is free" in msg
    assert "embedding table" in msg and ("combiner rows" in msg) == (encoder != "mf") and "--device cpu" in msg
    monkeypatch.setattr(loop, "gpu_free_memory", lambda: 2**40)
    assert Trainer(cfg, split).device == "cuda"


def test_gpu_out_of_memory_is_one_line():
    """Past the estimate (another process took the memory): the driver's error is one CLI line."""
    from numba.cuda.cudadrv.driver import CudaAPIError

    from pmtnumba_cli.common import error_line

    line = error_line(CudaAPIError(2, "Call to cuMemAlloc results in CUDA_ERROR_OUT_OF_MEMORY"))
    assert line is not None and line.startswith("the GPU ran out of memory") and "--device cpu" in line
    assert error_line(CudaAPIError(700, "CUDA_ERROR_ILLEGAL_ADDRESS")) is None  # a bug stays a traceback


def test_cpu_import_does_not_load_numba_cuda():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    code = ("import sys, pmtnumba, pmtnumba.training.loop, pmtnumba.training.compare, pmtnumba.device; "
            "from pmtnumba.device import resolve_device; resolve_device('cpu'); "
            "print(any(m == 'numba.cuda' or m.startswith('numba.cuda.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
