"""The Python API (pmtnumba.api) and `pmtnumba plot`: fit on a DataFrame, recommend, evaluate,
load a run directory, inspect one step; figures of a run and of a compare directory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pmtnumba
from pmtnumba.errors import PmtError

from .conftest import synthetic_dataset
from .faults import FIT, cli, write_toy_csv


def _frame():
    ds = synthetic_dataset(n_users=60, n_items=40, per_user=8)
    return pd.DataFrame({"user": [f"u{u}" for u in ds.users], "item": ds.items + 1000, "rating": ds.ratings}), ds


def test_fit_recommend_evaluate_load(tmp_path):
    df, ds = _frame()
    model = pmtnumba.fit(df, epochs=3, batch_size=64, threads=1, tasks="bpr,rating", out=tmp_path / "run")
    b = model.metrics["time_budget"]
    assert model.metrics["epochs_run"] == 3 and b["load"] > 0 and b["train"] > 0
    assert sum(v for k, v in b.items() if k != "total") == pytest.approx(b["total"], abs=0.01)
    assert model.evaluate("test") == model.metrics["test"]  # the same embeddings, the same split
    items, scores = model.recommend("u3", k=5)
    assert len(items) == 5 and np.all(np.diff(scores) <= 0)
    assert not set(items) & set(ds.items[ds.users == 3] + 1000)  # seen items left out
    assert (tmp_path / "run" / "metrics.json").is_file()  # out= writes a run directory
    with pytest.raises(PmtError, match="not in data set"):
        model.recommend("nobody")
    with pytest.raises(PmtError, match="unknown option"):
        pmtnumba.fit(df, epochs=1, nosuch=1)


def test_fit_matches_the_cli(tmp_path):
    """The API and `pmtnumba fit` on the same file and options train the same embeddings."""
    csv = write_toy_csv(tmp_path / "toy.csv")
    assert cli("fit", "--dataset", csv, "--epochs", "2", "--out", tmp_path / "cli", *FIT).exit_code == 0
    model = pmtnumba.fit(str(csv), epochs=2, batch_size=64, threads=1)
    loaded = pmtnumba.Model.load(tmp_path / "cli")  # the run directory the CLI wrote
    assert np.array_equal(loaded.item_emb, model.item_emb) and np.array_equal(loaded.user_emb, model.user_emb)
    assert loaded.metrics["test"] == model.metrics["test"] == loaded.evaluate("test")
    assert np.array_equal(loaded.recommend("u3", k=5)[0], model.recommend("u3", k=5)[0])


def test_step_inspect_pmtrec():
    _, ds = _frame()
    s = pmtnumba.step_inspect(ds, tasks=["bpr", "rating"], batch_size=64, threads=1, step=2, tau=1e-2)
    T, R, d = s.G.shape
    assert s.tasks == ["bpr", "rating"] and d == 32 and s.rows.shape == (R,) and s.g.shape == (R, d)
    # PMTRec's weights are a softmax per row, and the combined gradient is their weighted sum of G
    assert s.weights.shape == (R, T) and np.allclose(s.weights.sum(axis=1), 1.0)
    assert np.allclose(s.g, np.einsum("rt,trd->rd", s.weights, s.G), rtol=1e-5, atol=1e-9)
    # task focusing and balancing: the weights follow softmax(n * alpha^s [main task] / tau)
    n = s.row_norms().astype(np.float64)
    n[:, 0] *= 1.1 ** s.epoch
    z = np.exp((n - n.max(axis=1, keepdims=True)) / 1e-2)
    assert np.allclose(s.weights, z / z.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-6)
    ew = pmtnumba.step_inspect(ds, method="ew", tasks=["bpr", "rating"], batch_size=64, threads=1)
    assert ew.weights is None and np.allclose(ew.g, ew.G.sum(axis=0), rtol=1e-5, atol=1e-9)


def test_plot_run_and_compare(tmp_path):
    pytest.importorskip("matplotlib")
    csv = write_toy_csv(tmp_path / "toy.csv")
    assert cli("fit", "--dataset", csv, "--epochs", "3", "--out", tmp_path / "run", *FIT).exit_code == 0
    r = cli("plot", tmp_path / "run")
    assert r.exit_code == 0, r.output
    png = tmp_path / "run" / "curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = cli("plot", tmp_path / "run", "--format", "svg", "--out", tmp_path / "c.svg")
    assert r.exit_code == 0 and b"<svg" in (tmp_path / "c.svg").read_bytes()[:2000]
    cmp = tmp_path / "cmp"
    cmp.mkdir()
    (cmp / "summary.csv").write_text("method,seeds,recall@20_mean,recall@20_std,ndcg@20_mean,ndcg@20_std\n"
                                     "ew,0 1,0.10,0.01,0.05,0.005\npmtrec,0 1,0.12,0.02,0.06,0.004\n")
    r = cli("plot", cmp)
    assert r.exit_code == 0 and (cmp / "methods.png").read_bytes()[:4] == b"\x89PNG"
    r = cli("plot", tmp_path)
    assert r.exit_code == 2 and "neither a fit run" in r.output


def test_plot_without_matplotlib_is_one_line(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_mpl(name, *a, **k):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, *a, **k)

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "curve.csv").write_text("epoch,loss_bpr\n1,0.6\n")
    monkeypatch.setattr(builtins, "__import__", no_mpl)
    r = cli("plot", tmp_path / "run")
    assert r.exit_code == 2 and r.output.strip() == "error: plotting needs matplotlib: pip install 'pmtnumba[plot]'"


def test_plot_sweep_directory(tmp_path):
    """`pmtnumba plot` of a sweep directory draws its report's Table 2 (the shipped filmtrust sweep)."""
    pytest.importorskip("matplotlib")
    import shutil
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "results" / "sweep-filmtrust" / "sparse" / "report" / "table2.csv"
    (tmp_path / "sw" / "report").mkdir(parents=True)
    shutil.copy(src, tmp_path / "sw" / "report" / "table2.csv")
    r = cli("plot", tmp_path / "sw")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "sw" / "report" / "methods.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
