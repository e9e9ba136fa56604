"""CUDA twin of LightGCN (encoders/lightgcn_cuda.py, propagate_cuda.py) against the CPU encoder in
the simulator: forward, backward (scatter, propagation, compaction), and a few-step fit; and the
same for NGCF's twin (encoders/ngcf_cuda.py, training/dense_cuda.py), its layer weights included."""

import numpy as np
import pytest

from tests.conftest import synthetic_dataset
from tests.cuda_helpers import cuda, diff  # noqa: F401  (skips without the simulator)

from pmtnumba.encoders.lightgcn import LightGCN
from pmtnumba.encoders.lightgcn_cuda import LightGCNDevice
from pmtnumba.encoders.propagate import NormAdjacency

pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")


def _encoder(layers=2):
    ds = synthetic_dataset(n_users=12, n_items=9, per_user=3, seed=2)
    users, items = ds.users[:-4], ds.items[:-4]
    # one user and one item without training interactions: empty CSR rows
    keep = (users != 5) & (items != 7)
    adj = NormAdjacency(users[keep], items[keep], ds.n_users, ds.n_items)
    return LightGCN(adj, dim=3, seed=4, layers=layers)


def _backward_both(enc, dev, T, w, rng):
    """Both backwards from the same random gradient on 5 final rows (users and items, the last item
    among them) in a 7-slot buffer whose unused slots hold NaN (never read). The device's rows are
    checked equal to the CPU's; returns ``(G0_cpu, G0_gpu, dense_cpu)`` for the rows kept."""
    S, R = 7, 5
    rows = np.full(S, -1, np.int64)
    rows[:R] = [0, 3, 12, 14, 20]
    G = rng.normal(size=(T, S, w)).astype(np.float32)
    G[:, R:] = np.nan
    rows0_cpu, G0_cpu, dense_cpu = enc.backward(rows[:R], np.ascontiguousarray(G[:, :R]))
    rows0, R0_dev, G0 = dev.backward(cuda.to_device(rows), cuda.to_device(np.array([R], np.int64)),
                                     cuda.to_device(G))
    R0 = int(R0_dev.copy_to_host()[0])
    assert R0 == rows0_cpu.shape[0] < enc.adj.n_rows  # the isolated rows get no gradient
    np.testing.assert_array_equal(rows0.copy_to_host()[:R0], rows0_cpu)
    return G0_cpu, G0.copy_to_host()[:, :R0], dense_cpu


@pytest.mark.parametrize("layers", [0, 2])
def test_lightgcn_forward_backward_match_cpu(layers):
    enc = _encoder(layers)
    T, d = 2, 3
    dev = LightGCNDevice(enc, T)
    F_cpu = enc.forward(train=True).copy()
    F_gpu = dev.forward(cuda.to_device(enc.E)).copy_to_host()
    ab, rel = diff(f"lightgcn forward K={layers}", F_cpu, F_gpu)
    assert rel < 1e-6
    G0_cpu, G0_gpu, _ = _backward_both(enc, dev, T, d, np.random.default_rng(3))
    ab, rel = diff(f"lightgcn backward G0 K={layers}", G0_cpu, G0_gpu)
    assert rel < 1e-6 or ab < 1e-7


def _fit_both(monkeypatch, **opts):
    """One epoch (bpr + social, d = 4, K = 2 unless given) on the CPU, then on the simulator:
    ``[(trainer, result)] * 2``."""
    from pmtnumba.data.split import make_split
    from pmtnumba.training.config import FitConfig
    from pmtnumba.training.loop import Trainer

    out = []
    for device in ("cpu", "cuda"):
        if device == "cuda":
            monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
        split = make_split(synthetic_dataset(n_users=16, n_items=12, per_user=4, seed=1), 0)
        cfg = FitConfig(dataset="synthetic", tasks=["bpr", "social"], dim=4, batch_size=32, epochs=1, lr=0.05,
                        ks=(5, 10, 20), device=device, seed=3, **{"layers": 2, **opts})
        tr = Trainer(cfg, split)
        out.append((tr, tr.fit()))
    return out


@pytest.mark.parametrize("reg", [0.0, 0.5])
def test_lightgcn_fit_matches_cpu(monkeypatch, small_cuda_blocks, reg):
    (tc, rc), (tg, rg) = _fit_both(monkeypatch, method="pmtrec", encoder="lightgcn", record_weights=True, reg=reg)
    assert tg.dstep is not None and tg.dstep.enc is not None and tc.adam.t == tg.adam.t >= 2
    ab, rel = diff(f"fit 1 epoch lightgcn pmtrec bpr+social reg={reg} E", tc.encoder.E, tg.encoder.E)
    assert ab < 1e-6
    for k in rc.curve[0]:
        if k.startswith("loss_"):
            assert abs(rc.curve[0][k] - rg.curve[0][k]) <= 1e-6 * abs(rc.curve[0][k]), k
    assert ("loss_reg" in rc.curve[0]) == (reg > 0) and ("loss_reg" in rg.curve[0]) == (reg > 0)
    assert [r["n"] for r in tc.weights.records] == [r["n"] for r in tg.weights.records]


def _ngcf(layers=2, dropout=0.3):
    from pmtnumba.encoders.ngcf import NGCF

    enc = _encoder(1)
    return NGCF(enc.adj, dim=3, seed=4, layers=layers, dropout=dropout)


@pytest.mark.parametrize("layers,dropout", [(1, 0.0), (2, 0.3)])
def test_ngcf_forward_backward_match_cpu(layers, dropout):
    from pmtnumba.encoders.ngcf_cuda import NGCFDevice

    enc = _ngcf(layers, dropout)
    rng = np.random.default_rng(5)
    for v in enc.dense_params().values():  # nonzero biases, so every term of Z is exercised
        v += rng.normal(scale=0.3, size=v.shape).astype(v.dtype)
    T, w = 2, enc.out_dim
    dev = NGCFDevice(enc, T)
    key = 987654321
    F_cpu = enc.forward(key=key, train=True).copy()
    F_gpu = dev.forward(cuda.to_device(enc.E), key).copy_to_host()
    if dropout:  # the same entries are dropped on both devices
        assert (F_cpu == 0).sum() > 0
        np.testing.assert_array_equal(F_cpu == 0, F_gpu == 0)
    ab, rel = diff(f"ngcf forward K={layers} p={dropout}", F_cpu, F_gpu)
    assert rel < 1e-5 or ab < 1e-7
    G0_cpu, G0_gpu, dense_cpu = _backward_both(enc, dev, T, w, rng)
    ab, rel = diff(f"ngcf backward G0 K={layers} p={dropout}", G0_cpu, G0_gpu)
    assert ab < 1e-6
    for k, gk in dense_cpu.items():
        ab, rel = diff(f"ngcf backward {k} K={layers} p={dropout}", gk, dev.grads[k].copy_to_host())
        assert ab < 1e-6 * max(1.0, float(np.abs(gk).max())), k


@pytest.mark.parametrize("method,adam", [("pmtrec", "sparse"), ("ew", "dense"), ("pcgrad", "sparse"),
                                         ("graddrop", "sparse")])
def test_ngcf_fit_matches_cpu(monkeypatch, small_cuda_blocks, method, adam):
    """One epoch of NGCF on both devices: the row-wise (PMTRec, EW), Gram (PCGrad) and host
    (GradDrop with NGCF) paths of the layer weights' combination, and their Adam."""
    (tc, rc), (tg, rg) = _fit_both(monkeypatch, method=method, encoder="ngcf", layers=1, adam_mode=adam,
                                   record_weights=method == "pmtrec")  # K = 2: the forward/backward test
    assert tg.dstep is not None and tg.dstep.dense is not None and tc.adam.t == tg.adam.t >= 2
    ab, rel = diff(f"fit 1 epoch ngcf {method} E", tc.encoder.E, tg.encoder.E)
    assert ab < 1e-5
    for k, p in tc.encoder.dense_params().items():  # downloaded from the device, with their moments
        ab, rel = diff(f"fit 1 epoch ngcf {method} {k}", p, tg.encoder.dense_params()[k])
        assert ab < 1e-5, k
        assert tc.dense_adams[k].t == tg.dense_adams[k].t == tc.adam.t
        ab, rel = diff(f"fit 1 epoch ngcf {method} {k} moments", tc.dense_adams[k].MV, tg.dense_adams[k].MV)
        assert ab < 1e-5, k
    for k in rc.curve[0]:
        if k.startswith("loss_"):
            assert abs(rc.curve[0][k] - rg.curve[0][k]) <= 1e-5 * abs(rc.curve[0][k]), k
    if method == "pmtrec":
        assert [r["n"] for r in tc.weights.records] == [r["n"] for r in tg.weights.records]
