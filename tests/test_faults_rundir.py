"""Run directories as transactions under faults: an occupied --out, two writers at once, a writer
killed mid-fit, a full disk (a file-size limit), a commit interrupted half-way, stale locks and
temporaries, unusable --out paths, and the files' permissions."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import stat
import time

import numpy as np
import pytest

from pmtnumba.training import runio

from .faults import FIT, cli, cli_process, error_of, write_toy_csv

LONG = ["--epochs", "100000", "--patience", "100000", "--threads", "1", "--batch-size", "64", "--quiet"]


@pytest.fixture
def csv(tmp_path):
    return write_toy_csv(tmp_path / "toy.csv")


def fit(csv, out, *extra, epochs=2):
    return cli("fit", "--dataset", csv, "--epochs", epochs, "--out", out, *FIT, *extra)


def listing(folder) -> list[str]:
    """Every file under ``folder``, relative, sorted (what is left on disk)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _wait_for(cond, proc, timeout=120.0):
    t0 = time.time()
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"the writer ended early:\n{proc.stdout.read()}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError("timed out waiting for the writer")
        time.sleep(0.05)


def _metrics(run):
    return json.loads((run / "metrics.json").read_text())


def test_finished_run_is_refused_then_overwritten(csv, tmp_path):
    out = tmp_path / "run"
    assert fit(csv, out).exit_code == 0
    before = {n: (out / n).read_bytes() for n in listing(out)}
    r = fit(csv, out, "--seed", "1")
    assert r.exit_code == 2
    assert error_of(r) == (f"error: {out}: holds a finished run (run.json, config.json, curve.csv, checkpoint.npz, "
                           f"metrics.json, embeddings.npz); pass --overwrite to replace it, --resume to continue it, "
                           f"or choose another --out")
    assert {n: (out / n).read_bytes() for n in listing(out)} == before  # untouched
    r = fit(csv, out, "--resume", "--overwrite")
    assert r.exit_code == 2 and error_of(r) == "error: --resume and --overwrite exclude each other"
    r = fit(csv, out, "--seed", "1", "--overwrite")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "config.json").read_text())["seed"] == 1
    assert listing(out) == sorted(["run.json", "config.json", "curve.csv", "checkpoint.npz", "metrics.json",
                                   "embeddings.npz"])
    assert cli("evaluate", out).exit_code == 0


def test_unusable_out_paths(csv, tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    r = fit(csv, f)
    assert r.exit_code == 2 and error_of(r) == f"error: --out {f}: is a file, not a directory"
    r = fit(csv, f / "sub")
    assert r.exit_code == 2 and error_of(r) == f"error: --out {f / 'sub'}: {f} is a file, not a directory"
    d = tmp_path / "foreign"
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    r = fit(csv, d)
    assert r.exit_code == 2 and error_of(r) == (
        f"error: {d}: not empty and not a run directory (holds notes.txt); choose another --out "
        f"(or --overwrite to write a run beside those files)")


def test_read_only_out(csv, tmp_path, monkeypatch):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    if os.geteuid() == 0:  # root may write anyway: let os.access answer from the mode bits, as for a user
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, m, **kw: (not m & os.W_OK if os.fspath(p) == os.fspath(d)
                                                              else real_access(p, m, **kw)))
    try:
        r = fit(csv, d / "run")
        assert r.exit_code == 2 and error_of(r) == f"error: --out {d / 'run'}: {d} is not writable"
    finally:
        d.chmod(0o755)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_files_follow_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    runio._UMASK = None
    try:
        runio.write_json(tmp_path / "a.json", {"x": float("nan"), "y": [1.0, float("inf")]})
        runio.write_npz(tmp_path / "b.npz", a=np.zeros(3))
    finally:
        os.umask(old)
        runio._UMASK = None
    for n in ("a.json", "b.npz"):
        assert stat.S_IMODE((tmp_path / n).stat().st_mode) == mode
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": None, "y": [1.0, None]}  # valid JSON, no NaN


def test_concurrent_writers_one_is_refused(csv, tmp_path):
    out = tmp_path / "run"
    a = cli_process("fit", "--dataset", csv, "--out", out, *LONG)
    try:
        _wait_for(lambda: (out / ".partial" / "checkpoint.npz").is_file(), a)
        lock = json.loads((out / ".lock").read_text())
        assert lock["pid"] == a.pid and lock["host"] == socket.gethostname()
        b = cli("fit", "--dataset", csv, "--epochs", "2", "--out", out, *FIT)
        assert b.exit_code == 2
        assert error_of(b) == (f"error: {out}: in use by pid {a.pid} on host {lock['host']}, since {lock['since']} "
                               f"(lock file {out / '.lock'}); wait until it finishes or use another --out")
        for flag in ("--resume", "--overwrite"):  # no flag lets a second writer in
            assert fit(csv, out, flag).exit_code == 2
        assert a.poll() is None  # the first writer goes on
    finally:
        a.send_signal(signal.SIGKILL)
        a.wait()
    # what the killed first writer leaves: its lock (a dead pid), its staged files, and a temporary
    # if the kill hit a write (cleaned up by the next start)
    left = [n for n in listing(out) if not n.endswith(".tmp")]
    assert left == [".lock", ".partial/checkpoint.npz", ".partial/config.json", ".partial/curve.csv"]


def test_killed_writer_leaves_old_run_intact_and_resume_recovers(csv, tmp_path):
    out = tmp_path / "run"
    assert fit(csv, out).exit_code == 0  # an earlier finished run (seed 0, 2 epochs)
    old = {n: (out / n).read_bytes() for n in listing(out)}
    old_eval = cli("evaluate", out).output
    a = cli_process("fit", "--dataset", csv, "--seed", "3", "--out", out, "--overwrite", *LONG)
    _wait_for(lambda: (out / ".partial" / "checkpoint.npz").is_file(), a)
    a.send_signal(signal.SIGKILL)
    a.wait()
    left = listing(out)
    # the old run is whole and still readable; the killed run is in .partial; the lock names a dead pid
    assert {n: (out / n).read_bytes() for n in left if not n.startswith(".")} == old
    assert [n for n in left if n.startswith(".")][:1] == [".lock"]
    assert {".partial/config.json", ".partial/curve.csv", ".partial/checkpoint.npz"} <= set(left)
    assert cli("evaluate", out).output == old_eval
    with np.load(out / ".partial" / "checkpoint.npz") as z:
        k = json.loads(str(z["meta"]))["epoch"]
    for t in [n for n in left if n.endswith(".tmp")]:  # a kill during a write leaves one: make it one, known
        (out / t).unlink()
    (out / ".partial" / ".checkpoint.npz.dead.tmp").write_bytes(b"half")  # as a kill mid-write leaves
    # a plain rerun is refused: it would lose the unfinished run
    r = cli("fit", "--dataset", csv, "--seed", "3", "--out", out, *LONG[:4], *FIT)
    assert r.exit_code == 2 and "holds an unfinished run (stopped after epoch" in error_of(r)
    assert "pass --resume to continue it or --overwrite to start again" in error_of(r)
    # --resume finishes it: stale lock and temporaries recovered, result bit-identical to an uninterrupted run
    epochs = str(k + 2)
    r = cli("fit", "--dataset", csv, "--seed", "3", "--epochs", epochs, "--patience", "100000", "--out", out,
            "--resume", *FIT)
    assert r.exit_code == 0, r.output
    assert f"recovered the lock left by a run that ended without releasing it (pid {a.pid} on host" in r.output
    assert "removed 1 temporary file(s) of an interrupted write" in r.output
    assert f"resuming {out} after epoch {k}" in r.output
    ref = tmp_path / "ref"
    r = cli("fit", "--dataset", csv, "--seed", "3", "--epochs", epochs, "--patience", "100000", "--out", ref, *FIT)
    assert r.exit_code == 0, r.output
    with np.load(out / "embeddings.npz") as x, np.load(ref / "embeddings.npz") as y:
        assert np.array_equal(x["user_emb"], y["user_emb"]) and np.array_equal(x["item_emb"], y["item_emb"])
    assert _metrics(out)["test"] == _metrics(ref)["test"]
    assert listing(out) == sorted(["run.json", "config.json", "curve.csv", "checkpoint.npz", "metrics.json",
                                   "embeddings.npz"])


def _fsize_limit(n):
    def set_limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))
    return set_limit


def test_full_disk_keeps_the_old_run_and_names_the_file(csv, tmp_path):
    out = tmp_path / "run"
    assert fit(csv, out).exit_code == 0
    old = {n: (out / n).read_bytes() for n in listing(out)}
    ck = (out / "checkpoint.npz").stat().st_size
    # files up to ck // 2 bytes can be written: the configs and curves, not the checkpoint
    p = cli_process("fit", "--dataset", csv, "--seed", "5", "--epochs", "2", "--out", out, "--overwrite", *FIT,
                    preexec_fn=_fsize_limit(ck // 2))
    text = p.communicate(timeout=300)[0]
    assert p.returncode == 2, text
    assert "Traceback" not in text
    last = [ln for ln in text.splitlines() if ln.strip()][-1]
    assert last == (f"error: {out / '.partial' / 'checkpoint.npz'}: File too large (the file size limit was "
                    f"reached: disk full or ulimit -f)")
    left = listing(out)
    assert {n: (out / n).read_bytes() for n in left if not n.startswith(".")} == old
    assert not [n for n in left if n.endswith(".tmp")]  # the failed write's temporary is gone
    assert ".lock" not in left  # released on the way out
    # with room again, the same command completes
    r = fit(csv, out, "--seed", "5", "--overwrite")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "config.json").read_text())["seed"] == 5


def test_interrupted_commit_is_rolled_forward(csv, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert fit(csv, out).exit_code == 0
    real_replace = os.replace
    calls = {"n": 0}

    def failing_replace(src, dst):
        if str(src).startswith(str(out / ".partial")) and not str(src).endswith(".tmp"):
            calls["n"] += 1
            if calls["n"] == 3:  # half-way through moving the new run's files in
                raise OSError(5, "Input/output error", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(runio.os, "replace", failing_replace)
    r = fit(csv, out, "--seed", "2", "--overwrite")
    monkeypatch.setattr(runio.os, "replace", real_replace)
    assert r.exit_code == 2 and "Input/output error" in error_of(r)
    assert (out / ".partial" / "COMMIT").is_file() and not (out / "run.json").is_file()
    # a reader finishes the commit and sees the new run, whole
    r = cli("evaluate", out)
    assert r.exit_code == 0, r.output
    assert json.loads((out / "config.json").read_text())["seed"] == 2
    assert not (out / ".partial").exists()
    assert listing(out) == sorted(["run.json", "config.json", "curve.csv", "checkpoint.npz", "metrics.json",
                                   "embeddings.npz"])


def test_failed_fit_leaves_the_old_run_whole(csv, tmp_path):
    """A fit that fails after starting (here: diverges) leaves the old run as it was; the new
    config.json is in .partial, not beside the old embeddings."""
    out = tmp_path / "run"
    assert fit(csv, out).exit_code == 0
    old = {n: (out / n).read_bytes() for n in listing(out)}
    r = fit(csv, out, "--overwrite", "--lr", "1e30")
    assert r.exit_code == 2 and "training diverged" in error_of(r), r.output
    assert {n: (out / n).read_bytes() for n in listing(out) if not n.startswith(".")} == old
    assert cli("evaluate", out).exit_code == 0
