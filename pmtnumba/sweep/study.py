"""The sweep driver: one Optuna study per method, trials run as Dask tasks, resumable.

Layout of a sweep directory::

    sweep.json      the sweep's settings (data set, base configuration, methods, space, search);
                    a re-run must match them (only the trial budget and the method list may grow,
                    methods without a trial yet may get values of their own, see
                    :func:`merge_space`, and the device may change, see :func:`_what_trials_compute`)
    study.journal   the Optuna studies (default storage, see :mod:`.storage`)
    trials.csv      every trial of every method, rewritten after each result
    .lock           held while a driver runs, so two drivers never share a sweep

The driver asks each method's study for parameters (Optuna's GridSampler for the exhaustive
grid, TPE for a budget of ``trials``), submits :func:`.trial.run_trial` to the cluster, and
tells the study the outcome when the task returns; workers only report intermediate values (for
pruning). A trial is therefore counted once, by the driver. On start, trials left RUNNING by a
driver that died are marked FAIL with ``interrupted`` and their parameters are queued again;
they do not count. A trial whose training fails is a counted FAIL with its error message.
"""

from __future__ import annotations

import dataclasses
import fcntl
import math
import time
from pathlib import Path

from ..errors import PmtError
from . import storage as storage_mod
from ._deps import optuna
from .space import BPR_ONLY, METHOD_PARAMS, SearchSpace

SWEEP_FILE = "sweep.json"
TRIALS_FILE = "trials.csv"

#: Settings a re-run may differ in (everything else must match the first run); ``name`` (the
#: directory's name when the sweep began) names the studies in the storage, so a renamed or moved
#: directory keeps the recorded one.
_MAY_CHANGE = ("trials", "methods", "storage", "created", "versions", "git_commit", "name")


def _what_trials_compute(settings: dict) -> dict:
    """The settings without the device: where trials train (CPU or GPU) does not change what they
    compute beyond floating-point rounding, so a sweep begun on CPUs may go on on GPUs (each trial
    records the device it ran on: ``device`` in trials.csv)."""
    base = {k: v for k, v in (settings.get("base_config") or {}).items() if k != "device"}
    return dict(settings, base_config=base)


def git_commit() -> str | None:
    """The commit of the package's checkout (``+dirty`` with local changes), or None."""
    from ..provenance import git_commit as _git

    g = _git()
    if g["commit"] is None:
        return None
    return g["commit"] + ("+dirty" if g["dirty"] else "")


class _Lock:
    """An exclusive lock on ``<dir>/.lock`` for the driver's lifetime."""

    def __init__(self, path: Path):
        self.path = path
        self.f = None

    def __enter__(self):
        self.f = open(self.path, "a+")
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.f.close()
            raise PmtError(f"{self.path.parent}: another sweep driver is running on this directory") from None
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def _grid_sampler(space: dict, seed: int):
    op = optuna()

    class GridSampler(op.samplers.GridSampler):
        """Optuna's GridSampler without its ``study.stop()`` when the grid is used up: that call is
        only allowed inside ``study.optimize``; the driver counts grid points itself."""

        def after_trial(self, study, trial, state, values):
            return None

    return GridSampler(space, seed=seed)


def _key(params: dict) -> tuple:
    return tuple(sorted(params.items()))


def check_methods(methods) -> list[str]:
    from ..combiners import make_combiner

    methods = [m.strip() for m in methods if m.strip()]
    if not methods:
        raise PmtError("--methods is empty")
    bad = [m for m in methods if m not in METHOD_PARAMS]
    if bad:
        raise PmtError(f"unknown method(s) {', '.join(bad)}; choose from {', '.join(METHOD_PARAMS)}")
    for m in methods:
        if m != BPR_ONLY:
            make_combiner(m)
    return list(dict.fromkeys(methods))


def merge_space(old: dict, new: dict, where, started) -> dict | None:
    """The space of a resumed sweep: the recorded one, plus the per-method values the new settings
    give methods that have no trial yet; None when the shared lists differ (the caller then
    refuses). A method with trials keeps exactly its recorded values (its trials were drawn from
    them), so the shared lists must be unchanged and it may not be given other values; a method
    added later, or one whose search has not begun, may search values of its own (e.g. only the
    weight decay that did not collapse for the others). ``started()``: the methods with a trial
    (called only when the per-method values differ: it reads the storage)."""
    o, n = old.get("space") or {}, new.get("space") or {}
    if o.get("common") != n.get("common"):
        return None
    o_pm, n_pm = o.get("per_method") or {}, n.get("per_method") or {}
    if all(o_pm.get(m) == vals for m, vals in n_pm.items()):
        return o
    earlier = started()
    for m, vals in n_pm.items():
        if m in earlier and o_pm.get(m) != vals:
            raise PmtError(f"{where}: method {m!r} already has trials in this sweep, drawn from other values "
                           f"({o_pm.get(m) or 'the shared ones'}); its search cannot change")
    return {"common": o.get("common"), "per_method": {**o_pm, **n_pm}}  # started methods: values unchanged


class Sweep:
    """A sweep directory: its settings, storage and per-method studies."""

    def __init__(self, sweep_dir, settings: dict):
        self.dir = Path(sweep_dir)
        self.settings = settings
        self.space = SearchSpace.from_dict(settings["space"])
        self.storage_spec = storage_mod.resolve_spec(settings["storage"], sweep_dir)
        self._storage = None

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def open(cls, sweep_dir, storage: str | None = None) -> "Sweep":
        """An existing sweep (for ``report``)."""
        from ..training import runio

        path = Path(sweep_dir) / SWEEP_FILE
        if not path.is_file():
            raise PmtError(f"{sweep_dir}: not a sweep directory (no {SWEEP_FILE})")
        settings = runio.read_json(path)
        if storage:
            settings["storage"] = storage
        return cls(sweep_dir, settings)

    @classmethod
    def create_or_resume(cls, sweep_dir, settings: dict) -> "Sweep":
        """Write ``sweep.json`` or check the new settings against it."""
        from ..training import runio

        d = Path(sweep_dir)
        d.mkdir(parents=True, exist_ok=True)
        path = d / SWEEP_FILE
        if path.is_file():
            old = runio.read_json(path)
            recorded = cls(d, dict(old, storage=settings.get("storage") or old.get("storage") or storage_mod.DEFAULT_SPEC))
            space = merge_space(old, settings, d, lambda: recorded.started_methods(old.get("methods", [])))
            may_change = _MAY_CHANGE + (("space",) if space is not None else ())
            settings = dict(settings, space=space or settings.get("space"))
            a, b = _what_trials_compute(old), _what_trials_compute(settings)
            diff = sorted(k for k in set(a) | set(b) if k not in may_change and a.get(k) != b.get(k))
            if diff:
                raise PmtError(f"{d}: the sweep there was started with other settings ({', '.join(diff)}); "
                               f"use the same options to continue it, or another directory")
            settings = dict(settings, name=old.get("name", settings["name"]),
                            created=old.get("created", settings.get("created")),
                            methods=list(dict.fromkeys([*old.get("methods", []), *settings["methods"]])))
            if settings.get("storage") is None:
                settings["storage"] = old.get("storage")
                if storage_mod.resolve_spec(settings["storage"], d) == storage_mod.resolve_spec(None, d):
                    settings["storage"] = storage_mod.DEFAULT_SPEC  # a legacy absolute path to its own journal
        if settings.get("storage") is None:
            settings["storage"] = storage_mod.DEFAULT_SPEC
        runio.write_json(path, settings)
        return cls(d, settings)

    @property
    def storage(self):
        if self._storage is None:
            self._storage = storage_mod.open_storage(self.storage_spec)
        return self._storage

    def started_methods(self, methods) -> set[str]:
        """Those of ``methods`` whose study holds a trial (in any state)."""
        return {m for m in methods if (st := self.load_study(m)) is not None and st.trials}

    def study_name(self, method: str) -> str:
        return f"{self.settings['name']}/{method}"

    def load_study(self, method: str, sampler=None):
        op = optuna()
        try:
            return op.load_study(study_name=self.study_name(method), storage=self.storage, sampler=sampler)
        except KeyError:
            return None

    def create_study(self, method: str, index: int):
        op = optuna()
        seed = int(self.settings["seed"]) * 1000 + index
        sp = self.space.for_method(method)
        if self.settings["search"] == "grid":
            sampler = _grid_sampler(sp, seed)
        else:
            n = int(self.settings["trials"])
            sampler = op.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, n // 3)))
        return op.create_study(study_name=self.study_name(method), storage=self.storage, sampler=sampler,
                               direction="maximize", load_if_exists=True)

    def methods(self) -> list[str]:
        return list(self.settings["methods"])

    def target(self, method: str) -> int:
        """Counted trials a method's search needs: its whole grid, or the budget (at most the grid)."""
        size = self.space.grid_size(method)
        if self.settings["search"] == "grid":
            return size
        return min(int(self.settings["trials"]), size)

    # -- trial bookkeeping --------------------------------------------------------------------
    @staticmethod
    def counted(trials) -> list:
        """Finished trials that count: complete, pruned, or failed by their own error (not interrupted,
        not a repeated proposal answered from an earlier trial)."""
        TS = optuna().trial.TrialState
        return [t for t in trials if "duplicate_of" not in t.user_attrs and (
            t.state in (TS.COMPLETE, TS.PRUNED) or (t.state == TS.FAIL and not t.user_attrs.get("interrupted")))]

    def write_trials_csv(self) -> None:
        from ..training import runio

        rows = []
        for m in self.methods():
            st = self.load_study(m)
            if st is None:
                continue
            for t in st.get_trials(deepcopy=False):
                test = t.user_attrs.get("test") or {}
                rows.append({
                    "method": m, "number": t.number, "state": t.state.name,
                    "interrupted": bool(t.user_attrs.get("interrupted", False)),
                    "value": t.value if t.value is not None else float("nan"),
                    **{f"param_{k}": v for k, v in sorted(t.params.items())},
                    "test_recall@20": test.get("recall@20", float("nan")),
                    "test_ndcg@20": test.get("ndcg@20", float("nan")),
                    "best_epoch": t.user_attrs.get("best_epoch", ""),
                    "epochs_run": t.user_attrs.get("epochs_run", ""),
                    "seconds": t.user_attrs.get("seconds", ""),
                    "device": t.user_attrs.get("device", ""),
                    "duplicate_of": t.user_attrs.get("duplicate_of", ""),
                    "error": t.user_attrs.get("error", ""),
                })
        cols = list(dict.fromkeys(k for r in rows for k in r))
        rows = [{c: r.get(c, "") for c in cols} for r in rows]
        runio.write_csv(self.dir / TRIALS_FILE, rows)


def _recover(study) -> int:
    """Mark trials left RUNNING by a dead driver FAIL (interrupted) and queue their parameters again."""
    op = optuna()
    n = 0
    for t in study.get_trials(deepcopy=False, states=(op.trial.TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
        study._storage.set_trial_user_attr(t._trial_id, "error", "interrupted: the sweep driver stopped")
        study.tell(t.number, state=op.trial.TrialState.FAIL)
        if t.params:
            study.enqueue_trial(t.params)
        n += 1
    return n


def sweep_settings(*, name: str, dataset: str, base_config, methods, space: SearchSpace, trials: int | None,
                   pruner: dict, seed: int, storage: str | None) -> dict:
    """The settings of a sweep as stored in ``sweep.json`` (what a re-run is checked against)."""
    from .trial import make_pruner

    make_pruner(pruner)  # a bad pruner fails now
    base = dataclasses.replace(base_config, dataset=str(dataset))
    base.validate()
    d = base.to_dict()
    for k in ("method", "method_options", "seed", "threads", "checkpoint_every", "record_weights"):
        d.pop(k, None)
    if not d.get("reg"):  # off (the default): left out, so sweeps started before --reg continue
        d.pop("reg", None)
    if trials is not None and trials < 1:
        raise PmtError(f"--trials must be >= 1, got {trials}")
    return {
        "name": name, "dataset": str(dataset), "base_config": d, "methods": check_methods(methods),
        "space": space.to_dict(), "search": "grid" if trials is None else "tpe", "trials": trials,
        "pruner": pruner, "seed": int(seed), "storage": storage,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def base_config_of(settings: dict, seed: int | None = None):
    """The FitConfig of a sweep's settings (method EW, the study seed unless ``seed``)."""
    from ..training.config import FitConfig

    d = dict(settings["base_config"])
    d["ks"] = tuple(d.get("ks", (5, 10, 20, 40)))
    cfg = FitConfig(**d)
    cfg.seed = int(settings["seed"] if seed is None else seed)
    return cfg


def run_sweep(sweep_dir, settings: dict, *, scheduler: str | None = None, n_workers: int | None = None,
              progress=None) -> dict:
    """Run (or continue) the sweep; return ``{method: {"counted", "target", "best_value", "best_params"}}``.

    ``progress(event: dict)`` receives a line per finished trial (``done``, ``total``,
    ``eta_seconds``, ``method``, ``number``, ``status``, ``value``, ``params``).
    """
    from .. import __version__
    from ..data import load_dataset
    from .executor import n_slots, open_client
    from .trial import run_trial

    op = optuna()
    op.logging.set_verbosity(op.logging.WARNING)
    bc = settings["base_config"]
    load_dataset(settings["dataset"], data_dir=bc.get("data_dir"), valid=bc.get("valid_file"),
                 test=bc.get("test_file"))  # bad data fails now
    sweep = Sweep.create_or_resume(sweep_dir, settings)
    commit = git_commit()
    progress = progress or (lambda ev: None)
    with _Lock(sweep.dir / ".lock"):
        studies, recovered = {}, 0
        for i, m in enumerate(sweep.methods()):
            studies[m] = sweep.create_study(m, i)
            recovered += _recover(studies[m])
        sweep.write_trials_csv()
        dists = {m: {k: op.distributions.CategoricalDistribution(v) for k, v in sweep.space.for_method(m).items()}
                 for m in studies}

        def finished_by_key(m):
            return {_key(t.params): t for t in Sweep.counted(studies[m].get_trials(deepcopy=False))}

        done_keys = {m: finished_by_key(m) for m in studies}
        n_counted = {m: len(Sweep.counted(studies[m].get_trials(deepcopy=False))) for m in studies}

        def remaining(m):  # distinct configurations still to train (grid: points not yet covered)
            return sweep.target(m) - len(done_keys[m])

        total = sum(sweep.target(m) for m in studies)
        done0 = total - sum(max(0, remaining(m)) for m in studies)
        inflight: dict = {}  # future -> (method, trial, params key)
        t_start = time.perf_counter()
        n_session = 0
        if recovered:
            progress({"message": f"{recovered} interrupted trial(s) marked failed and queued again"})
        if done0 >= total:
            progress({"message": f"nothing to do: all {total} trial(s) done"})

        def record(m, trial, res: dict):
            nonlocal n_session
            for k in ("config", "valid", "test", "best_epoch", "epochs_run", "stopped_early", "train_seconds",
                      "seconds", "worker", "device", "error", "duplicate_of"):
                if k in res:
                    trial.set_user_attr(k, res[k])
            trial.set_user_attr("pmtnumba_version", __version__)
            trial.set_user_attr("git_commit", commit)
            status = res["status"]
            if status == "complete":
                studies[m].tell(trial, res["value"])
            elif status == "pruned":
                studies[m].tell(trial, state=op.trial.TrialState.PRUNED)
            else:
                studies[m].tell(trial, state=op.trial.TrialState.FAIL)
            if "duplicate_of" not in res:
                n_counted[m] += 1
                done_keys[m][_key(trial.params)] = studies[m].trials[trial.number]
            n_session += 1
            sweep.write_trials_csv()
            done = total - sum(max(0, remaining(x)) for x in studies)
            el = time.perf_counter() - t_start
            eta = el / max(1, done - done0) * (total - done) if done > done0 else float("nan")
            progress({"done": done, "total": total, "eta_seconds": eta, "method": m, "number": trial.number,
                      "status": status, "value": res.get("value"), "params": trial.params,
                      "error": res.get("error"), "seconds": res.get("seconds"), "duplicate_of": res.get("duplicate_of")})

        def next_trial():
            """(method, trial) to run next, or None. TPE may propose a categorical point twice: a
            repeat of a finished point is answered from the earlier trial (so the sampler learns) and
            does not count towards the budget; after 50 repeats in a row the method stops early."""
            inflight_keys = {(mm, k) for mm, _, k in inflight.values()}
            for m in studies:
                if m in gave_up:
                    continue
                for _ in range(50):
                    n_running = sum(1 for mm, _, _ in inflight.values() if mm == m)
                    if remaining(m) - n_running <= 0:
                        break
                    trial = studies[m].ask(dists[m])
                    k = _key(trial.params)
                    if k in done_keys[m]:
                        old = done_keys[m][k]
                        res = {"status": {"COMPLETE": "complete", "PRUNED": "pruned"}.get(old.state.name, "fail"),
                               "value": old.value, "duplicate_of": old.number,
                               **{a: old.user_attrs[a] for a in ("config", "valid", "test", "error")
                                  if a in old.user_attrs}}
                        if sweep.settings["search"] == "grid":  # cannot happen with the grid: do not count
                            trial.set_user_attr("interrupted", True)
                            studies[m].tell(trial, state=op.trial.TrialState.FAIL)
                            continue
                        record(m, trial, res)
                        continue
                    if (m, k) in inflight_keys:  # the same point is running: do not run it twice
                        trial.set_user_attr("interrupted", True)
                        trial.set_user_attr("error", "duplicate of a running trial: skipped")
                        studies[m].tell(trial, state=op.trial.TrialState.FAIL)
                        continue
                    return m, trial, k
                else:
                    if m not in gave_up:
                        gave_up.add(m)
                        progress({"message": f"{m}: the sampler proposed only configurations already tried "
                                             f"(50 in a row); stopping its search at {len(done_keys[m])}"})
            return None

        gave_up: set = set()

        if done0 < total:
            dist = __import__("distributed")
            with open_client(scheduler, n_workers) as client:
                slots = n_slots(client)
                progress({"message": f"{len(studies)} method(s), {total} trial(s), {done0} done; "
                                     f"{slots} worker slot(s)"})
                ac = dist.as_completed()

                def fill():
                    while len(inflight) < slots:
                        nt = next_trial()
                        if nt is None:
                            return
                        m, trial, k = nt
                        spec = {"study": sweep.study_name(m), "storage": sweep.storage_spec, "trial_id": trial._trial_id,
                                "number": trial.number, "method": m, "params": dict(trial.params),
                                "base_config": sweep.settings["base_config"] | {"seed": sweep.settings["seed"]},
                                "pruner": dict(sweep.settings["pruner"],
                                               max_epochs=sweep.settings["base_config"]["epochs"])}
                        fut = client.submit(run_trial, spec, pure=False, key=f"trial-{m}-{trial.number}-{time.time_ns()}")
                        inflight[fut] = (m, trial, k)
                        ac.add(fut)

                fill()
                for fut in ac:
                    m, trial, _ = inflight.pop(fut)
                    try:
                        res = fut.result()
                    except Exception as exc:  # noqa: BLE001 - the task itself failed (worker died, ...)
                        res = {"status": "fail", "error": f"task failed: {type(exc).__name__}: {exc}"}
                    record(m, trial, res)
                    fill()
        out = {}
        for m, st in studies.items():
            comp = [t for t in st.get_trials(deepcopy=False) if t.state == op.trial.TrialState.COMPLETE]
            best = max(comp, key=lambda t: t.value) if comp else None
            out[m] = {"counted": n_counted[m], "target": sweep.target(m),
                      "best_value": best.value if best else math.nan, "best_params": best.params if best else None}
        return out
