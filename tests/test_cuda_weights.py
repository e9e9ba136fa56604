"""CUDA twin of WeightRecorder.observe (training/weights_cuda.py) against the CPU recorder, in the
simulator: the same counts, the same sums (exact for one row chunk, to rounding for several), the
same weights.csv records; and a PMTRec fit on the simulator records the CPU fit's weights."""

import numpy as np
import pytest

from tests.cuda_helpers import cuda, diff  # noqa: F401  (skips without the simulator)

from pmtnumba.training import weights_cuda as WC
from pmtnumba.training.weights import N_BINS, WeightRecorder, weight_bin


def test_weight_bin_matches_observe_expression():
    """The scalar bin (the CUDA twin's) equals the recorder's array expression, at bin edges too."""
    from pmtnumba.training.weights import LOGIT_MAX, _bin_of

    rng = np.random.default_rng(0)
    edges_z = -LOGIT_MAX + np.arange(0, N_BINS + 1, 37) * (2 * LOGIT_MAX / N_BINS)
    edges = 1.0 / (1.0 + np.exp(-edges_z))
    w = np.concatenate([[0.0, 1e-320, 1e-300, 1e-12, 0.5, 1 - 1e-12, 1.0, 1.5, -0.1], rng.random(300),
                        rng.random(50) ** 20, 1 - rng.random(50) ** 20, edges, np.nextafter(edges, 0), np.nextafter(edges, 1)])
    np.testing.assert_array_equal([weight_bin(x) for x in w], _bin_of(w))


def _recorder(T):
    rng = np.random.default_rng(0)
    return WeightRecorder(rng.integers(1, 30, size=20), rng.integers(1, 9, size=15), [f"t{t}" for t in range(T)])


@pytest.mark.parametrize("per", [WC.ROWS_PER_PART, 4])
def test_device_weights_match_recorder(per, monkeypatch):
    monkeypatch.setattr(WC, "ROWS_PER_PART", per)
    T, S = 3, 24
    cpu, gpu = _recorder(T), _recorder(T)
    dw = WC.DeviceWeights(gpu, T, S)
    rng = np.random.default_rng(1)
    rows_d = cuda.to_device(np.zeros(S, np.int64))
    W_d = cuda.to_device(np.zeros((S, T)))
    R_d = cuda.to_device(np.zeros(1, np.int64))
    for epoch in (1, 2):
        for R in (S, 13, 0, 7):
            rows = rng.choice(35, size=S, replace=False).astype(np.int64)
            z = rng.normal(size=(S, T)) * 3
            W = np.exp(z) / np.exp(z).sum(1, keepdims=True)
            W[0] = [1.0, 0.0, 0.0]  # bin edges: 1 goes to the last bin, 0 to the first
            W[1, :2] = [0.5, 1e-12]
            W[1, 2] = 1.0 - 0.5 - 1e-12
            rows_d.copy_to_device(rows)
            W_d.copy_to_device(W)
            R_d.copy_to_device(np.array([R], np.int64))
            cpu.observe(rows[:R], W[:R])
            dw.observe(rows_d, W_d, R_d)
        hist_cpu, sums_cpu = cpu.hist.copy(), cpu.sums.copy()
        dw.flush()
        np.testing.assert_array_equal(gpu.hist, hist_cpu)
        np.testing.assert_array_equal(gpu.mins, cpu.mins)
        np.testing.assert_array_equal(gpu.maxs, cpu.maxs)
        ab, rel = diff(f"weights sums (rows per part {per}) epoch {epoch}", sums_cpu, gpu.sums)
        if per >= S:
            assert ab == 0.0  # one chunk: the CPU's own order
        else:
            assert rel < 1e-14
        cpu.end_epoch(epoch)
        gpu.end_epoch(epoch)
    assert len(cpu.records) == len(gpu.records) > 0
    for a, b in zip(cpu.records, gpu.records):
        assert {k: v for k, v in a.items() if k != "mean"} == {k: v for k, v in b.items() if k != "mean"}
        assert abs(a["mean"] - b["mean"]) <= 1e-15 * abs(a["mean"])


def test_fit_pmtrec_records_the_cpu_weights(monkeypatch, small_cuda_blocks):
    from tests.conftest import synthetic_dataset
    from pmtnumba.data.split import make_split
    from pmtnumba.training.config import FitConfig
    from pmtnumba.training.loop import Trainer

    recs = {}
    for device in ("cpu", "cuda"):
        if device == "cuda":
            monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
        split = make_split(synthetic_dataset(n_users=24, n_items=20, per_user=5, seed=1), 0)
        cfg = FitConfig(dataset="synthetic", tasks=["bpr", "social", "rating"], method="pmtrec", dim=4, batch_size=40,
                        epochs=1, lr=0.05, ks=(5, 10, 20), device=device, record_weights=True, seed=3)
        tr = Trainer(cfg, split)
        tr.fit()
        assert (tr.dstep is not None) == (device == "cuda")
        recs[device] = tr.weights.records
    assert len(recs["cpu"]) == len(recs["cuda"]) > 0
    worst = 0.0
    for a, b in zip(recs["cpu"], recs["cuda"]):
        assert {k: v for k, v in a.items() if k != "mean"} == {k: v for k, v in b.items() if k != "mean"}
        worst = max(worst, abs(a["mean"] - b["mean"]) / max(abs(a["mean"]), 1e-300))
    print(f"\nCUDA-vs-CPU weights.csv means (pmtrec fit, 1 epoch): max rel {worst:.3g}")
    assert worst < 1e-6
