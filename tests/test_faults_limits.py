"""Limits and consistency before training: memory refusals, batch and -k caps, data sets on which
BPR or the metrics mean nothing, options that do not apply or do not parse, divergence, and the
CLI's error wrapper (anticipated exceptions in one line, unexpected ones with a traceback)."""

from __future__ import annotations

import json

import click
import numpy as np
import pytest
from click.testing import CliRunner

from pmtnumba.data.split import make_split
from pmtnumba.errors import PmtError, TrainingDiverged
from pmtnumba.training import FitConfig, Trainer
from pmtnumba.training.health import LossWatch, check_table
from pmtnumba.training.limits import estimate_fit_memory
from pmtnumba_cli.common import friendly_errors

from .conftest import synthetic_dataset
from .faults import FIT, cli, error_of, write_toy_csv


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    return write_toy_csv(tmp_path_factory.mktemp("limits") / "toy.csv")


def fit(csv, *extra, env=None):
    return cli("fit", "--dataset", csv, "--epochs", "1", *FIT, *extra, env=env)


# --- memory -------------------------------------------------------------------------------------

def test_memory_refusal_names_the_estimate(csv):
    r = fit(csv, "--dim", "100000", env={"PMTNUMBA_MEMORY_LIMIT": "64MiB"})
    assert r.exit_code == 2
    # 70 rows x 100000 x 4 bytes = 26.7 MiB table; Adam 2x; best copy; steps (1 + 2) x 3 x 64 slots x d x 4
    assert error_of(r) == (
        "error: training toy with --dim 100000 and --batch-size 64 needs about 0.3 GiB of memory "
        "(embedding table 26.7 MiB, Adam moments 53.4 MiB, best-epoch copy 26.7 MiB, step buffers 0.2 GiB, "
        "evaluation 0.5 MiB), but only 64.0 MiB is available (PMTNUMBA_MEMORY_LIMIT); use a smaller --dim or "
        "--batch-size")


def test_videogame_dim_100000_estimate():
    """The shipped videogame set at --dim 100000 (the issue's example): refused, nothing allocated."""
    r = cli("fit", "--dataset", "videogame", "--dim", "100000", "--epochs", "1", env={"PMTNUMBA_MEMORY_LIMIT": "64GiB"})
    assert r.exit_code == 2, r.output
    assert "needs about" in error_of(r) and "(embedding table 13.0 GiB, Adam moments 26.0 GiB" in error_of(r), error_of(r)
    assert "but only 64.0 GiB is available (PMTNUMBA_MEMORY_LIMIT)" in error_of(r)


def test_estimate_parts():
    parts = estimate_fit_memory(1000, 500, 10, 64, slots_per_step=192, n_tasks=1)
    assert parts["embedding table"] == 1500 * 10 * 4
    assert parts["Adam moments"] == 2 * parts["embedding table"] == 2 * parts["best-epoch copy"]


def test_batch_is_capped_at_the_training_interactions(csv, tmp_path):
    big = fit(csv, "--batch-size", "1000000000", "--out", tmp_path / "a")  # FIT's 64 is overridden (last wins)
    assert big.exit_code == 0, big.output
    n = json.loads((tmp_path / "a" / "config.json").read_text())
    import re

    n_train = int(re.search(r"(\d+) train interactions", big.output).group(1))
    assert f"--batch-size 1000000000 is more than the {n_train} training interactions: using one batch of {n_train}" \
        in big.output
    same = fit(csv, "--batch-size", str(n_train), "--out", tmp_path / "b")
    assert same.exit_code == 0
    with np.load(tmp_path / "a" / "embeddings.npz") as x, np.load(tmp_path / "b" / "embeddings.npz") as y:
        assert np.array_equal(x["user_emb"], y["user_emb"])
    assert n["batch_size"] == 1000000000  # what was asked is recorded


# --- data on which training means nothing ------------------------------------------------------

def test_one_item_is_refused(tmp_path):
    p = tmp_path / "one.csv"
    p.write_text("user,item\n" + "".join(f"u{u},7\n" for u in range(50)))
    r = fit(p)
    assert r.exit_code == 2
    assert error_of(r) == "error: data set 'one' has 1 item(s): BPR needs at least 2 (a positive and a negative item)"


def test_no_negative_to_draw_is_refused():
    """Every training user has interacted with every item: BPR has no negative to draw."""
    from pmtnumba.data.dataset import Dataset
    from pmtnumba.training.limits import check_split

    users = np.repeat(np.arange(40, dtype=np.int32), 2)
    items = np.tile(np.arange(2, dtype=np.int32), 40)
    sp = make_split(Dataset("both", 40, 2, users, items), 0)
    full = sp.train[0].copy()  # pretend the split put every interaction of a user in train
    sp.train = (np.arange(41, dtype=np.int64) * 2, np.tile(np.arange(2, dtype=np.int64), 40))
    sp.train_users, sp.train_items = users.astype(np.int64), items.astype(np.int64)
    with pytest.raises(PmtError) as e:
        check_split(sp, ["bpr"])
    assert str(e.value) == ("data set 'both': every training user has interacted with all 2 items, so BPR cannot "
                            "draw a negative item")
    assert full.shape == (41,)


def test_empty_test_split_is_refused_before_training(tmp_path):
    p = tmp_path / "tiny.csv"
    p.write_text("user,item\nu1,1\nu2,2\n")
    r = fit(p, "--out", tmp_path / "run")
    assert r.exit_code == 2
    assert "part of the 60/20/20 split is empty (2 interaction(s) are too few); its metrics would be undefined" \
        in error_of(r), error_of(r)
    assert not (tmp_path / "run" / "metrics.json").exists()


# --- options ------------------------------------------------------------------------------------

OPTION_CASES = [
    (["--gamma", "2"], "error: --gamma applies to the align_uniform task, which is not among the tasks (bpr); "
                       "add it with --tasks or drop the option"),
    (["--alpha", "1.2"], "error: --alpha applies to the pmtrec methods, not 'ew'"),
    (["--method", "pmtrec-nofocus", "--alpha", "1.2"],
     "error: pmtrec-nofocus: alpha is fixed at 1 by this ablation, got alpha=1.2; leave alpha out for "
     "pmtrec-nofocus (or use pmtrec)"),
    (["--method", "pmtrec", "--tau", "0"], "error: --tau must be a positive finite number, got 0.0"),
    (["--method", "cagrad", "-o", "calpha=abc"], "error: -o calpha=abc: cagrad option 'calpha' takes a number"),
    (["--method", "cagrad", "-o", "calpha=-1"], "error: -o calpha=-1: cagrad option 'calpha' must be >= 0.0"),
    (["--method", "cagrad", "-o", "calpha=nan"], "error: -o calpha=nan: cagrad option 'calpha' must be finite"),
    (["--method", "cagrad", "-o", "rescale=1.5"], "error: -o rescale=1.5: cagrad option 'rescale' takes an integer"),
    (["--method", "cagrad", "-o", "rescale=5"], "error: cagrad: rescale must be 0, 1 or 2, got 5"),
    (["--method", "cagrad", "-o", "speed=3"],
     "error: -o speed=3: method 'cagrad' has no option 'speed' (its options: calpha, rescale)"),
    (["--method", "ew", "-o", "eps=1"], "error: -o eps=1: method 'ew' has no option 'eps' (its options: none)"),
    (["--method", "pmtrec", "-o", "drop_absent=maybe"], "error: -o drop_absent=maybe: expected true or false"),
    (["--method", "pmtrec", "-o", "variant=pmtrec-nofocus"],
     "error: -o variant=pmtrec-nofocus: method 'pmtrec' has no option 'variant' (its options: alpha, tau, drop_absent)"),
    (["--method", "rlw", "-o", "per=hour"], "error: rlw: per must be 'step' or 'epoch', got 'hour'"),
    (["--lr", "inf"], "error: --lr must be a finite number > 0, got inf"),
    (["--wd", "nan"], "error: --wd must be a finite number >= 0, got nan"),
    (["--resume"], "error: --resume needs --out DIR"),
]


@pytest.mark.parametrize("args, message", OPTION_CASES, ids=[" ".join(a) for a, _ in OPTION_CASES])
def test_options_that_do_not_apply_or_parse(csv, args, message):
    r = fit(csv, *args)
    assert r.exit_code == 2, r.output
    assert error_of(r) == message
    assert "Traceback" not in r.output


def test_typed_options_are_passed_typed(csv, tmp_path):
    r = fit(csv, "--method", "pmtrec", "-o", "drop_absent=yes", "-o", "tau=1e-3", "--out", tmp_path / "r")
    assert r.exit_code == 0, r.output
    opts = json.loads((tmp_path / "r" / "config.json").read_text())["method_options"]
    assert opts == {"drop_absent": True, "tau": 0.001}


# --- finite, always -----------------------------------------------------------------------------

def test_loss_growth_is_flagged():
    w = LossWatch()
    w.observe(1, {"bpr": 0.69, "rating": 12.0})
    w.observe(2, {"bpr": 50.0, "rating": 11.0})  # grows, but not by orders of magnitude
    with pytest.raises(TrainingDiverged) as e:
        w.observe(3, {"bpr": 3.2e13, "rating": 10.0})
    assert str(e.value) == ("training diverges: task 'bpr' loss grew from 0.69 (epoch 1) to 3.2e+13 (epoch 3); "
                            "try a smaller --lr, or pass --allow-divergence to go on")
    w = LossWatch(allow=True)
    w.observe(1, {"bpr": 0.69})
    assert w.observe(2, {"bpr": 1e27}) == [
        "warning: training diverges: task 'bpr' loss grew from 0.69 (epoch 1) to 1e+27 (epoch 2); going on "
        "(--allow-divergence)"]
    assert w.observe(3, {"bpr": 1e28}) == []  # said once


def test_non_finite_table_is_refused():
    E = np.zeros((4, 3), np.float32)
    check_table(E, 1)
    E[2, 1] = np.inf
    with pytest.raises(TrainingDiverged, match=r"the embeddings hold NaN/Inf after epoch 5; try a smaller --lr"):
        check_table(E, 5)


def test_fit_stops_on_a_runaway_loss(monkeypatch):
    """A loss that grows by orders of magnitude (finite) stops the fit with the task named."""
    ds = synthetic_dataset(n_users=40, n_items=30, per_user=6)
    tr = Trainer(FitConfig(dataset="toy", tasks=["bpr"], epochs=5, batch_size=32, threads=1), split=make_split(ds, 0))
    import pmtnumba.training.loop as loop

    real = loop.train_step
    scale = {"epoch": 0}

    def inflated(E, tasks, batch, combiner, adam, ctx, seed, ws):
        losses, pairs = real(E, tasks, batch, combiner, adam, ctx, seed, ws)
        return losses * 10.0 ** (6 * (ctx.epoch - 1)), pairs

    monkeypatch.setattr(loop, "train_step", inflated)
    with pytest.raises(TrainingDiverged, match=r"task 'bpr' loss grew from .* \(epoch 1\) to .* \(epoch 2\)"):
        tr.fit()
    tr = Trainer(FitConfig(dataset="toy", tasks=["bpr"], epochs=3, batch_size=32, threads=1), split=make_split(ds, 0))
    tr.allow_divergence = True
    msgs = []
    tr.reporter.message = msgs.append
    tr.fit()
    assert any(m.startswith("warning: training diverges: task 'bpr'") for m in msgs)


# --- the error wrapper --------------------------------------------------------------------------

def _command(exc):
    @click.command()
    @friendly_errors
    def cmd():
        raise exc
    return cmd


@pytest.mark.parametrize("exc, line", [
    (MemoryError(), "error: out of memory; use a smaller --dim or --batch-size, or free memory"),
    (OSError(28, "No space left on device", "/x/y.npz"), "error: /x/y.npz: No space left on device (the disk is full)"),
    (PermissionError(13, "Permission denied", "/x"),
     "error: /x: Permission denied (permission denied: check the folder's permissions)"),
    (IsADirectoryError(21, "Is a directory", "/x"), "error: /x: Is a directory"),
    (PmtError("bad thing"), "error: bad thing"),
])
def test_anticipated_exceptions_are_one_line(exc, line):
    r = CliRunner().invoke(_command(exc), [])
    assert r.exit_code == 2 and r.output.strip() == line


def test_unexpected_exception_keeps_its_traceback():
    r = CliRunner().invoke(_command(RuntimeError("boom")), [])
    assert r.exit_code == 1
    assert "Traceback" in r.output and "RuntimeError: boom" in r.output
    assert r.output.strip().splitlines()[-1] == (
        "error: unexpected RuntimeError: boom. This is a bug in pmtnumba; please report it with the command you "
        "ran and the traceback above.")


@pytest.mark.parametrize("name", ["lightgcn", "ngcf"])
def test_graph_encoder_estimate_counts_its_buffers(name):
    """The estimate of a graph encoder's propagation buffers equals what the encoder allocates for a
    forward and a T-task backward (the tables and scratch it keeps), and the graph part its CSR."""
    from pmtnumba.encoders import make_encoder
    from pmtnumba.training.limits import encoder_buffers

    rng = np.random.default_rng(0)
    U, I, d, K, T = 30, 20, 8, 2, 3
    pairs = np.unique(np.stack([rng.integers(0, U, 200), rng.integers(0, I, 200)], 1), axis=0)
    enc = make_encoder(name, U, I, d, 0, pairs[:, 0], pairs[:, 1], layers=K, dropout=0.0)
    enc.forward()
    rows = np.arange(5, dtype=np.int64)
    enc.backward(rows, np.ones((T, 5, enc.out_dim), np.float32))
    held = [enc._F, *enc._bwd] + ([enc._work] if name == "lightgcn" else [enc._Es, enc._S, enc._Z])
    parts = encoder_buffers(name, U + I, d, K, T, len(pairs))
    assert parts["propagation"] == sum(a.nbytes for a in held)
    adj = enc.adj
    assert parts["graph"] == (adj.indptr.nbytes + adj.indices.nbytes + adj.data32.nbytes + adj.data64.nbytes
                              + adj.degree.nbytes)
    mf = estimate_fit_memory(U, I, d, 64, 192, T)
    assert set(estimate_fit_memory(U, I, d, 64, 192, T, encoder=name, layers=K, n_train=len(pairs))) == \
        set(mf) | {"graph", "propagation"}
