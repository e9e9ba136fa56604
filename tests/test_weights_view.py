"""The PMTRec weight view: histograms by degree group, summaries, the CLI table."""

import numpy as np
from click.testing import CliRunner

from pmtnumba.training.weights import WeightRecorder, degree_groups, weights_table
from pmtnumba_cli.main import main

from .conftest import synthetic_dataset
from .test_cli_e2e import write_csv


def test_degree_groups_are_quartiles():
    deg = np.arange(1, 101)
    gid, labels = degree_groups(deg, "users")
    assert len(labels) == 4 and labels[0] == "users deg 1-25" and labels[-1] == "users deg 76-100"
    assert np.bincount(gid).tolist() == [25, 25, 25, 25]


def test_recorder_means_and_percentiles():
    rec = WeightRecorder(np.array([1, 1, 5, 5]), np.array([3, 3]), ["bpr", "aux"])
    rows = np.array([0, 1, 2, 3, 4, 5])
    W = np.array([[0.1, 0.9], [0.3, 0.7], [0.8, 0.2], [0.6, 0.4], [0.5, 0.5], [0.5, 0.5]])
    rec.observe(rows, W)
    rec.end_epoch(1)
    by = {(r["group"], r["task"]): r for r in rec.records}
    cold = by[("users deg 1-1", "bpr")]
    warm = by[("users deg 5-5", "bpr")]
    assert cold["n"] == 2 and abs(cold["mean"] - 0.2) < 1e-12
    assert abs(warm["mean"] - 0.7) < 1e-12
    assert abs(by[("items deg 3-3", "aux")]["mean"] - 0.5) < 1e-12
    assert 0.1 <= cold["p50"] <= 0.31
    header, rows_ = weights_table(rec.records, 1)
    assert header == ["group", "bpr", "aux"] and len(rows_) == 3


def test_pmtrec_run_writes_weights_and_cli_prints_them(tmp_path):
    ds = synthetic_dataset(n_users=60, n_items=40, per_user=8)
    csv = tmp_path / "toy.csv"
    write_csv(csv, ds)
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["fit", "--dataset", str(csv), "--tasks", "bpr,rating", "--method", "pmtrec",
                                  "--epochs", "2", "--batch-size", "64", "--threads", "1", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    assert (out / "weights.csv").is_file()
    r = CliRunner().invoke(main, ["weights", str(out)])
    assert r.exit_code == 0, r.output
    assert "users deg" in r.output and "rating" in r.output
    r = CliRunner().invoke(main, ["weights", str(tmp_path)])
    assert r.exit_code == 2 and "no weights recorded" in r.output
