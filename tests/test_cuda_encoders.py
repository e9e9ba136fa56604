"""CUDA twin of LightGCN (encoders/lightgcn_cuda.py, propagate_cuda.py) against the CPU encoder in
the simulator: forward, backward (scatter, propagation, compaction), and a few-step fit; NGCF's
clean refusal on --device cuda."""

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


@pytest.mark.parametrize("layers", [0, 2])
def test_lightgcn_forward_backward_match_cpu(layers):
    enc = _encoder(layers)
    T, N, d = 2, enc.adj.n_rows, 3
    dev = LightGCNDevice(enc, T)
    F_cpu = enc.forward(train=True).copy()
    F_gpu = dev.forward(cuda.to_device(enc.E)).copy_to_host()
    ab, rel = diff(f"lightgcn forward K={layers}", F_cpu, F_gpu)
    assert rel < 1e-6
    rng = np.random.default_rng(3)
    S, R = 7, 5
    rows = np.full(S, -1, np.int64)
    rows[:R] = [0, 3, 12, 14, 20]  # users and items; 20 is the last item
    G = rng.normal(size=(T, S, d)).astype(np.float32)
    G[:, R:] = np.nan  # past R: never read
    rows0_cpu, G0_cpu, _ = enc.backward(rows[:R], np.ascontiguousarray(G[:, :R]))
    rows0, R0_dev, G0 = dev.backward(cuda.to_device(rows), cuda.to_device(np.array([R], np.int64)),
                                     cuda.to_device(G))
    R0 = int(R0_dev.copy_to_host()[0])
    assert R0 == rows0_cpu.shape[0] < N  # the isolated rows get no gradient
    np.testing.assert_array_equal(rows0.copy_to_host()[:R0], rows0_cpu)
    ab, rel = diff(f"lightgcn backward G0 K={layers}", G0_cpu, G0.copy_to_host()[:, :R0])
    assert rel < 1e-6 or ab < 1e-7


@pytest.mark.parametrize("reg", [0.0, 0.5])
def test_lightgcn_fit_matches_cpu(monkeypatch, small_cuda_blocks, reg):
    from pmtnumba.data.split import make_split
    from pmtnumba.training.config import FitConfig
    from pmtnumba.training.loop import Trainer

    out = {}
    for device in ("cpu", "cuda"):
        if device == "cuda":
            monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
        split = make_split(synthetic_dataset(n_users=16, n_items=12, per_user=4, seed=1), 0)
        cfg = FitConfig(dataset="synthetic", tasks=["bpr", "social"], method="pmtrec", encoder="lightgcn", layers=2,
                        dim=4, batch_size=32, epochs=1, lr=0.05, ks=(5, 10, 20), device=device, record_weights=True,
                        seed=3, reg=reg)
        tr = Trainer(cfg, split)
        out[device] = (tr, tr.fit())
    (tc, rc), (tg, rg) = out["cpu"], out["cuda"]
    assert tg.dstep is not None and tg.dstep.enc is not None and tc.adam.t == tg.adam.t >= 2
    ab, rel = diff(f"fit 1 epoch lightgcn pmtrec bpr+social reg={reg} E", tc.encoder.E, tg.encoder.E)
    assert ab < 1e-6
    for k in rc.curve[0]:
        if k.startswith("loss_"):
            assert abs(rc.curve[0][k] - rg.curve[0][k]) <= 1e-6 * abs(rc.curve[0][k]), k
    assert ("loss_reg" in rc.curve[0]) == (reg > 0) and ("loss_reg" in rg.curve[0]) == (reg > 0)
    assert [r["n"] for r in tc.weights.records] == [r["n"] for r in tg.weights.records]


def test_ngcf_on_cuda_is_a_clean_error(monkeypatch):
    from pmtnumba.data.split import make_split
    from pmtnumba.errors import PmtError
    from pmtnumba.training.config import FitConfig
    from pmtnumba.training.loop import Trainer

    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    split = make_split(synthetic_dataset(n_users=16, n_items=12, per_user=4, seed=1), 0)
    cfg = FitConfig(dataset="synthetic", tasks=["bpr"], method="ew", encoder="ngcf", dim=4, batch_size=32, epochs=1,
                    device="cuda", seed=3)
    with pytest.raises(PmtError) as e:
        Trainer(cfg, split)
    msg = str(e.value)
    assert "\n" not in msg and "'ngcf' encoder has no CUDA twin" in msg and "--device cpu" in msg
