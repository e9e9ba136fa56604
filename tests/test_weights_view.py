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


def test_percentiles_within_the_stated_resolution_near_0_and_1():
    """Weights within 1e-6 of 0 or 1 (PMTRec at a small tau): the printed percentiles are within
    RELATIVE_RESOLUTION of the exact ones (of w, or of 1 - w above 0.5), not bin midpoints 0.005."""
    from pmtnumba.training.weights import RELATIVE_RESOLUTION, fmt_weight

    rng = np.random.default_rng(3)
    small = 10.0 ** rng.uniform(-9, -3, 500)  # weights of the auxiliary tasks
    W = np.stack([1.0 - small, small], axis=1)
    rec = WeightRecorder(np.ones(500, np.int64), np.array([1]), ["bpr", "aux"])
    rec.observe(np.arange(500), W)
    rec.end_epoch(1)
    by = {r["task"]: r for r in rec.records}
    for p in (10, 50, 90):
        exact_aux = np.percentile(small, p, method="inverted_cdf")
        assert abs(by["aux"][f"p{p}"] / exact_aux - 1) <= RELATIVE_RESOLUTION * 1.0001
        exact_bpr = np.percentile(W[:, 0], p, method="inverted_cdf")  # judged on 1 - w
        assert abs((1.0 - by["bpr"][f"p{p}"]) / (1.0 - exact_bpr) - 1) <= RELATIVE_RESOLUTION * 1.0001 + 1e-6
    assert by["aux"]["min"] == small.min() and by["aux"]["max"] == small.max()
    assert RELATIVE_RESOLUTION < 0.003
    assert fmt_weight(by["aux"]["p50"]) != "0" and fmt_weight(by["bpr"]["p50"]).startswith("1-")
    assert fmt_weight(0.5) == "0.5" and fmt_weight(0.0) == "0" and fmt_weight(1 - 3.2e-6) == "1-3.2e-06"


def test_constant_and_exact_zero_weights_are_reported_exactly():
    rec = WeightRecorder(np.ones(4, np.int64), np.array([1]), ["bpr", "aux", "third"])
    W = np.tile([0.0, 1.0 / 3.0, 2.0 / 3.0], (4, 1))
    rec.observe(np.arange(4), W)
    rec.end_epoch(1)
    by = {r["task"]: r for r in rec.records}
    assert by["bpr"]["p10"] == by["bpr"]["p90"] == 0.0
    assert by["aux"]["p50"] == 1.0 / 3.0 and by["third"]["p90"] == 2.0 / 3.0
    header, rows_ = weights_table(rec.records, 1)
    assert rows_[0][1:] == ["0 (0 .. 0)", "0.333 (0.333 .. 0.333)", "0.667 (0.667 .. 0.667)"]
