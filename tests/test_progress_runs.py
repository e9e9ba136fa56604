"""Runs done / total and the time left (pmtnumba/progress.py) in `compare` and the sweep commands."""

import io
import json
import re

import pandas as pd
from click.testing import CliRunner

from pmtnumba.progress import LiveLine, RunProgress, format_seconds
from pmtnumba.training import FitConfig
from pmtnumba.training import compare as cmp
from pmtnumba_cli.main import main

from .conftest import synthetic_dataset
from .test_cli_e2e import write_csv


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_estimate_from_measured_seconds_per_kind():
    clock = Clock()
    p = RunProgress(6, clock=clock)
    assert p.eta() is None and "no run finished yet" in p.line()
    clock.t += 10
    p.finished("ew", 10.0)
    clock.t += 30
    p.finished("nash-mtl", 30.0)
    # left: ew, nash-mtl, and a method not seen yet (the mean of all finished runs, 20 s)
    assert p.eta(["ew", "nash-mtl", "pcgrad", "ew"]) == 10 + 30 + 20 + 10
    assert p.line(["ew", "nash-mtl", "pcgrad", "ew"]) == "2/6 runs done | 40s elapsed | ~1m10s left"
    for _ in range(4):
        p.finished("ew", 1.0)
    assert p.eta([]) == 0.0 and p.line().endswith("| done")


def test_parallel_estimate_is_the_throughput_and_resumed_runs_count_as_done_only():
    clock = Clock()
    p = RunProgress(10, done=4, parallel=True, unit="trials", clock=clock)
    assert p.eta() is None
    clock.t += 60
    p.finished()
    p.finished()  # 2 finished in 60 s (on several workers): 30 s each, 4 left
    assert p.eta() == 120.0 and p.line() == "6/10 trials done | 1m00s elapsed | ~2m00s left"
    assert format_seconds(3 * 3600 + 7 * 60 + 5) == "3h07m" and format_seconds(None) == "?"


def test_live_line_redraws_on_a_terminal_and_prints_plain_lines_elsewhere():
    out = io.StringIO()
    with LiveLine(lambda: "3/9 runs done", stream=out, enabled=True, interval=3600) as live:
        live.echo("ew seed 0: done")
    text = out.getvalue()
    assert text.startswith("\r\x1b[K3/9 runs done") and "\r\x1b[Kew seed 0: done\n\r\x1b[K3/9 runs done" in text
    assert text.endswith("\r\x1b[K")  # the live line is cleared at the end
    plain = io.StringIO()
    with LiveLine(lambda: "3/9 runs done", stream=plain) as live:  # StringIO is not a terminal
        live.echo("ew seed 0: done")
    assert plain.getvalue() == "ew seed 0: done\n"


def test_compare_reports_progress_and_trains_bpr_only_on_the_same_split(tmp_path):
    ds = synthetic_dataset(n_users=50, n_items=30, per_user=6)
    events, messages = [], []

    class Rep(cmp.Reporter):
        def message(self, text):
            messages.append(text)

    base = FitConfig(tasks=["bpr", "cobuy"], epochs=1, batch_size=64, dim=8, threads=1, record_weights=False)
    cmp.run_compare(ds, ["bpr-only", "ew"], [0, 1], base, out_dir=tmp_path, reporter_factory=lambda m, s, t: Rep(),
                    progress=events.append)
    assert [(e["event"], e["method"], e["seed"], e["done"]) for e in events] == [
        ("start", "bpr-only", 0, 0), ("end", "bpr-only", 0, 1), ("start", "ew", 0, 1), ("end", "ew", 0, 2),
        ("start", "bpr-only", 1, 2), ("end", "bpr-only", 1, 3), ("start", "ew", 1, 3), ("end", "ew", 1, 4)]
    assert events[0]["eta_seconds"] is None and all(e["eta_seconds"] is not None for e in events[1:])
    assert events[-1]["eta_seconds"] == 0.0
    done_lines = [m for m in messages if re.fullmatch(r"\d/4 runs done \| \S+ elapsed \| (~\S+ left|done)", m)]
    assert len(done_lines) == 4  # one plain line per finished run
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert set(runs["method"]) == {"bpr-only", "ew"}
    assert runs.groupby("seed")["split_sha1"].nunique().eq(1).all()  # the same split per seed
    assert json.loads((tmp_path / "bpr-only" / "seed0" / "config.json").read_text())["tasks"] == ["bpr"]
    assert json.loads((tmp_path / "ew" / "seed0" / "config.json").read_text())["tasks"] == ["bpr", "cobuy"]
    assert "BPR only" in (tmp_path / "summary.md").read_text()


def test_compare_defaults_to_fits_tuned_pairs_per_method():
    opts = {"pmtrec": {"wd": 3e-5}}
    lr, wd = cmp.default_lr_wd("office", ["bpr-only", "ew", "pmtrec"], None, opts)
    assert (lr, wd) == (5e-3, 1e-4)  # office, multi-task (config.RECOMMENDED)
    assert opts == {"bpr-only": {"lr": 1e-2}, "pmtrec": {"wd": 3e-5}}  # BPR alone: 0.01 / 1e-4
    opts = {}
    assert cmp.default_lr_wd("office", ["bpr-only", "ew"], None, opts, lr=0.02) == (0.02, 1e-4)
    assert opts == {}  # an explicit --lr is every method's
    assert cmp.default_lr_wd("my.csv", ["ew"], ["bpr", "rating"], {}) == (1e-2, 1e-4)


def test_cli_compare_prints_a_line_per_finished_run_off_a_terminal(tmp_path):
    csv = tmp_path / "toy.csv"
    write_csv(csv, synthetic_dataset(n_users=40, n_items=30, per_user=6))
    r = CliRunner().invoke(main, ["compare", "--dataset", str(csv), "--methods", "bpr-only,ew", "--seeds", "0",
                                  "--tasks", "bpr,rating", "--epochs", "1", "--batch-size", "64", "--dim", "8",
                                  "--threads", "1", "--out", str(tmp_path / "cmp")])
    assert r.exit_code == 0, r.output
    assert re.search(r"^\[1/2\] bpr-only seed 0 \| 0/2 runs done \| \S+ elapsed \| time left \? \(no run finished yet\)$",
                     r.output, re.M), r.output
    assert re.search(r"^1/2 runs done \| \S+ elapsed \| ~\S+ left$", r.output, re.M)
    assert re.search(r"^2/2 runs done \| \S+ elapsed \| done$", r.output, re.M)
    assert "BPR only" in r.output


def test_sweep_live_status_counts_down_from_the_last_estimate():
    from pmtnumba_cli.sweep_cmd import _Status

    clock = Clock()
    st = _Status("trials")
    st.clock, st.t0 = clock, clock.t
    assert st.text() == "starting | 0s elapsed | ~? left"
    clock.t += 30
    st.update(3, 10, 70.0)  # estimated when the third trial finished
    clock.t += 20
    assert st.text() == "3/10 trials done | 50s elapsed | ~50s left"
    clock.t += 100
    assert st.text().endswith("~0s left")  # never negative


def test_compare_progress_bar_on_a_terminal_carries_the_runs_done_and_time_left():
    from pmtnumba_cli.compare_cmd import _CompareReporter

    rep = _CompareReporter(bar=True)
    rep.status = "4/9 ~1m10s left"
    rep.epoch_start(3, 5)
    try:
        assert rep.bar.label == "[4/9 ~1m10s left] epoch   3"
    finally:
        rep.bar.__exit__(None, None, None)
