"""Fixed splits (pmtnumba.data.fixed): a user's own train/valid/test files through `fit`, the
held-out validation, the optimistic label of --select-on test, and one-line errors for bad input."""

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from pmtnumba.data import load_dataset
from pmtnumba.data.split import OPTIMISTIC, TEST, TRAIN, VALID, holdout_labels, make_split
from pmtnumba.errors import DataError
from pmtnumba_cli.main import main


def _toy_parts(n_users=40, n_items=30, per_user=9, seed=0):
    """Per user: 6 train, 1 valid, 2 test interactions (raw ids u<k>, 1000+j); every item in train."""
    rng = np.random.default_rng(seed)
    parts = {"train": [], "valid": [], "test": []}
    for u in range(n_users):
        its = rng.choice(n_items, size=per_user, replace=False)
        parts["train"] += [(f"u{u}", 1000 + int(i)) for i in its[:6]]
        parts["valid"] += [(f"u{u}", 1000 + int(i)) for i in its[6:7]]
        parts["test"] += [(f"u{u}", 1000 + int(i)) for i in its[7:]]
    seen = {i for _, i in parts["train"]}
    for k in range(n_items):  # items missing from train: one more training interaction each
        if 1000 + k not in seen:
            u = next(f"u{v}" for v in range(n_users) if (f"u{v}", 1000 + k) not in parts["valid"] + parts["test"])
            parts["train"].append((u, 1000 + k))
    return parts


def _write(path, rows, header="user_id,item_id"):
    path.write_text(header + "\n" + "".join(f"{u},{i}\n" for u, i in rows))
    return path


@pytest.fixture
def three_files(tmp_path):
    parts = _toy_parts()
    return {k: _write(tmp_path / f"{k}.csv", v) for k, v in parts.items()}, parts


def test_three_csv_files_fit_end_to_end(tmp_path, three_files):
    files, parts = three_files
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["fit", "--train", str(files["train"]), "--valid", str(files["valid"]),
                                  "--test", str(files["test"]), "--epochs", "3", "--batch-size", "64",
                                  "--threads", "1", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "protocol: fixed split, epoch selected on its validation part" in r.output
    metrics = json.loads((out / "metrics.json").read_text())
    cfg = json.loads((out / "config.json").read_text())
    assert metrics["epochs_run"] == 3 and cfg["valid_file"] == str(files["valid"])
    assert metrics["protocol"] == cfg["protocol"] == "fixed split, epoch selected on its validation part"
    # the test part is exactly the test file: as many evaluated users as users with test items
    assert metrics["test"]["n_users"] == len({u for u, _ in parts["test"]})
    # the split is the files', not a random draw: reload the run and compare parts with the files
    from pmtnumba.training.runs import load_run_split

    _, sp = load_run_split(out)
    ds = sp.dataset
    for lab, name in ((TRAIN, "train"), (VALID, "valid"), (TEST, "test")):
        got = {(str(ds.user_raw[u]), int(ds.item_raw[i]))
               for u, i in zip(ds.users[sp.labels == lab], ds.items[sp.labels == lab])}
        assert got == {(u, i) for u, i in parts[name]}, name
    # re-evaluation reproduces the saved test metrics
    r = CliRunner().invoke(main, ["evaluate", str(out)])
    assert r.exit_code == 0, r.output
    assert f"{metrics['test']['recall@20']:.4f}, now {metrics['test']['recall@20']:.4f}" in r.output
    # the run records every file of its split: a changed test file is refused
    files["test"].write_text(files["test"].read_text() + "u1,1029\n")
    r = CliRunner().invoke(main, ["evaluate", str(out)])
    assert r.exit_code == 2 and "test.csv: the data file changed since the run was trained" in r.output


def test_held_out_validation_per_user(tmp_path, three_files):
    files, parts = three_files
    ds = load_dataset(files["train"], test=files["test"])  # no validation file
    assert set(np.unique(ds.extra["split"]).tolist()) == {TRAIN, TEST}
    sp = make_split(ds, seed=5, holdout=0.25)
    n_train = np.bincount(ds.users[ds.extra["split"] == TRAIN], minlength=ds.n_users)
    n_valid = np.diff(sp.valid[0])
    want = np.minimum(np.floor(0.25 * n_train + 0.5), n_train - 1)
    assert np.array_equal(n_valid, want)  # round(25 %) of each user's train, at least one left
    assert np.array_equal(np.diff(sp.test[0]), np.bincount(ds.users[ds.extra["split"] == TEST], minlength=ds.n_users))
    assert sp.train_users.size + int(n_valid.sum()) == int(n_train.sum())
    assert np.array_equal(make_split(ds, seed=5, holdout=0.25).labels, sp.labels)  # seeded
    assert not np.array_equal(make_split(ds, seed=6, holdout=0.25).labels, sp.labels)
    assert "held out of train (0.25 per user)" in sp.protocol
    # a user with one training interaction keeps it
    lab = holdout_labels(np.array([0, 1, 1]), np.zeros(3, np.int8), seed=0, fraction=0.9)
    assert lab.tolist().count(VALID) == 1 and lab[0] == TRAIN


def test_select_on_test_is_labelled_optimistic(tmp_path, three_files):
    files, _ = three_files
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["fit", "--train", str(files["train"]), "--test", str(files["test"]),
                                  "--select-on", "test", "--epochs", "2", "--batch-size", "64", "--threads", "1",
                                  "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    assert f"protocol: {OPTIMISTIC}" in r.output and f"test, {OPTIMISTIC} metrics" in r.output
    metrics = json.loads((out / "metrics.json").read_text())
    cfg = json.loads((out / "config.json").read_text())
    assert metrics["protocol"] == cfg["protocol"] == OPTIMISTIC and cfg["select_on"] == "test"
    # nothing held out, the epoch was chosen on test: the best "validation" score is the test score
    assert metrics["valid"]["recall@20"] == metrics["test"]["recall@20"]
    r = CliRunner().invoke(main, ["fit", "--dataset", "filmtrust", "--select-on", "test", "--epochs", "1"])
    assert r.exit_code == 2 and "no fixed split" in r.output


def test_compare_labels_optimistic(tmp_path, three_files):
    files, _ = three_files
    out = tmp_path / "cmp"
    r = CliRunner().invoke(main, ["compare", "--dataset", str(files["train"]), "--test", str(files["test"]),
                                  "--select-on", "test", "--methods", "ew", "--seeds", "0", "--epochs", "1",
                                  "--batch-size", "64", "--threads", "1", "--out", str(out), "--quiet",
                                  "--no-run-dirs"])
    assert r.exit_code == 0, r.output
    assert OPTIMISTIC in r.output
    assert OPTIMISTIC in (out / "summary.md").read_text()
    assert json.loads((out / "config.json").read_text())["protocol"] == OPTIMISTIC
    with open(out / "runs.csv") as f:  # the CSV alone says so, row by row
        rows = list(csv.DictReader(f))
    assert rows and all(r["protocol"] == OPTIMISTIC for r in rows)


def test_split_column(tmp_path):
    rows = "user,item,split\n" + "".join(f"{u},{i},{'test' if (u + i) % 5 == 0 else 'train'}\n"
                                         for u in range(5) for i in range(5))
    path = tmp_path / "one.csv"
    path.write_text(rows)
    ds = load_dataset(path)
    assert np.bincount(ds.extra["split"], minlength=3).tolist() == [20, 0, 5]
    path.write_text("user,item,split\n1,2,train\n1,2,TEST\n")
    with pytest.raises(DataError, match=r"one.csv: line 3: \(user 1, item 2\) is in the test part and also in the "
                                        r"train part \(.*one.csv: line 2\)"):
        load_dataset(path)
    path.write_text("user,item,split\n1,2,train\n1,3,tset\n")
    with pytest.raises(DataError, match=r"one.csv: line 3: split 'tset' is not one of"):
        load_dataset(path)


def _err(tmp_path, train, test):
    a = _write(tmp_path / "tr.csv", train)
    b = _write(tmp_path / "te.csv", test)
    r = CliRunner().invoke(main, ["fit", "--train", str(a), "--test", str(b), "--epochs", "1"])
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    return lines[0]


def test_bad_fixed_split_input(tmp_path):
    train = [("a", 1), ("a", 2), ("b", 2), ("b", 3)]
    line = _err(tmp_path, train, [("a", 3), ("c", 1)])
    assert "te.csv: line 3: user 'c' (test part) does not occur in the training part" in line
    line = _err(tmp_path, train, [("a", 3), ("b", 9)])
    assert "te.csv: line 3: item 9 (test part) does not occur in the training part" in line
    line = _err(tmp_path, train, [("a", 3), ("b", 2)])
    assert "te.csv: line 3: (user 'b', item 2) is in the test part and also in the train part" in line
    assert "tr.csv: line 4" in line
    (tmp_path / "bad.csv").write_text("user,item\na,1\nb,2,7\n")
    r = CliRunner().invoke(main, ["fit", "--train", str(tmp_path / "tr.csv"), "--test", str(tmp_path / "bad.csv"),
                                  "--epochs", "1"])
    assert r.exit_code == 2 and "bad.csv: line 3: expected 2 fields, saw 3" in r.output
    r = CliRunner().invoke(main, ["fit", "--train", str(tmp_path / "tr.csv"), "--test", str(tmp_path / "nope.csv"),
                                  "--epochs", "1"])
    assert r.exit_code == 2 and "nope.csv: no such file" in r.output
    r = CliRunner().invoke(main, ["fit", "--train", str(tmp_path / "tr.csv"), "--valid", str(tmp_path / "te.csv"),
                                  "--epochs", "1"])
    assert r.exit_code == 2 and "needs --test FILE" in r.output
    _write(tmp_path / "te.csv", [("a", 3)])
    r = CliRunner().invoke(main, ["fit", "--train", str(tmp_path / "tr.csv"), "--test", str(tmp_path / "te.csv"),
                                  "--holdout", "0", "--epochs", "1"])
    assert r.exit_code == 2 and "the validation part of its fixed split is empty (--holdout 0" in r.output


def test_gowalla_shipped_split():
    ds = load_dataset("gowalla")
    assert (ds.n_users, ds.n_items) == (29_858, 40_981)
    assert np.bincount(ds.extra["split"], minlength=3).tolist() == [810_128, 0, 217_242]
    sp = make_split(ds, seed=0, select_on="test")
    assert sp.train_users.size == 810_128 and sp.protocol == OPTIMISTIC


def test_python_api_fixed_split(three_files):
    import pmtnumba

    files, _ = three_files
    model = pmtnumba.fit(str(files["train"]), test_file=str(files["test"]), select_on="test", epochs=2,
                         batch_size=64, threads=1)
    assert model.metrics["protocol"] == OPTIMISTIC and model.split.kind == "fixed"
    assert model.evaluate("test")["recall@20"] == model.metrics["test"]["recall@20"]
    model = pmtnumba.fit(str(files["train"]), test_file=str(files["test"]), holdout=0.2, epochs=1, batch_size=64,
                         threads=1)
    assert "held out of train (0.2 per user)" in model.metrics["protocol"]
