"""Graph encoders (LightGCN, NGCF): forward against NumPy/scipy references, hand-written backward
against float64 finite differences with every task on top, thread-count independence of the
propagation kernels, and a short end-to-end fit (API and CLI) with each encoder."""

import json

import numba
import numpy as np
import pytest
from click.testing import CliRunner

from pmtnumba.data.split import make_split
from pmtnumba.encoders import LightGCN, NGCF, NormAdjacency, make_encoder
from pmtnumba.encoders.ngcf import keep_threshold
from pmtnumba.encoders.propagate import spmm
from pmtnumba.gradcheck import ALL_TASKS, ref_adjacency, ref_lightgcn, ref_ngcf, run_encoder_gradcheck
from pmtnumba.training import FitConfig, Trainer

from .conftest import synthetic_dataset


def _graph(n_users=30, n_items=25, n_pairs=120, seed=0):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, n_users, n_pairs)
    i = rng.integers(0, n_items - 2, n_pairs)  # the last two items have no interaction
    return u, i, n_users, n_items


def test_adjacency_matches_dense_definition():
    u, i, U, I = _graph()
    adj = NormAdjacency(u, i, U, I)
    A = np.zeros((U + I, U + I))
    A[u, U + i] = 1
    A[U + i, u] = 1
    deg = A.sum(1)
    inv = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1)), 0)
    np.testing.assert_allclose(adj.to_scipy().toarray(), inv[:, None] * A * inv[None, :], rtol=0, atol=1e-15)
    np.testing.assert_allclose(ref_adjacency(u, i, U, I).toarray(), adj.to_scipy().toarray(), atol=1e-15)
    assert adj.to_scipy()[U + I - 1].nnz == 0  # an item without interactions: an empty row


def test_lightgcn_forward_and_backward_match_scipy():
    u, i, U, I = _graph()
    adj = NormAdjacency(u, i, U, I)
    A = ref_adjacency(u, i, U, I)
    enc = LightGCN(adj, 6, seed=1, layers=3, dtype=np.float64)
    np.testing.assert_allclose(enc.forward(), ref_lightgcn(A, enc.E, 3), rtol=0, atol=1e-14)
    # backward = the same propagation of the gradient (A symmetric), for a stack of 3 tasks
    rng = np.random.default_rng(2)
    rows = np.array([0, 3, U + 1, U + 7])
    G = rng.normal(size=(3, rows.size, 6))
    rows0, G0, dense = enc.backward(rows, G)
    assert dense == {}
    for t in range(3):
        D = np.zeros((U + I, 6))
        D[rows] = G[t]
        full = np.zeros((U + I, 6))
        full[rows0] = G0[t]
        np.testing.assert_allclose(full, ref_lightgcn(A, D, 3), rtol=0, atol=1e-14)
    # rows left out of rows0 have zero gradient: they are more than K hops from every row touched
    assert U + I - 1 not in rows0


def test_ngcf_forward_matches_numpy_and_dropout_is_keyed():
    u, i, U, I = _graph()
    adj = NormAdjacency(u, i, U, I)
    A = ref_adjacency(u, i, U, I)
    enc = NGCF(adj, 5, seed=3, layers=2, dropout=0.3, dtype=np.float64)
    enc.b[...] = np.random.default_rng(0).normal(scale=0.1, size=enc.b.shape)
    F = enc.forward(train=False)
    assert F.shape == (U + I, 15)
    np.testing.assert_allclose(F, ref_ngcf(A, enc.E, enc.W1, enc.W2, enc.b), rtol=0, atol=1e-13)
    F1 = enc.forward(key=np.uint64(7), train=True).copy()
    F2 = enc.forward(key=np.uint64(7), train=True).copy()
    F3 = enc.forward(key=np.uint64(8), train=True).copy()
    np.testing.assert_array_equal(F1, F2)
    assert not np.array_equal(F1, F3)
    np.testing.assert_array_equal(F1[:, :5], enc.E)  # layer 0 is never dropped
    dropped = np.mean(F1[:, 5:] == 0)
    assert 0.2 < dropped < 0.4  # p = 0.3 (1 - (1-p)^1 per entry; zero outputs are otherwise measure-zero)
    assert keep_threshold(0.0) == 0


def test_ngcf_backward_with_dropout_matches_finite_differences():
    """With message dropout on, the backward must use the forward's mask: a fixed key makes the
    loss a deterministic function of the parameters, checked by central differences."""
    u, i, U, I = _graph(n_users=8, n_items=7, n_pairs=20)
    adj = NormAdjacency(u, i, U, I)
    enc = NGCF(adj, 3, seed=4, layers=2, dropout=0.4, dtype=np.float64)
    rng = np.random.default_rng(5)
    C = rng.normal(size=(U + I, 9))
    key = np.uint64(99)

    def loss():
        return float(np.sum(enc.forward(key=key, train=True) * C))

    loss()
    rows0, G0, dense = enc.backward(np.arange(U + I), C[None].copy())
    h = 1e-6
    for name, P in enc.arrays().items():
        fd = np.zeros_like(P)
        for idx in np.ndindex(*P.shape):
            x0 = P[idx]
            P[idx] = x0 + h
            fp = loss()
            P[idx] = x0 - h
            fm = loss()
            P[idx] = x0
            fd[idx] = (fp - fm) / (2 * h)
        if name == "E":
            g = np.zeros_like(P)
            g[rows0] = G0[0]
        else:
            g = dense[name][0]
        assert np.max(np.abs(g - fd)) <= 1e-6 * np.max(np.abs(fd)), name


@pytest.mark.parametrize("encoder", ["lightgcn", "ngcf"])
def test_gradcheck_every_task(encoder):
    results = run_encoder_gradcheck((encoder,), tasks="all", dim=4, layers=2)
    assert {r["task"] for r in results} == set(ALL_TASKS)
    checks = {r["check"] for r in results}
    assert f"{encoder}:forward" in checks and f"{encoder}:E" in checks
    if encoder == "ngcf":
        assert {"ngcf:W1", "ngcf:W2", "ngcf:b"} <= checks
    bad = [(r["task"], r["check"], r["max_rel_err"]) for r in results if r["status"] != "pass"]
    assert not bad
    assert all(r["max_rel_err"] < 1e-7 for r in results)


def test_multi_task_backward_equals_one_task_at_a_time():
    u, i, U, I = _graph()
    adj = NormAdjacency(u, i, U, I)
    enc = NGCF(adj, 4, seed=0, layers=2, dropout=0.0, dtype=np.float64)
    enc.forward(train=True)
    rng = np.random.default_rng(1)
    rows = np.array([1, 2, U + 3])
    G = rng.normal(size=(3, 3, 12))
    rows0, G0, dense = enc.backward(rows, G)
    G0, dense = G0.copy(), {k: v.copy() for k, v in dense.items()}
    for t in range(3):
        r1, g1, d1 = enc.backward(rows, G[t:t + 1].copy())
        full = np.zeros((U + I, 4))
        full[r1] = g1[0]
        np.testing.assert_array_equal(full[rows0], G0[t])
        for k in dense:
            np.testing.assert_array_equal(d1[k][0], dense[k][t])


def _with_threads(n, fn):
    saved = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        return fn()
    finally:
        numba.set_num_threads(saved)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")
def test_propagation_kernels_same_bits_for_1_and_2_threads():
    u, i, U, I = _graph(n_users=400, n_items=300, n_pairs=4000)
    adj = NormAdjacency(u, i, U, I)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2, U + I, 8)).astype(np.float32)
    rows = np.sort(rng.choice(U + I, 300, replace=False))
    G = rng.normal(size=(3, rows.size, 32)).astype(np.float32)

    def run():
        out = np.empty_like(X)
        spmm(adj.indptr, adj.indices, adj.data32, X, out)
        lg = LightGCN(adj, 8, seed=0, layers=3)
        F = lg.forward().copy()
        r0, g0, _ = lg.backward(rows, G[:, :, :8].copy())
        ng = NGCF(adj, 8, seed=0, layers=3, dropout=0.1)
        Fn = ng.forward(key=np.uint64(3), train=True).copy()
        r1, g1, d1 = ng.backward(rows, G)
        return [out, F, r0, g0.copy(), Fn, r1, g1.copy()] + [v.copy() for v in d1.values()]

    one = _with_threads(1, run)
    two = _with_threads(2, run)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("encoder,method", [("lightgcn", "pmtrec"), ("ngcf", "pmtrec"), ("ngcf", "pcgrad")])
def test_short_fit_each_encoder(encoder, method):
    ds = synthetic_dataset()
    split = make_split(ds, 0)
    cfg = FitConfig(dataset="synthetic", tasks=["bpr", "social", "category"], method=method, encoder=encoder,
                    layers=2, epochs=3, batch_size=64, dim=8, threads=1)
    res = Trainer(cfg, split=split).fit()
    width = 8 * 3 if encoder == "ngcf" else 8
    assert res.user_emb.shape == (ds.n_users, width) and res.item_emb.shape == (ds.n_items, width)
    assert all(np.isfinite(c["loss_bpr"]) for c in res.curve)
    assert res.curve[-1]["loss_bpr"] < res.curve[0]["loss_bpr"]  # training moves the main loss down
    # the saved embeddings are the encoder's output at the best epoch: re-evaluating them reproduces
    from pmtnumba.evaluation import evaluate

    m = evaluate(res.user_emb, res.item_emb, split.test, exclude=[split.train, split.valid], ks=cfg.ks)
    assert m["recall@20"] == res.test["recall@20"]


def test_mf_through_make_encoder_is_the_old_table():
    from pmtnumba.encoders import MF

    enc = make_encoder("mf", 10, 7, 4, seed=3)
    assert isinstance(enc, MF)
    np.testing.assert_array_equal(enc.forward(), enc.E)
    with pytest.raises(ValueError, match="unknown encoder"):
        make_encoder("gcn", 10, 7, 4, seed=3)


def test_cli_fit_ngcf_then_evaluate_and_resume(tmp_path):
    from pmtnumba_cli.main import main

    from .test_cli_e2e import write_csv

    ds = synthetic_dataset(n_users=50, n_items=30, per_user=8)
    csv = tmp_path / "toy.csv"
    write_csv(csv, ds)
    out = tmp_path / "run"

    def args(epochs, run_dir):
        return ["fit", "--dataset", str(csv), "--encoder", "ngcf", "--layers", "1", "--dim", "8", "--epochs",
                str(epochs), "--batch-size", "64", "--threads", "1", "--out", str(run_dir), "--quiet"]

    r = CliRunner().invoke(main, args(2, out))
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["encoder"] == "ngcf" and cfg["layers"] == 1
    metrics = json.loads((out / "metrics.json").read_text())
    r = CliRunner().invoke(main, ["evaluate", str(out)])
    assert r.exit_code == 0, r.output
    assert f"{metrics['test']['recall@20']:.4f}, now {metrics['test']['recall@20']:.4f}" in r.output
    # continuing to 3 epochs from the checkpoint equals a 3-epoch run from scratch (dense weights,
    # their Adam moments and the best epoch's weights are in the checkpoint)
    r = CliRunner().invoke(main, args(3, out) + ["--resume"])
    assert r.exit_code == 0, r.output
    out2 = tmp_path / "run2"
    r = CliRunner().invoke(main, args(3, out2))
    assert r.exit_code == 0, r.output
    with np.load(out / "embeddings.npz") as x, np.load(out2 / "embeddings.npz") as y:
        np.testing.assert_array_equal(x["user_emb"], y["user_emb"])
        np.testing.assert_array_equal(x["item_emb"], y["item_emb"])
    r = CliRunner().invoke(main, ["fit", "--dataset", str(csv), "--encoder", "ngcf", "--layers", "0"])
    assert r.exit_code == 2 and "--layers" in r.output
