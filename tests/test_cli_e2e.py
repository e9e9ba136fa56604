"""A tiny end-to-end fit through the CLI, then evaluate and recommend; clear errors for bad input."""

import json

import numpy as np
from click.testing import CliRunner

from pmtnumba_cli.main import main

from .conftest import synthetic_dataset


def write_csv(path, ds):
    with open(path, "w") as f:
        f.write("user_id,item_id,rating\n")
        for u, i, r in zip(ds.users, ds.items, ds.ratings):
            f.write(f"u{u},{i + 1000},{r}\n")


def test_fit_evaluate_recommend(tmp_path):
    ds = synthetic_dataset(n_users=80, n_items=50, per_user=10)
    csv = tmp_path / "toy.csv"
    write_csv(csv, ds)
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["fit", "--dataset", str(csv), "--epochs", "4", "--batch-size", "64",
                                  "--threads", "1", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    for f in ("config.json", "curve.csv", "metrics.json", "embeddings.npz"):
        assert (out / f).is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 4
    assert 0.0 <= metrics["test"]["recall@20"] <= 1.0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["tasks"] == ["bpr"] and cfg["dim"] == 32
    # re-evaluation of the saved embeddings reproduces the saved test metrics
    r = CliRunner().invoke(main, ["evaluate", str(out)])
    assert r.exit_code == 0, r.output
    assert f"{metrics['test']['recall@20']:.4f}, now {metrics['test']['recall@20']:.4f}" in r.output
    r = CliRunner().invoke(main, ["recommend", str(out), "--user", "u3", "-k", "5"])
    assert r.exit_code == 0, r.output
    listed = [int(line.split()[2]) for line in r.output.splitlines()[1:]]
    assert len(listed) == 5
    seen = set(ds.items[ds.users == 3] + 1000)
    assert not seen & set(listed)


def test_bad_arguments_give_one_line(tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["fit", "--dataset", "nosuchdata", "--epochs", "1"])
    assert r.exit_code == 2 and r.output.startswith("error:") and "Traceback" not in r.output
    r = runner.invoke(main, ["fit", "--dataset", "office", "--lr", "-1"])
    assert r.exit_code == 2 and "--lr" in r.output
    r = runner.invoke(main, ["fit", "--dataset", "office", "--tasks", "nosuchtask"])
    assert r.exit_code == 2 and "nosuchtask" in r.output
    r = runner.invoke(main, ["evaluate", str(tmp_path)])
    assert r.exit_code == 2 and "not a finished run" in r.output


def test_divergence_names_task_and_epoch():
    import pytest

    from pmtnumba.data.split import make_split
    from pmtnumba.errors import TrainingDiverged
    from pmtnumba.training import FitConfig, Trainer

    ds = synthetic_dataset(n_users=40, n_items=30, per_user=6)
    tr = Trainer(FitConfig(dataset="toy", tasks=["bpr"], epochs=3, batch_size=32), split=make_split(ds, 0))
    tr.encoder.E[:] = np.nan  # a poisoned table: the first step's loss is NaN
    with pytest.raises(TrainingDiverged, match=r"task 'bpr' has a non-finite loss at epoch 1"):
        tr.fit()


def test_run_records_effective_config_versions_and_events(tmp_path):
    """config.json / metrics.json hold what the combiner and tasks really used (an ablation's fixed
    tau, not a value it would ignore) and the package version and commit; an explicit conflicting
    tau is a one-line error; curve.csv carries the combiner's event counts per epoch."""
    import csv as csvmod

    ds = synthetic_dataset(n_users=60, n_items=40, per_user=8)
    data = tmp_path / "toy.csv"
    write_csv(data, ds)
    out = tmp_path / "nobal"
    common = ["fit", "--dataset", str(data), "--epochs", "2", "--batch-size", "64", "--threads", "1", "--quiet",
              "--tasks", "bpr,align_uniform"]
    r = CliRunner().invoke(main, common + ["--method", "pmtrec-nobalance", "--alpha", "1.2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["effective"]["method"] == {"name": "pmtrec-nobalance", "variant": "pmtrec-nobalance", "alpha": 1.2,
                                          "tau": 1.0, "drop_absent": False}
    assert cfg["effective"]["tasks"]["align_uniform"]["gamma"] > 0 and "bpr" in cfg["effective"]["tasks"]
    assert cfg["versions"]["pmtnumba"] and "git_commit" in cfg["versions"]
    assert json.loads((out / "metrics.json").read_text())["effective"] == cfg["effective"]
    r = CliRunner().invoke(main, common + ["--method", "pmtrec-nobalance", "--tau", "1e-6"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.output.strip() == ("error: pmtrec-nobalance: tau is fixed at 1 by this ablation, got tau=1e-06; "
                                "leave tau out for pmtrec-nobalance (or use pmtrec)")
    out = tmp_path / "nash"
    r = CliRunner().invoke(main, common + ["--method", "nash-mtl", "--out", str(out)])
    assert r.exit_code == 0, r.output
    with open(out / "curve.csv") as f:
        rows = list(csvmod.DictReader(f))
    assert [int(row["combiner_fallbacks"]) for row in rows] == [0, 0]
