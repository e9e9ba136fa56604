"""`pmtnumba sweep` end to end on tiny data: a real distributed.LocalCluster with two workers, the
same sweep through a scheduler address (``dask scheduler`` / ``dask worker`` subprocesses), a
failing trial, resumption after the driver is killed mid-sweep, and the report."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("distributed")

from click.testing import CliRunner  # noqa: E402

from pmtnumba.sweep.study import Sweep  # noqa: E402
from pmtnumba.training.config import FitConfig  # noqa: E402
from pmtnumba_cli.main import main  # noqa: E402

from .conftest import synthetic_dataset  # noqa: E402

BIN = Path(sys.executable).parent
TS = optuna.trial.TrialState


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory):
    ds = synthetic_dataset(n_users=80, n_items=50, per_user=10)
    path = tmp_path_factory.mktemp("data") / "tiny.csv"
    with open(path, "w") as f:
        f.write("user,item,rating\n")
        for u, i, r in zip(ds.users, ds.items, ds.ratings):
            f.write(f"u{u},i{i},{int(r)}\n")
    return str(path)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """A Dask scheduler and two single-threaded workers as subprocesses on 127.0.0.1 (always stopped)."""
    d = tmp_path_factory.mktemp("dask")
    sfile = d / "scheduler.json"
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    procs = []
    try:
        procs.append(subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                       "--no-dashboard", "--scheduler-file", str(sfile)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        deadline = time.time() + 60
        while not sfile.is_file() and time.time() < deadline:
            time.sleep(0.2)
        assert sfile.is_file(), "dask scheduler did not start"
        procs.append(subprocess.Popen([str(BIN / "dask"), "worker", "--scheduler-file", str(sfile), "--nworkers", "2",
                                       "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        import json

        from distributed import Client

        addr = json.loads(sfile.read_text())["address"]
        with Client(addr, timeout="60s") as c:
            c.wait_for_workers(2, timeout=120)
        yield addr
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _args(d, csv_path, *extra):
    # ew: lr 0.05 and 0 (lr 0 is a bad configuration: that trial must fail, the sweep go on)
    return ["sweep", "run", str(d), "--dataset", csv_path, "--tasks", "bpr,rating", "--methods", "ew,pmtrec",
            "--lr", "0.05,0", "--tau", "1e-2,1e-4", "-p", "alpha=1.1", "--epochs", "4", "--patience", "3",
            "--prune-startup", "2", "--prune-warmup", "1", *extra]


def _trials(d):
    with open(Path(d) / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory, tiny_csv):
    d = tmp_path_factory.mktemp("local")
    res = CliRunner().invoke(main, _args(d, tiny_csv, "--workers", "2"))
    return d, res


def test_local_cluster_sweep(local_sweep):
    d, res = local_sweep
    assert res.exit_code == 0, res.output
    assert "[6/6]" in res.output and "left ~" in res.output
    rows = _trials(d)
    # ew: 2 lr; pmtrec: 2 lr x 2 tau (alpha has one value); every grid point once
    assert sorted((r["method"], r["param_lr"], r.get("param_tau", "")) for r in rows) == sorted(
        [("ew", "0.05", ""), ("ew", "0", "")] + [("pmtrec", lr, t) for lr in ("0.05", "0") for t in ("0.01", "0.0001")])
    sw = Sweep.open(d)
    st = sw.load_study("pmtrec")
    ok = [t for t in st.trials if t.state == TS.COMPLETE]
    assert ok
    for t in ok:
        ua = t.user_attrs
        assert ua["config"]["method"] == "pmtrec" and ua["config"]["lr"] == t.params["lr"]
        assert ua["config"]["method_options"] == {"alpha": 1.1, "tau": t.params["tau"]}
        assert ua["config"]["tasks"] == ["bpr", "rating"]
        assert ua["valid"]["recall@20"] == pytest.approx(t.value)
        assert 0 < ua["test"]["recall@20"] <= 1 and ua["seconds"] > 0
        assert ua["pmtnumba_version"] and "git_commit" in ua
        assert ua["device"] == "cpu"
        assert len(t.intermediate_values) == ua["epochs_run"]  # one report per validation
    assert {r["device"] for r in rows if r["state"] == "COMPLETE"} == {"cpu"}
    # re-running the finished sweep trains nothing and counts nothing twice
    res2 = CliRunner().invoke(main, _args(d, _cfg_dataset(d), "--workers", "2"))
    assert res2.exit_code == 0, res2.output
    assert "nothing to do" in res2.output
    assert len(_trials(d)) == len(rows)


def _cfg_dataset(d):
    return Sweep.open(d).settings["dataset"]


def test_failing_trial_is_recorded_and_the_sweep_goes_on(local_sweep):
    d, res = local_sweep
    sw = Sweep.open(d)
    for m in ("ew", "pmtrec"):
        st = sw.load_study(m)
        failed = [t for t in st.trials if t.state == TS.FAIL]
        assert failed and all(t.params["lr"] == 0 for t in failed)
        assert all("--lr must be" in t.user_attrs["error"] for t in failed)
        assert all(not t.user_attrs.get("interrupted") for t in failed)
        # the other configurations still ran to an end
        assert all(t.state in (TS.COMPLETE, TS.PRUNED) for t in st.trials if t.params["lr"] != 0)
    assert "--lr must be" in res.output


def test_changed_settings_refuse_to_resume(local_sweep, tiny_csv):
    d, _ = local_sweep
    res = CliRunner().invoke(main, _args(d, tiny_csv, "--adam", "dense"))
    assert res.exit_code == 2
    assert "other settings (base_config)" in res.output


def test_sweep_through_scheduler_address(tmp_path, tiny_csv, scheduler, local_sweep):
    res = CliRunner().invoke(main, _args(tmp_path / "s", tiny_csv, "--scheduler", scheduler))
    assert res.exit_code == 0, res.output
    assert "2 worker slot(s)" in res.output
    # same trials, same results as on the embedded cluster: training is deterministic per seed
    here = Sweep.open(tmp_path / "s")
    there = Sweep.open(local_sweep[0])
    for m in ("ew", "pmtrec"):
        a = {tuple(sorted(t.params.items())): t for t in here.load_study(m).trials if t.state == TS.COMPLETE}
        b = {tuple(sorted(t.params.items())): t for t in there.load_study(m).trials if t.state == TS.COMPLETE}
        for k in set(a) & set(b):
            assert a[k].user_attrs["test"] == b[k].user_attrs["test"]
        assert set(a) & set(b)


def test_resume_after_killing_the_driver(tmp_path, tiny_csv, scheduler):
    d = tmp_path / "r"
    # 3 pmtrec configurations, no pruning, each long enough to be caught running: on this data an
    # epoch takes ~2 ms warm, so a 3,000-epoch trial runs for seconds even on an idle machine (with
    # 25 epochs an idle CI machine finished the whole sweep between two polls); validating every 300
    # epochs keeps the resumed trials from spending the test's time on evaluation
    args = ["sweep", "run", str(d), "--dataset", tiny_csv, "--tasks", "bpr,rating", "--methods", "pmtrec",
            "--lr", "0.05,0.02,0.01", "--tau", "1e-2", "--epochs", "3000", "--patience", "3000", "--eval-every", "300", "--pruner", "none",
            "--scheduler", scheduler, "--quiet"]
    drv = subprocess.Popen([sys.executable, "-m", "pmtnumba_cli.main", *args], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        running = complete = 0
        while time.time() < deadline and drv.poll() is None:
            time.sleep(0.3)
            if not (d / "study.journal").is_file():
                continue
            sw = Sweep.open(d)
            st = sw.load_study("pmtrec")
            if st is None:
                continue
            states = [t.state for t in st.get_trials(deepcopy=False)]
            running, complete = states.count(TS.RUNNING), states.count(TS.COMPLETE)
            if complete >= 1 and running >= 1:
                break
        assert drv.poll() is None, f"driver ended before it could be killed: {drv.stderr.read().decode()[-2000:]}"
        assert complete >= 1 and running >= 1
        drv.send_signal(signal.SIGKILL)
    finally:
        drv.kill()
        drv.wait()
    st = Sweep.open(d).load_study("pmtrec")
    before = {t.number: t.state for t in st.trials}
    n_running = sum(s == TS.RUNNING for s in before.values())
    assert n_running >= 1
    # the same command again continues the study
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    st = Sweep.open(d).load_study("pmtrec")
    trials = st.trials
    # finished trials kept as they were
    for t in trials:
        if before.get(t.number) == TS.COMPLETE:
            assert t.state == TS.COMPLETE
    interrupted = [t for t in trials if t.user_attrs.get("interrupted")]
    assert len(interrupted) == n_running and all(t.state == TS.FAIL for t in interrupted)
    assert {t.number for t in interrupted} == {n for n, s in before.items() if s == TS.RUNNING}
    # every grid point complete exactly once: nothing lost, nothing counted twice
    done = [tuple(sorted(t.params.items())) for t in trials if t.state == TS.COMPLETE]
    assert sorted(done) == sorted(set(done)) and len(done) == 3
    assert len(Sweep.counted(trials)) == 3


def test_report(local_sweep, scheduler):
    d, _ = local_sweep
    res = CliRunner().invoke(main, ["sweep", "report", str(d), "--seeds", "0,1", "--retrain-study-seed",
                                    "--scheduler", scheduler])
    assert res.exit_code == 0, res.output
    rep = Path(d) / "report"
    with open(rep / "runs.csv", newline="") as f:
        runs = list(csv.DictReader(f))
    assert {(r["method"], r["seed"]) for r in runs} == {(m, s) for m in ("ew", "pmtrec", "pmtrec-nofocus",
                                                                         "pmtrec-nobalance") for s in ("0", "1")}
    # seed 0 is the study's seed: the re-run reproduces the best trial's test metric exactly
    sw = Sweep.open(d)
    for m in ("ew", "pmtrec"):
        st = sw.load_study(m)
        best = st.best_trial
        r0 = next(r for r in runs if r["method"] == m and r["seed"] == "0")
        assert float(r0["recall@20"]) == pytest.approx(best.user_attrs["test"]["recall@20"], abs=1e-12)
    with open(rep / "table2.csv", newline="") as f:
        table = {r["method"]: r for r in csv.DictReader(f)}
    assert set(table) == {"ew", "pmtrec"}
    assert table["ew"]["vs"] == "pmtrec" and table["pmtrec"]["vs"] == "ew"
    assert "p_recall@20" in table["ew"]
    assert (rep / "ablation.csv").is_file()
    with open(rep / "sensitivity.csv", newline="") as f:
        sens = list(csv.DictReader(f))
    assert sorted(float(r["value"]) for r in sens if r["param"] == "tau") == [1e-4, 1e-2]
    assert "PMTRec" in res.output
    # again, taking seed 0 from the study: the same table, nothing trained (seed 1 is resumed)
    def metrics_table():
        with open(rep / "table2.csv", newline="") as f:
            return [{k: float(v) for k, v in r.items() if k.startswith(("recall@", "ndcg@", "hr@", "p_"))}
                    for r in csv.DictReader(f)]

    table_before = metrics_table()
    res = CliRunner().invoke(main, ["sweep", "report", str(d), "--seeds", "0,1", "--scheduler", scheduler])
    assert res.exit_code == 0, res.output
    with open(rep / "runs.csv", newline="") as f:
        runs2 = list(csv.DictReader(f))
    for m in ("ew", "pmtrec"):
        r0 = next(r for r in runs2 if r["method"] == m and r["seed"] == "0")
        assert r0["split_sha1"] == f"study trial {sw.load_study(m).best_trial.number}"
    # (runs.csv keeps fewer digits than the study's JSON: equal to rounding)
    after = metrics_table()
    assert len(after) == len(table_before)
    for a, b in zip(after, table_before):
        assert a == pytest.approx(b, rel=1e-6, nan_ok=True)


def test_report_reuses_runs_of_earlier_reports(local_sweep, scheduler, tmp_path):
    """A report takes each method's seed runs from any directory an earlier report left under
    seeds/ (another layout, or a comparison of other methods) when its options and base
    configuration are the same, and trains again only what differs."""
    import json
    import shutil

    d = tmp_path / "sweep"
    shutil.copytree(local_sweep[0], d, ignore=shutil.ignore_patterns("report", ".lock"))
    args = ["sweep", "report", str(d), "--seeds", "0,1", "--no-sensitivity", "--scheduler", scheduler]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    # one task per (method, seed): ew, pmtrec and the two ablations on seed 1, the ablations on
    # seed 0 (the searched methods' seed 0 is the study's best trial)
    assert "(6 training run(s))" in res.output
    rep = d / "report"
    table = (rep / "table2.csv").read_text()
    dirs = sorted(p.name for p in (rep / "seeds").iterdir())
    assert [n.rsplit("-", 1)[0] for n in dirs] == ["ew", "pmtrec", "pmtrec-nobalance", "pmtrec-nofocus"]
    # as if earlier reports had written them under other names
    for i, n in enumerate(dirs):
        (rep / "seeds" / n).rename(rep / "seeds" / f"earlier-{i}")
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "(0 training run(s); 6 run(s) taken from earlier reports)" in res.output
    assert (rep / "table2.csv").read_text() == table
    assert sorted(p.name for p in (rep / "seeds").iterdir()) == [f"earlier-{i}" for i in range(4)]  # nothing trained
    # the same method with other options is not the same run: EW seed 1 trains again
    cfg_path = rep / "seeds" / f"earlier-{dirs.index(next(n for n in dirs if n.startswith('ew-')))}" / "seed1" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["method_options"]["ew"]["lr"] = 0.123
    cfg_path.write_text(json.dumps(cfg))
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "(1 training run(s); 5 run(s) taken from earlier reports)" in res.output
    ew_dir = next(n for n in dirs if n.startswith("ew-"))
    with open(rep / "seeds" / ew_dir / "seed1" / "runs.csv", newline="") as f:
        assert [r["method"] for r in csv.DictReader(f)] == ["ew"]
    assert (rep / "table2.csv").read_text() == table  # the retrained run is the same run


def test_report_sensitivity_values_from_the_command_line(local_sweep, scheduler, tmp_path):
    """Figure 5 without a search over alpha: `sweep report --alpha` trains PMTRec's best
    configuration at the alpha values the study lacks (on the study's seed) and takes the one it
    has from the study; `--tau` with one value leaves tau out."""
    import shutil

    d = tmp_path / "sweep"
    shutil.copytree(local_sweep[0], d, ignore=shutil.ignore_patterns("report", ".lock"))
    res = CliRunner().invoke(main, ["sweep", "report", str(d), "--seeds", "0", "--no-ablation", "--alpha",
                                    "1.2,1.1,1.0", "--tau", "0.01", "--scheduler", scheduler])
    assert res.exit_code == 0, res.output
    assert "2 sensitivity run(s)" in res.output
    with open(d / "report" / "sensitivity.csv", newline="") as f:
        sens = list(csv.DictReader(f))
    assert [r["param"] for r in sens] == ["alpha"] * 3
    src = {float(r["value"]): r["source"] for r in sens}
    best = Sweep.open(d).load_study("pmtrec").best_trial
    assert src[1.1] == f"study trial {best.number}"
    assert src[1.0] == src[1.2] == "trained (seed 0)"
    for r in sens:
        assert 0 <= float(r["valid_recall@20"]) <= 1 and 0 <= float(r["test_recall@20"]) <= 1
    bad = CliRunner().invoke(main, ["sweep", "report", str(d), "--alpha", "0.9", "--scheduler", scheduler])
    assert bad.exit_code == 2 and "--alpha: 0.9 is not a number >= 1" in bad.output


def test_figure5_points_at_alpha_1_and_tau_1_are_the_ablation_runs(local_sweep, scheduler, tmp_path):
    """PMTRec with alpha 1 is PMTRec-NoFocus, with tau 1 PMTRec-NoBalance: the report takes those
    Figure 5 points from the ablations' runs on the study's seed (trained once, not twice), and
    training the point itself gives the same run to the last digit."""
    import shutil

    from pmtnumba.sweep.trial import run_trial

    d = tmp_path / "sweep"
    shutil.copytree(local_sweep[0], d, ignore=shutil.ignore_patterns("report", ".lock"))
    res = CliRunner().invoke(main, ["sweep", "report", str(d), "--seeds", "0", "--alpha", "1.0,1.1",
                                    "--tau", "1,0.5", "--scheduler", scheduler])
    assert res.exit_code == 0, res.output
    assert "(2 training run(s)), 1 sensitivity run(s)" in res.output  # the two ablations; tau 0.5
    with open(d / "report" / "sensitivity.csv", newline="") as f:
        sens = {(r["param"], float(r["value"])): r for r in csv.DictReader(f)}
    with open(d / "report" / "runs.csv", newline="") as f:
        runs = {r["method"]: r for r in csv.DictReader(f)}
    sw = Sweep.open(d)
    for point, ab in ((("alpha", 1.0), "pmtrec-nofocus"), (("tau", 1.0), "pmtrec-nobalance")):
        row = sens[point]
        assert row["source"] == f"{ab} run (seed 0)"
        assert row["test_recall@20"] == runs[ab]["recall@20"] and row["valid_recall@20"] == runs[ab]["valid_recall@20"]
        params = dict(sw.load_study("pmtrec").best_params, **{point[0]: point[1]})
        spec = {"study": None, "storage": None, "trial_id": None, "number": -1, "method": "pmtrec", "params": params,
                "base_config": dict(sw.settings["base_config"], seed=0), "pruner": {"name": "none"}}
        trained = run_trial(spec)
        assert trained["test"]["recall@20"] == pytest.approx(float(runs[ab]["recall@20"]), rel=1e-12)
    assert sens[("tau", 0.5)]["source"] == "trained (seed 0)"


def test_earlier_runs_of_bpr_only_are_not_taken_for_ew():
    """BPR only trains EW on tasks [bpr]; with the data set's default task list (tasks None) and
    the same lr/wd, EW's multi-task run must not be taken from BPR only's directory (nor the
    reverse): tasks None resolves to the data set's default list, by the name the run recorded."""
    import dataclasses

    from pmtnumba.sweep.report import _earlier_row

    base = FitConfig(dataset="videogame", threads=1)  # tasks None: bpr, coview, cobuy
    opts = {"lr": 0.01, "wd": 1e-5}

    def seed_dir(tasks, value):
        cfg = {"dataset_stats": {"name": "videogame"}, "methods": ["ew"], "method_options": {"ew": opts},
               "base_config": dataclasses.replace(base, tasks=tasks).to_dict()}
        return cfg, [{"method": "ew", "seed": "1", "status": "ok", "recall@20": value}]

    bpr_only, multi = seed_dir(["bpr"], "0.1"), seed_dir(["bpr", "coview", "cobuy"], "0.2")
    assert _earlier_row([bpr_only], "ew", 1, opts, base) is None
    assert _earlier_row([bpr_only, multi], "ew", 1, opts, base)["recall@20"] == "0.2"
    assert _earlier_row([multi, bpr_only], "ew", 1, opts, dataclasses.replace(base, tasks=["bpr"]))["recall@20"] == "0.1"
    assert _earlier_row([multi], "ew", 1, opts, dataclasses.replace(base, tasks=["bpr"])) is None
    assert _earlier_row([multi], "ew", 2, opts, base) is None  # another seed
    assert _earlier_row([multi], "ew", 1, {"lr": 0.01, "wd": 1e-6}, base) is None  # other options


def test_tpe_budget_counts_distinct_configurations(tmp_path, tiny_csv, scheduler):
    """TPE over a 2-point space with a budget of 2: repeated proposals are answered from the earlier
    trial and not counted, so both points get trained exactly once."""
    d = tmp_path / "t"
    res = CliRunner().invoke(main, ["sweep", "run", str(d), "--dataset", tiny_csv, "--tasks", "bpr", "--methods",
                                    "bpr-only", "--lr", "0.05,0.02", "--trials", "2", "--epochs", "2",
                                    "--pruner", "none", "--scheduler", scheduler])
    assert res.exit_code == 0, res.output
    trials = Sweep.open(d).load_study("bpr-only").trials
    trained = [t for t in trials if "duplicate_of" not in t.user_attrs]
    assert sorted(t.params["lr"] for t in trained) == [0.02, 0.05]
    assert len(Sweep.counted(trials)) == 2
    for t in trials:
        if "duplicate_of" in t.user_attrs:
            assert t.value == trials[t.user_attrs["duplicate_of"]].value


def test_moved_sweep_directory_keeps_its_study(local_sweep, tmp_path):
    """The default journal is recorded as ``default`` (the directory's own file), so a sweep
    directory that is moved, copied or committed and cloned continues its study; one recorded
    before that with the absolute path of a directory that is gone finds its own journal too."""
    import json
    import shutil

    d, _ = local_sweep
    assert json.loads((Path(d) / "sweep.json").read_text())["storage"] == "default"
    moved = tmp_path / "moved"
    shutil.copytree(d, moved)
    settings = json.loads((moved / "sweep.json").read_text())
    settings["storage"] = f"journal:{tmp_path / 'gone' / 'study.journal'}"  # as written before the fix
    (moved / "sweep.json").write_text(json.dumps(settings))
    original = (Path(d) / "study.journal").read_bytes()
    res = CliRunner().invoke(main, _args(moved, _cfg_dataset(d), "--workers", "1"))
    assert res.exit_code == 0, res.output
    assert "nothing to do" in res.output
    assert len(_trials(moved)) == len(_trials(d))
    assert json.loads((moved / "sweep.json").read_text())["storage"] == "default"
    assert not (tmp_path / "gone").exists()
    assert (Path(d) / "study.journal").read_bytes() == original


_TOP_LEVEL_NUMBA = '''
import numba  # imported at the top of __main__, as the pmtnumba console script's imports do
from pmtnumba.sweep.executor import open_client


def job():
    import numba
    numba.set_num_threads(1)  # the trial does this: Numba's threads start
    f = numba.njit(lambda x: x + 1)  # a compilation re-reads Numba's configuration
    return f(1), numba.config.NUMBA_NUM_THREADS


if __name__ == "__main__":
    with open_client(None, 1) as c:
        print("result", c.submit(job).result())
'''


def test_embedded_workers_start_with_one_numba_thread(tmp_path):
    """A worker spawned from a driver whose ``__main__`` imports Numba must have NUMBA_NUM_THREADS
    from its start: set later, Numba's next compilation failed with "Cannot set NUMBA_NUM_THREADS
    to a different value once the threads have been launched", so every trial of a sweep run from
    the console script failed on a cold kernel cache."""
    script = tmp_path / "driver.py"
    script.write_text(_TOP_LEVEL_NUMBA)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "result (2, 1)" in out.stdout


def test_sweep_with_a_graph_encoder(tmp_path, tiny_csv, scheduler):
    """--encoder/--layers reach every trial: the trial's test metrics are those of the same
    LightGCN configuration fitted directly."""
    from pmtnumba.training.loop import Trainer

    d = tmp_path / "g"
    res = CliRunner().invoke(main, ["sweep", "run", str(d), "--dataset", tiny_csv, "--tasks", "bpr", "--methods",
                                    "bpr-only", "--lr", "0.05", "--epochs", "2", "--encoder", "lightgcn",
                                    "--layers", "1", "--pruner", "none", "--scheduler", scheduler])
    assert res.exit_code == 0, res.output
    (t,) = Sweep.open(d).load_study("bpr-only").trials
    conf = dict(t.user_attrs["config"])
    assert (conf["encoder"], conf["layers"]) == ("lightgcn", 1)
    conf["ks"] = tuple(conf["ks"])
    direct = Trainer(FitConfig(**conf)).fit()
    assert direct.test["recall@20"] == t.user_attrs["test"]["recall@20"]


def test_sweep_device_reaches_every_trial(tmp_path, tiny_csv, scheduler):
    """--device is part of every trial's configuration: on workers without a GPU (these), a
    --device cuda trial fails with the one-line device error, recorded, and the sweep finishes;
    with the embedded cluster the driver checks the device before anything starts."""
    d = tmp_path / "dev"
    args = ["sweep", "run", str(d), "--dataset", tiny_csv, "--tasks", "bpr", "--methods", "bpr-only", "--lr", "0.05",
            "--epochs", "2", "--pruner", "none", "--device", "cuda"]
    res = CliRunner().invoke(main, args + ["--scheduler", scheduler])
    assert res.exit_code == 0, res.output
    (t,) = Sweep.open(d).load_study("bpr-only").trials
    assert t.state == TS.FAIL and t.user_attrs["config"]["device"] == "cuda"
    assert "--device cuda" in t.user_attrs["error"] and "\n" not in t.user_attrs["error"]
    local = CliRunner().invoke(main, args[:2] + [str(tmp_path / "dev2")] + args[3:] + ["--workers", "1"])
    assert local.exit_code != 0 and "--device cuda" in local.output and "Traceback" not in local.output
    assert not (tmp_path / "dev2" / "trials.csv").exists()
    # a sweep may go on on another device (the trial failed, and a failed trial counts: nothing to do)
    cpu = CliRunner().invoke(main, args[:-1] + ["cpu", "--scheduler", scheduler])
    assert cpu.exit_code == 0 and "nothing to do" in cpu.output, cpu.output
    assert Sweep.open(d).settings["base_config"]["device"] == "cpu"
    other = CliRunner().invoke(main, args[:-1] + ["cpu", "--epochs", "3", "--scheduler", scheduler])
    assert other.exit_code == 2 and "other settings (base_config)" in other.output


def test_report_device_reaches_its_runs(local_sweep, scheduler, tmp_path):
    """`sweep report --device cuda` trains its seed runs on the GPU: on workers without one (these)
    each such run fails with the device error, said in one line, and the study's seed stays."""
    import shutil

    d = tmp_path / "sweep"
    shutil.copytree(local_sweep[0], d, ignore=shutil.ignore_patterns("report", ".lock"))
    res = CliRunner().invoke(main, ["sweep", "report", str(d), "--seeds", "0,1", "--no-sensitivity", "--no-ablation",
                                    "--device", "cuda", "--scheduler", scheduler])
    assert "(2 training run(s))" in res.output, res.output
    assert res.output.count("--device cuda") == 2 and "Traceback" not in res.output


def test_earlier_runs_on_another_device_are_taken():
    """A seed run trained on the CPU stands for the same run on the GPU (`sweep report --device`),
    as the study's trials do; any other difference of configuration still does not match."""
    import dataclasses

    from pmtnumba.sweep.report import _earlier_row

    base = FitConfig(dataset="videogame", tasks=["bpr"], threads=1, device="cpu")
    opts = {"lr": 0.01, "wd": 1e-5}
    cfg = {"dataset_stats": {"name": "videogame"}, "methods": ["ew"], "method_options": {"ew": opts},
           "base_config": base.to_dict()}
    ran = [cfg, [{"method": "ew", "seed": "1", "status": "ok", "recall@20": "0.1"}]]
    assert _earlier_row([ran], "ew", 1, opts, dataclasses.replace(base, device="cuda"))["recall@20"] == "0.1"
    assert _earlier_row([ran], "ew", 1, opts, dataclasses.replace(base, device="auto"))["recall@20"] == "0.1"
    assert _earlier_row([ran], "ew", 1, opts, dataclasses.replace(base, device="cuda", dim=16)) is None
