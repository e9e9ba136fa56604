"""The published LightGCN/NGCF regulariser ``--reg`` (pmtnumba/training/ego_reg.py): its gradient
against float64 finite differences, the same bits for any thread count, reg=0 runs the step
without it, and its plumbing (fit, compare, sweep run, the Python API, config.json, errors), and
its CUDA twin against it."""

import json

import numba
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pmtnumba.data.split import make_split
from pmtnumba.errors import PmtError
from pmtnumba.gradcheck import ref_ego_reg_loss, run_gradcheck
from pmtnumba.training import FitConfig, Trainer
from pmtnumba.training import loop
from pmtnumba.training.ego_reg import add_ego_reg, ego_reg_loss_grad
from pmtnumba_cli.main import main

from .conftest import several_threads, synthetic_dataset
from .test_cli_e2e import write_csv


def test_gradient_matches_finite_differences_and_closed_form():
    res = run_gradcheck("ego_reg", dim=4, seed=1)
    assert [r["check"] for r in res] == ["pure", "step", "missing rows"]
    assert all(r["status"] == "pass" for r in res), res
    # the closed form reg * count_r * e_r / B, with rows repeated within and across triplets
    rng = np.random.default_rng(0)
    E = rng.normal(size=(7, 3))
    a, b, c = np.array([0, 0, 1]), np.array([3, 4, 3]), np.array([4, 3, 0])  # row 0: 3x, row 3: 3x, row 4: 2x
    loss, rows, g = ego_reg_loss_grad(E, a, b, c, 0.5)
    counts = np.bincount(np.concatenate([a, b, c]), minlength=7)
    assert rows.tolist() == [0, 1, 3, 4]
    np.testing.assert_allclose(g, 0.5 * counts[rows, None] * E[rows] / 3, rtol=1e-15)
    assert loss == pytest.approx(ref_ego_reg_loss(E, a, b, c, 0.5), rel=1e-14)


def test_same_bits_any_thread_count():
    rng = np.random.default_rng(3)
    E = rng.normal(size=(500, 16)).astype(np.float32)
    rows = np.sort(rng.choice(500, 300, replace=False))
    slots = rng.choice(rows, 3 * 256)
    slots[-5:] = -1  # unused slots are skipped
    g0 = rng.normal(size=(300, 16)).astype(np.float32)
    n0 = numba.get_num_threads()
    out = []
    try:
        for t in (1, several_threads()):
            numba.set_num_threads(t)
            out.append(add_ego_reg(E, 1e-2, slots, 256, rows, g0.copy()))
    finally:
        numba.set_num_threads(n0)
    (r1, g1, l1), (r2, g2, l2) = out
    assert np.array_equal(r1, r2) and np.array_equal(g1, g2) and l1 == l2
    assert not np.array_equal(g1, g0)


def _cfg(**kw):
    base = dict(dataset="toy", tasks=["bpr"], epochs=2, batch_size=64, dim=8, lr=0.05, wd=0.0, seed=2, threads=1,
                record_weights=False, checkpoint_every=0)
    base.update(kw)
    return FitConfig(**base)


@pytest.mark.parametrize("encoder,method,tasks", [("mf", "pmtrec", ["bpr", "social"]), ("lightgcn", "ew", ["bpr"])])
def test_reg_zero_runs_the_step_without_it(encoder, method, tasks, monkeypatch):
    """reg=0 (the default) calls the step as before --reg existed (no penalty argument, so the
    step's code is the one before): no ``loss_reg``; reg > 0 passes the penalty, changes the
    embeddings and reports ``loss_reg``."""
    ds = synthetic_dataset(n_users=40, n_items=30, per_user=6, seed=1)
    seen = []
    for name in ("train_step", "graph_train_step"):
        real = getattr(loop, name)

        def spy(*args, _real=real, **kw):
            seen.append(kw.get("penalty"))
            return _real(*args, **kw)

        monkeypatch.setattr(loop, name, spy)
    runs = {}
    for reg in (0.0, 0.05):
        seen.clear()
        tr = Trainer(_cfg(encoder=encoder, method=method, tasks=tasks, reg=reg), make_split(ds, 2))
        runs[reg] = tr.fit()
        assert seen and all((p is None) == (reg == 0) for p in seen)
    assert "loss_reg" not in runs[0.0].curve[0]
    reg = [r["loss_reg"] for r in runs[0.05].curve]
    assert all(np.isfinite(reg)) and min(reg) > 0
    assert runs[0.05].config["reg"] == 0.05
    assert not np.array_equal(runs[0.0].item_emb, runs[0.05].item_emb)


def test_fit_cli_records_reg_and_refuses_bad_values(tmp_path):
    csv = tmp_path / "toy.csv"
    write_csv(csv, synthetic_dataset(n_users=30, n_items=20, per_user=6))
    out = tmp_path / "run"
    runner = CliRunner()
    r = runner.invoke(main, ["fit", "--dataset", str(csv), "--reg", "1e-3", "--epochs", "1", "--batch-size", "64",
                             "--threads", "1", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "config.json").read_text())["reg"] == 1e-3
    assert pd.read_csv(out / "curve.csv")["loss_reg"].iloc[0] > 0
    for bad in ("-1", "nan", "inf"):
        r = runner.invoke(main, ["fit", "--dataset", str(csv), "--reg", bad, "--epochs", "1"])
        lines = r.output.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: --reg must be"), r.output


def test_api_and_sweep_settings_carry_reg(tmp_path, monkeypatch):
    import pmtnumba
    from pmtnumba.sweep import study
    from pmtnumba.sweep.space import build_space

    ds = synthetic_dataset(n_users=30, n_items=20, per_user=6)
    model = pmtnumba.fit(ds, tasks="bpr", reg=2e-3, epochs=1, batch_size=64, threads=1)
    assert model.config["reg"] == 2e-3
    with pytest.raises(ValueError, match="--reg must be"):
        pmtnumba.fit(ds, tasks="bpr", reg=-1.0, epochs=1)
    csv = tmp_path / "toy.csv"
    write_csv(csv, ds)
    got = {}

    def fake_run_sweep(sweep_dir, settings, **kw):
        got.update(settings)
        raise PmtError("stopped by the test")

    monkeypatch.setattr(study, "run_sweep", fake_run_sweep)
    r = CliRunner().invoke(main, ["sweep", "run", str(tmp_path / "sw"), "--dataset", str(csv), "--tasks", "bpr",
                                  "--methods", "ew", "--lr", "0.01", "--reg", "1e-4", "--quiet"])
    assert r.exit_code == 2 and "stopped by the test" in r.output
    assert got["base_config"]["reg"] == 1e-4 and study.base_config_of(got).reg == 1e-4
    off = study.sweep_settings(name="x", dataset=str(csv), base_config=FitConfig(), methods=["ew"],
                               space=build_space(None, {"lr": "0.01"}), trials=None, pruner={"name": "none"}, seed=0,
                               storage=None)
    assert "reg" not in off["base_config"]  # off: sweeps started before --reg continue


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_twin_matches_cpu(dtype):
    """EgoRegDevice (training/ego_reg_cuda.py) in the CUDA simulator against add_ego_reg: on target
    rows that hold every slot row (MF), and on target rows that miss some (a graph encoder's ego
    rows with a zero propagated gradient), which the device merges in on the host. The fits with
    --reg on the device are in test_cuda_fit.py and test_cuda_encoders.py."""
    pytest.importorskip("tests.cuda_helpers")  # the CUDA simulator (skips without numba-cuda)
    from numba import cuda

    from pmtnumba.training.ego_reg_cuda import EgoRegDevice

    rng = np.random.default_rng(2)
    N, d, n, reg = 30, 4, 7, 0.7
    E = rng.normal(size=(N, d)).astype(dtype)
    main_slots = np.concatenate([rng.integers(0, 12, 3 * n), np.full(5, -1)])  # rows repeat; unused tail
    all_slots = np.concatenate([main_slots, rng.integers(0, N, 6)])  # another task's slots after them
    used = np.unique(main_slots[main_slots >= 0])
    cases = [(np.union1d(used, [29]), True, 0),   # every slot row among the targets
             (used[1:-1], True, 0),               # two rows missing: merged on the host
             (used[1:], False, int(np.sum(main_slots == used[0])))]  # MF's path does not merge: counted
    for rows_h, may_miss, missing in cases:
        g_h = rng.normal(size=(rows_h.size, d)).astype(dtype)
        rows_d = cuda.to_device(np.concatenate([rows_h, np.full(N - rows_h.size, -1)]))
        g_d = cuda.to_device(np.concatenate([g_h, np.zeros((N - rows_h.size, d), dtype)]))
        R_dev = cuda.to_device(np.array([rows_h.size], np.int64))
        info = np.zeros(6)
        info[1] = n  # the main task's triplets, where the step keeps them (info[T], T = 1)
        info_d = cuda.to_device(info)
        pen = EgoRegDevice(reg, N, N, 0, main_slots.size)
        pen(cuda.to_device(E), cuda.to_device(all_slots), rows_d, R_dev, g_d, info_d, 1, 4, may_miss)
        info = info_d.copy_to_host()
        assert info[5] == missing
        assert pen.counts.copy_to_host().sum() == 0  # cleared for the next step
        if missing:
            continue
        r_cpu, g_cpu, loss_cpu = add_ego_reg(E, reg, main_slots, n, rows_h.copy(), g_h.copy())
        R = int(R_dev.copy_to_host()[0])
        assert rows_d.copy_to_host()[:R].tolist() == r_cpu.tolist()
        np.testing.assert_allclose(g_d.copy_to_host()[:R], g_cpu, rtol=1e-6 if dtype == np.float32 else 1e-14)
        assert info[4] == pytest.approx(loss_cpu, rel=1e-12)
