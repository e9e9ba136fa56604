"""Honest progress and cheap checkpoints: the time budget, line-per-epoch logs off a terminal,
checkpoints by the clock (first and last epoch always), a stop on SIGINT/SIGTERM with a checkpoint,
and a resume that replays from the last checkpoint bit-identically."""

from __future__ import annotations

import json
import signal
import time

import numpy as np
import pytest

from pmtnumba.data.split import make_split
from pmtnumba.errors import PmtError
from pmtnumba.training import FitConfig, Trainer, loop
from pmtnumba.training.budget import KINDS

from .conftest import synthetic_dataset
from .faults import FIT, cli, cli_process, write_toy_csv


@pytest.fixture(scope="module")
def split():
    return make_split(synthetic_dataset(n_users=60, n_items=40, per_user=8), 1)


def _cfg(epochs, **kw):
    return FitConfig(dataset="toy", tasks=["bpr", "rating"], method="pmtrec", epochs=epochs, batch_size=64,
                     threads=1, patience=50, **kw)


def _checkpointed_epochs(monkeypatch):
    seen = []
    orig = loop.Trainer._checkpoint

    def spy(self, run, st):
        seen.append(st.epoch)
        orig(self, run, st)

    monkeypatch.setattr(loop.Trainer, "_checkpoint", spy)
    return seen


def test_checkpoints_by_the_clock(tmp_path, split, monkeypatch):
    seen = _checkpointed_epochs(monkeypatch)
    Trainer(_cfg(5, checkpoint_every=3600.0), split=split).fit(out_dir=tmp_path / "a")
    assert seen == [1, 5]  # the first epoch (something to resume) and the last, nothing between
    seen.clear()
    Trainer(_cfg(4, checkpoint_every=0.0), split=split).fit(out_dir=tmp_path / "b")
    assert seen == [1, 2, 3, 4]


def test_resume_replays_from_the_last_checkpoint(tmp_path, split, monkeypatch):
    full = Trainer(_cfg(4), split=split).fit(out_dir=tmp_path / "full")
    # a fit that dies during epoch 3, its last checkpoint after epoch 1
    orig = loop.Trainer._run_epoch

    def dies(self, epoch, *a):
        if epoch == 3:
            raise RuntimeError("killed")
        return orig(self, epoch, *a)

    monkeypatch.setattr(loop.Trainer, "_run_epoch", dies)
    with pytest.raises(RuntimeError):
        Trainer(_cfg(4, checkpoint_every=3600.0), split=split).fit(out_dir=tmp_path / "part")
    with np.load(tmp_path / "part" / ".partial" / "checkpoint.npz") as z:
        assert json.loads(str(z["meta"]))["epoch"] == 1
    monkeypatch.setattr(loop.Trainer, "_run_epoch", orig)
    # the resume replays epochs 2..4 (another --checkpoint-every is fine: it does not change results)
    resumed = Trainer(_cfg(4, checkpoint_every=0.0), split=split).fit(out_dir=tmp_path / "part", resume=True)
    assert np.array_equal(full.user_emb, resumed.user_emb) and np.array_equal(full.item_emb, resumed.item_emb)
    assert full.test == resumed.test
    assert [r["epoch"] for r in resumed.curve] == [1, 2, 3, 4]


def test_time_budget_in_result_and_metrics(tmp_path, split):
    res = Trainer(_cfg(3), split=split).fit(out_dir=tmp_path / "r")
    b = res.time_budget
    assert set(b) == {*KINDS, "other", "total"}
    assert all(v >= 0 for v in b.values())
    assert b["train"] > 0 and b["evaluate"] > 0 and b["checkpoint"] > 0 and b["io"] > 0
    parts = sum(b[k] for k in (*KINDS, "other"))
    assert parts == pytest.approx(b["total"], abs=0.01)
    # training seconds of the budget are those of the curve (compilation taken out of epoch 1)
    assert b["train"] == pytest.approx(sum(r["train_seconds"] for r in res.curve), abs=0.01)
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["time_budget"] == b


def test_cli_log_off_a_terminal_is_one_line_per_epoch(tmp_path):
    csv = write_toy_csv(tmp_path / "toy.csv")
    r = cli("fit", "--dataset", csv, "--epochs", "3", "--batch-size", "64", "--threads", "1", "--out", tmp_path / "r")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    epoch_lines = [ln for ln in lines if ln.startswith("epoch")]
    assert [ln.split("|")[0].split() for ln in epoch_lines] == [["epoch", "1"], ["epoch", "2"], ["epoch", "3"]]
    assert all("valid R@20" in ln for ln in epoch_lines)  # no bare "epoch N" progress-bar labels
    summary = next(ln for ln in lines if ln.startswith("best epoch"))
    for k in ("time", "load", "compile", "train", "evaluate", "checkpoint", "io"):
        assert f"{k} " in summary


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_signal_writes_a_checkpoint_and_resume_continues(tmp_path, sig):
    csv = write_toy_csv(tmp_path / "toy.csv")
    out = tmp_path / "run"
    long = ["--epochs", "100000", "--patience", "100000", "--checkpoint-every", "3600"]
    a = cli_process("fit", "--dataset", csv, "--out", out, *long, *FIT)
    ck = out / ".partial" / "checkpoint.npz"
    t0 = time.time()
    while not ck.is_file():
        assert a.poll() is None, a.stdout.read()
        assert time.time() - t0 < 120, "no first checkpoint"
        time.sleep(0.05)
    mtime = ck.stat().st_mtime_ns
    time.sleep(0.3)  # a few more epochs, none checkpointed (every 3600 s)
    a.send_signal(sig)
    output, _ = a.communicate(timeout=120)
    assert a.returncode == 2, output
    with np.load(ck) as z:
        k = json.loads(str(z["meta"]))["epoch"]
    assert ck.stat().st_mtime_ns != mtime and k > 1  # written again, at the stop
    assert f"error: stopped by {sig.name} after epoch {k}; its checkpoint is in" in output
    r = cli("fit", "--dataset", csv, "--out", out, "--epochs", k + 1, "--patience", "100000", "--resume", *FIT)
    assert r.exit_code == 0, r.output
    assert f"resuming {out} after epoch {k}" in r.output
    assert json.loads((out / "metrics.json").read_text())["epochs_run"] == k + 1


def test_fit_without_out_writes_a_default_run_dir(tmp_path):
    csv = write_toy_csv(tmp_path / "toy.csv")  # the test runs in tmp_path (conftest)
    r = cli("fit", "--dataset", csv, "--epochs", "1", *FIT)
    assert r.exit_code == 0, r.output
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("toy-ew-")
    assert f"writing the run to runs/{runs[0].name} (no --out given)" in r.output
    assert f"results written to runs/{runs[0].name}" in r.output
    assert (runs[0] / "metrics.json").is_file() and (runs[0] / "embeddings.npz").is_file()
    # bad options fail before any folder is made
    r = cli("fit", "--dataset", csv, "--epochs", "0", *FIT)
    assert r.exit_code == 2 and len(list((tmp_path / "runs").iterdir())) == 1
