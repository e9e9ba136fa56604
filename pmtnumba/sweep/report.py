"""``pmtnumba sweep report``: what a sweep found, re-run on several seeds.

1. **Best configuration per method** on validation (the study's best COMPLETE trial): ``best.csv``.
2. **Seed re-runs**: those configurations trained again on ``seeds`` through
   :func:`pmtnumba.training.compare.run_compare` (the split follows the seed, so every method of
   a seed trains on the same split), one Dask task per (method, seed), each in its own resumable
   directory ``seeds/<method>-<hash of its configuration>/seed<s>``. BPR only (``bpr-only``)
   trains the main task alone (EW on tasks ``bpr``). On the study's own seed the best trial
   already is that run (training is deterministic per seed), so its metrics are taken from the
   study unless ``reuse_study_seed=False`` (``split_sha1`` then names the trial). A method's seed
   run that an earlier report already trained (same options, same base configuration, in any
   ``seeds/`` directory) is taken from there, so a report of a sweep that gained methods trains
   only those.
3. ``table2.csv`` / ``table2.md``: mean ± std over seeds of R@K and N@K per method, and a paired
   t-test (``scipy.stats.ttest_rel`` over seeds) of each method against the best *other* method
   by mean test Recall@20 (and NDCG@20).
4. ``ablation.csv`` / ``.md`` (the paper's Figure 4): PMTRec, PMTRec without task focusing and
   without magnitude balancing. An ablation that was not searched itself runs with PMTRec's best
   configuration minus the part it removes (``config_source`` says which), unless ``ablation``
   is off.
5. ``sensitivity.csv`` (Figure 5): validation and test Recall@20 of PMTRec with alpha, then tau,
   set to each value of the search space (or of ``sensitivity_values``: Figure 5 without a search
   over alpha x tau) and the other parameters at their best; points the study already trained to
   the end are taken from it, those equal to an ablation's configuration (alpha 1, tau 1) from
   the ablation's run on the study's seed, the others trained on the study's seed.
6. With matplotlib (the ``plot`` extra): ``ablation.png`` and ``sensitivity.png``.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path

import numpy as np

from ..errors import PmtError
from ..progress import RunProgress
from ..training import runio
from ._deps import optuna
from .space import BPR_ONLY
from .study import Sweep, _key, base_config_of

ABLATIONS = ("pmtrec", "pmtrec-nofocus", "pmtrec-nobalance")
_REMOVED = {"pmtrec-nofocus": "alpha", "pmtrec-nobalance": "tau"}
TEST_KEYS = ("recall@20", "ndcg@20")


def best_configs(sweep: Sweep, ablation: bool = True) -> dict[str, dict]:
    """``{method: {"number", "value", "params", "test", "n_complete", "n_counted"}}`` for methods
    with at least one complete trial."""
    op = optuna()
    out = {}
    for m in sweep.methods():
        st = sweep.load_study(m)
        if st is None:
            continue
        trials = st.get_trials(deepcopy=False)
        comp = [t for t in trials if t.state == op.trial.TrialState.COMPLETE]
        if not comp:
            continue
        b = max(comp, key=lambda t: (t.value, -t.number))
        out[m] = {"number": b.number, "value": b.value, "params": dict(b.params), "test": b.user_attrs.get("test", {}),
                  "n_complete": len(comp), "n_counted": len(Sweep.counted(trials)), "config_source": "search"}
    if ablation and "pmtrec" in out:  # ablations not searched: PMTRec's best without the removed part
        for m, removed in _REMOVED.items():
            if m not in out:
                out[m] = {"number": None, "value": math.nan,
                          "params": {k: v for k, v in out["pmtrec"]["params"].items() if k != removed},
                          "test": {}, "n_complete": 0, "n_counted": 0, "config_source": "pmtrec best"}
    return out


def _options(params: dict) -> dict:
    """run_compare's per-method options: combiner options plus the lr/wd overrides."""
    return {k: v for k, v in params.items()}


def _compare_task(dataset, methods, seed, base_dict, method_options, out_dir):
    """One Dask task: run_compare of ``methods`` on ``seed`` (resumable in ``out_dir``)."""
    import numba

    from ..training.compare import run_compare
    from ..training.config import FitConfig

    numba.set_num_threads(1)
    d = dict(base_dict)
    d["ks"] = tuple(d["ks"])
    run_compare(dataset, methods, [seed], FitConfig(**d), method_options=method_options, out_dir=out_dir,
                save_runs=False, resume=True)
    return str(out_dir)


def _runs(best: dict, base) -> list[tuple[str, str, dict, object]]:
    """(method as reported, combiner, its options, base config) per method: BPR only trains the
    main task alone (tasks=[bpr], EW); the others the sweep's task set."""
    import dataclasses

    bpr_base = dataclasses.replace(base, tasks=["bpr"])
    return [(m, "ew", _options(b["params"]), bpr_base) if m == BPR_ONLY else (m, m, _options(b["params"]), base)
            for m, b in best.items()]


def paired_tests(runs: list[dict], methods: list[str], keys=TEST_KEYS) -> dict[str, dict]:
    """Per method: the best other method by mean test ``keys[0]`` and the paired t-test p-values
    (over the seeds both have) for each key; NaN with fewer than two common seeds."""
    from scipy import stats

    by = {m: {int(r["seed"]): r for r in runs if r["method"] == m and r.get("status", "ok") == "ok"} for m in methods}
    means = {m: np.mean([float(r[keys[0]]) for r in by[m].values()]) if by[m] else -np.inf for m in methods}
    out = {}
    for m in methods:
        others = [o for o in methods if o != m and by[o]]
        if not others or not by[m]:
            out[m] = {"vs": "", **{f"p_{k}": math.nan for k in keys}}
            continue
        best_other = max(others, key=lambda o: means[o])
        seeds = sorted(set(by[m]) & set(by[best_other]))
        row = {"vs": best_other}
        for k in keys:
            a = np.array([float(by[m][s][k]) for s in seeds])
            b = np.array([float(by[best_other][s][k]) for s in seeds])
            if len(seeds) < 2 or np.allclose(a, b):
                row[f"p_{k}"] = math.nan
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    row[f"p_{k}"] = float(stats.ttest_rel(a, b).pvalue)
        out[m] = row
    return out


def _table(runs, methods, ks, caption, path_stem: Path, tests: bool = True) -> list[dict]:
    from ..training.compare import format_markdown, summarize

    present = [m for m in methods if any(r["method"] == m for r in runs)]
    summary = summarize(runs, present, ks)
    if tests:
        pt = paired_tests(runs, present)
        for row in summary:
            row.update(pt[row["method"]])
    runio.write_csv(path_stem.with_suffix(".csv"), summary)
    md = format_markdown(summary, caption)
    if tests and max((row["n_seeds"] for row in summary), default=0) < 2:
        md += "\nNo paired t-test: it needs at least two seeds per method (one here).\n"
    elif tests:
        md += "\nPaired t-test over seeds (scipy.stats.ttest_rel) of each method against the best other method " \
              "by mean test R@20:\n\n| Method | vs | p (R@20) | p (N@20) |\n|---|---|:-:|:-:|\n"
        for row in summary:
            md += f"| {row['method']} | {row['vs']} | {row['p_recall@20']:.3g} | {row['p_ndcg@20']:.3g} |\n"
    runio._atomic_write_bytes(path_stem.with_suffix(".md"), md.encode())
    return summary


def _row_from_trial(sweep: Sweep, method: str, b: dict, seed: int) -> dict | None:
    """A runs.csv row from the study's best trial of ``method`` (None if it has no test metrics)."""
    if b.get("config_source") != "search" or b.get("number") is None or not b.get("test"):
        return None
    t = sweep.load_study(method).trials[b["number"]]
    ua = t.user_attrs
    monitor = sweep.settings["base_config"].get("monitor", "recall@20")
    return {"method": method, "seed": seed, "status": "ok", "best_epoch": ua.get("best_epoch"),
            "epochs_run": ua.get("epochs_run"), "stopped_early": ua.get("stopped_early"),
            "train_seconds": ua.get("train_seconds"), "seconds_per_epoch": math.nan,
            "split_sha1": f"study trial {t.number}", f"valid_{monitor}": t.value, **ua["test"]}


def _ablation_points(best: dict) -> dict[str, str]:
    """``{params as JSON: ablation}`` for the ablations in ``best``: PMTRec with alpha 1 *is*
    PMTRec-NoFocus and with tau 1 PMTRec-NoBalance (:data:`pmtnumba.combiners.pmtrec.FIXED`; the
    same run, bit for bit), so a Figure 5 point at such a value is taken from the ablation's run
    on the study's seed instead of being trained twice."""
    from ..combiners.pmtrec import FIXED

    return {json.dumps(dict(best[m]["params"], **FIXED[m]), sort_keys=True): m for m in FIXED if m in best}


def _sensitivity_points(sweep: Sweep, best: dict, values: dict | None = None) -> list[dict]:
    """The (method, param, value, params) points of Figure 5: PMTRec's alpha and tau swept one at a
    time from its best configuration, over ``values[param]`` where given, else over the search
    space's values (only parameters with more than one)."""
    pts = []
    m = "pmtrec"
    if m not in best or best[m]["config_source"] != "search":
        return pts
    sp = dict(sweep.space.for_method(m), **(values or {}))
    for p in ("alpha", "tau"):
        if p not in sp or len(sp[p]) < 2:
            continue
        for v in sp[p]:
            params = dict(best[m]["params"], **{p: v})
            pts.append({"method": m, "param": p, "value": v, "params": params})
    return pts


def _earlier_runs(seeds_dir: Path) -> list[tuple[dict, list[dict]]]:
    """(config.json, runs.csv rows) of every seed directory that earlier reports wrote."""
    from ..training.compare import read_runs

    found = []
    for cfg_path in sorted(seeds_dir.glob("*/seed*/config.json")):
        runs_path = cfg_path.with_name("runs.csv")
        if runs_path.is_file():
            found.append((json.loads(cfg_path.read_text()), read_runs(runs_path)))
    return found


def _same_config(saved: dict, config) -> bool:
    """Whether the seed directory whose ``config.json`` is ``saved`` trained with the base
    configuration ``config`` (fields added since take their defaults, which keep the earlier
    behaviour; a field since removed never matches; the device is not compared: a run on the CPU
    stands for one on the GPU, as the study's trials do). ``tasks`` None is the data set's default task
    list, resolved with the data set name the run recorded: so a BPR-only run (tasks ``bpr``) is
    never taken for a multi-task one, even where their options are the same."""
    from ..tasks import default_tasks
    from ..training.config import FitConfig

    try:
        old, new = FitConfig(**saved.get("base_config", {})).to_dict(), config.to_dict()
    except TypeError:
        return False
    name = saved.get("dataset_stats", {}).get("name")
    for d in (old, new):
        d.pop("device")
        if d["tasks"] is None:
            if name is None:
                return False
            d["tasks"] = default_tasks(name)
    return old == new


def _earlier_row(earlier, method: str, seed: int, options: dict, base) -> dict | None:
    """An ``ok`` run of ``method`` on ``seed`` that an earlier report trained with the same options
    and base configuration, whatever other methods shared its comparison (each method of a
    comparison trains on its own from the seed, so the others do not change it): a report that
    gains a method re-trains only that method."""
    options = json.loads(json.dumps(options, sort_keys=True, default=str))
    for cfg, rows in earlier:
        if method not in cfg.get("methods", ()) or cfg.get("method_options", {}).get(method, {}) != options:
            continue
        if not _same_config(cfg, base):
            continue
        for r in rows:
            if r["method"] == method and int(r["seed"]) == seed and r.get("status", "ok") == "ok":
                return dict(r)
    return None


def _takes_event(fn) -> bool:
    """Whether a progress callback takes the (text, event) pair or the text alone."""
    import inspect

    try:
        return len(inspect.signature(fn).parameters) >= 2
    except (TypeError, ValueError):
        return False


def check_sensitivity_values(values: dict | None) -> dict:
    """``{"alpha": [...], "tau": [...]}`` (either may be missing): positive finite numbers, alpha
    at least 1 (PMTRec focuses on the main task by ``alpha ** epoch``); a PmtError names the option."""
    out = {}
    for p, vals in (values or {}).items():
        if vals is None:
            continue
        if p not in ("alpha", "tau"):
            raise PmtError(f"sensitivity: unknown parameter {p!r}; alpha or tau")
        low = 1.0 if p == "alpha" else 0.0
        for v in vals:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < low \
                    or (p == "tau" and v <= 0):
                need = "a number >= 1" if p == "alpha" else "a number > 0"
                raise PmtError(f"--{p}: {v!r} is not {need}")
        out[p] = sorted(set(float(v) for v in vals))
    return out


def run_report(sweep_dir, seeds: list[int], *, scheduler=None, n_workers=None, storage=None,
               sensitivity: bool = True, ablation: bool = True, reuse_study_seed: bool = True,
               sensitivity_values: dict | None = None, device: str | None = None, progress=None) -> dict:
    """Write the report files into ``<sweep_dir>/report``; return their paths by name.
    ``sensitivity_values``: the alpha and/or tau values of Figure 5 (default: the search space's).
    ``device``: where the runs it trains go (``cpu``, ``cuda``, ``auto``; default: the sweep's);
    seed runs trained earlier on another device are reused, as the trials themselves are."""
    from .executor import open_client
    from .trial import run_trial

    progress = progress or (lambda text: None)
    op = optuna()
    op.logging.set_verbosity(op.logging.WARNING)
    sweep = Sweep.open(sweep_dir, storage)
    if not seeds:
        raise PmtError("--seeds gives no seed")
    best = best_configs(sweep, ablation)
    if not best:
        raise PmtError(f"{sweep_dir}: no method has a complete trial yet; run the sweep first")
    out = Path(sweep_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"method": m, "config_source": b["config_source"], "trial": b["number"] if b["number"] is not None else "",
             "valid_monitor": b["value"], "complete_trials": b["n_complete"], "counted_trials": b["n_counted"],
             "params": json.dumps(b["params"], sort_keys=True),
             "search_test_recall@20": b["test"].get("recall@20", math.nan)} for m, b in best.items()]
    runio.write_csv(out / "best.csv", rows)
    paths = {"best": out / "best.csv"}

    base = base_config_of(sweep.settings)
    base.threads, base.checkpoint_every, base.record_weights = 1, 0, False
    if device is not None:
        base.device = device
    trial_base = dict(sweep.settings["base_config"], seed=sweep.settings["seed"], device=base.device)
    jobs, reused = [], []
    study_seed = int(sweep.settings["seed"])
    earlier = _earlier_runs(out / "seeds")
    n_earlier = 0
    for shown, m, opts, mbase in _runs(best, base):
        tag = hashlib.sha1(json.dumps([m, opts, mbase.to_dict()], sort_keys=True, default=str).encode()).hexdigest()[:10]
        for s in seeds:
            row = None
            if s == study_seed and reuse_study_seed:
                # the study's own seed: its best trial *is* this run (training is deterministic per
                # seed; tests/test_sweep_run.py checks the re-run matches to the last digit)
                row = _row_from_trial(sweep, shown, best[shown], s)
            if row is None:
                row = _earlier_row(earlier, m, s, opts, mbase)
                if row is not None:
                    row["method"] = shown
                    n_earlier += 1
            if row is not None:
                reused.append(row)
            else:  # one task per (method, seed): the workers stay busy to the end
                odir = out / "seeds" / f"{shown}-{tag}" / f"seed{s}"
                jobs.append((shown, s, [m], {m: opts}, mbase.to_dict(), odir))
    points = _sensitivity_points(sweep, best, check_sensitivity_values(sensitivity_values)) if sensitivity else []
    sens_path = out / "sensitivity.csv"
    sens_rows = []
    if points:
        old = {}
        if sens_path.is_file():
            import csv

            with open(sens_path, newline="") as f:
                old = {r["params"]: r for r in csv.DictReader(f)}
        st = sweep.load_study("pmtrec")
        complete = {_key(t.params): t for t in st.get_trials(deepcopy=False) if t.state == op.trial.TrialState.COMPLETE}
        same_as = _ablation_points(best) if study_seed in seeds else {}
        todo, from_ablation = [], []
        for pt in points:
            pkey = json.dumps(pt["params"], sort_keys=True)
            row = {"method": pt["method"], "param": pt["param"], "value": pt["value"], "params": pkey}
            t = complete.get(_key(pt["params"]))
            if t is not None:
                row.update({"valid_recall@20": t.user_attrs.get("valid", {}).get("recall@20", math.nan),
                            "test_recall@20": t.user_attrs.get("test", {}).get("recall@20", math.nan),
                            "valid_ndcg@20": t.user_attrs.get("valid", {}).get("ndcg@20", math.nan),
                            "test_ndcg@20": t.user_attrs.get("test", {}).get("ndcg@20", math.nan),
                            "source": f"study trial {t.number}"})
            elif pkey in old and old[pkey].get("source") and not old[pkey]["source"].startswith("failed"):
                row.update({k: old[pkey][k] for k in old[pkey] if k not in row})
            elif pkey in same_as:  # an ablation's run on the study's seed: taken from it below
                from_ablation.append((row, same_as[pkey]))
            else:
                todo.append((row, pt))
            sens_rows.append(row)
    n_jobs = len(jobs) + (len(todo) if points else 0)
    progress(f"re-running {len(best)} configuration(s) on {len(seeds)} seed(s) ({len(jobs)} training run(s)"
             + (f"; {n_earlier} run(s) taken from earlier reports)" if n_earlier else ")")
             + (f", {len(todo)} sensitivity run(s)" if points else ""))
    if n_jobs:
        import distributed as dist

        with open_client(scheduler, n_workers) as client:
            futs = {}
            for name, s, methods, opts, gdict, odir in jobs:
                f = client.submit(_compare_task, sweep.settings["dataset"], methods, s, gdict, opts, str(odir),
                                  pure=False)
                futs[f] = ("train", name, s)
            for row, pt in (todo if points else []):
                spec = {"study": None, "storage": None, "trial_id": None, "number": -1, "method": "pmtrec",
                        "params": pt["params"], "base_config": trial_base,
                        "pruner": {"name": "none"}}
                futs[client.submit(run_trial, spec, pure=False)] = ("sens", row, None)
            prog = RunProgress(n_jobs, parallel=True, unit="tasks")  # parallel workers: throughput

            def say(text):  # each finished task's line ends with tasks done / total and the time left
                line = f"{text} | {prog.line()}"
                if _takes_event(progress):
                    progress(line, {"done": prog.done, "total": prog.total, "eta_seconds": prog.eta()})
                else:
                    progress(line)

            for f in dist.as_completed(list(futs)):
                kind, a, b = futs[f]
                prog.finished()
                done = prog.done
                try:
                    res = f.result()
                except Exception as exc:  # noqa: BLE001 - say which task failed, keep the others
                    say(f"[{done}/{n_jobs}] {kind} {a} {b if b is not None else ''}: failed ({type(exc).__name__}: {exc})")
                    if kind == "sens":
                        a.update(source=f"failed: {exc}")
                    continue
                if kind == "sens":
                    if res["status"] == "complete":
                        a.update({"valid_recall@20": res["valid"]["recall@20"], "test_recall@20": res["test"]["recall@20"],
                                  "valid_ndcg@20": res["valid"]["ndcg@20"], "test_ndcg@20": res["test"]["ndcg@20"],
                                  "source": f"trained (seed {sweep.settings['seed']})"})
                    else:
                        a.update(source=f"failed: {res.get('error')}")
                    runio.write_csv(sens_path, sens_rows)
                    say(f"[{done}/{n_jobs}] sensitivity {a['param']}={a['value']}: {a['source']}")
                else:
                    say(f"[{done}/{n_jobs}] {a} seed {b}: done")
    if sens_rows:
        runio.write_csv(sens_path, sens_rows)
        paths["sensitivity"] = sens_path

    # gather the seed runs
    from ..training.compare import read_runs

    runs = list(reused)
    for name, s, methods, opts, gdict, odir in jobs:
        f = Path(odir) / "runs.csv"
        if not f.is_file():
            continue
        for r in read_runs(f):
            if r["method"] not in methods or int(r["seed"]) != s:
                continue  # kept by run_compare from an earlier call with other methods: not this job's
            r["method"] = name
            runs.append(r)
    runio.write_csv(out / "runs.csv", runs)
    if points and from_ablation:
        monitor = base.monitor
        for row, ab in from_ablation:
            r = next((r for r in runs if r["method"] == ab and int(r["seed"]) == study_seed
                      and r.get("status", "ok") == "ok"), None)
            if r is None:
                row.update(source=f"failed: the {ab} run of seed {study_seed} did not finish")
                continue
            row.update({"valid_recall@20": r.get("valid_recall@20", math.nan) if monitor == "recall@20" else math.nan,
                        "test_recall@20": r["recall@20"], "valid_ndcg@20": r.get("valid_ndcg@20", math.nan),
                        "test_ndcg@20": r["ndcg@20"], "source": f"{ab} run (seed {study_seed})"})
        runio.write_csv(sens_path, sens_rows)
    ks = tuple(base.ks)
    ds_name = Path(str(sweep.settings["dataset"])).stem
    adam = sweep.settings["base_config"].get("adam_mode")
    n = len(seeds)
    cap = (f"{ds_name} ({adam} Adam): test metrics at the best validation epoch of each method's best "
           f"configuration on validation; mean ± std over {n} seed(s) (std ddof={1 if n > 1 else 0}); best in bold, "
           f"runner-up underlined.")
    table_methods = [m for m in best if m not in ABLATIONS[1:]]
    _table(runs, table_methods, ks, cap, out / "table2")
    paths["table2"] = out / "table2.md"
    abl = [m for m in ABLATIONS if m in best]
    if len(abl) > 1:
        _table(runs, abl, ks, cap.replace("each method's best", "the ablations' (see best.csv)"), out / "ablation")
        paths["ablation"] = out / "ablation.md"
    paths.update(_plots(out, runs, abl, sens_rows))
    return paths


def _plots(out: Path, runs, abl, sens_rows) -> dict:
    """PNG figures when matplotlib is installed (the ``plot`` extra); nothing otherwise."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}
    paths = {}
    if len(abl) > 1:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for j, k in enumerate(TEST_KEYS):
            vals = [[float(r[k]) for r in runs if r["method"] == m and r.get("status", "ok") == "ok"] for m in abl]
            x = np.arange(len(abl)) + (j - 0.5) * 0.38
            ax.bar(x, [np.mean(v) if v else np.nan for v in vals], 0.36,
                   yerr=[np.std(v, ddof=1) if len(v) > 1 else 0 for v in vals], label=k, capsize=3)
        ax.set_xticks(np.arange(len(abl)), abl)
        ax.set_ylabel("test")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "ablation.png", dpi=120)
        plt.close(fig)
        paths["ablation_png"] = out / "ablation.png"
    params = [p for p in ("alpha", "tau") if any(r["param"] == p for r in sens_rows)]
    if params:
        fig, axes = plt.subplots(1, len(params), figsize=(4.5 * len(params), 3.2), squeeze=False)
        for ax, p in zip(axes[0], params):
            rows = sorted((r for r in sens_rows if r["param"] == p), key=lambda r: float(r["value"]))
            x = [float(r["value"]) for r in rows]
            for k in ("valid_recall@20", "test_recall@20"):
                ax.plot(x, [float(r.get(k, "nan") or "nan") for r in rows], "o-", label=k)
            if p == "tau":
                ax.set_xscale("log")
            ax.set_xlabel(p)
            ax.legend()
        fig.tight_layout()
        fig.savefig(out / "sensitivity.png", dpi=120)
        plt.close(fig)
        paths["sensitivity_png"] = out / "sensitivity.png"
    return paths
