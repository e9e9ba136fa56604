"""Like-for-like comparison of gradient combiners: several methods x several seeds, one table.

For each seed the split is built once (it is a function of (dataset, seed) only) and every
method is trained on that same split with the same configuration except the method, so within a
seed the methods differ by the combiner alone; across seeds both the split and the
initialisation change. Per (method, seed) we keep the test metrics of the best validation epoch,
the best epoch, the epochs run and the seconds per training epoch; per method the mean and the
standard deviation over seeds (``ddof=1`` with more than one seed, else 0).

Files written to ``out_dir`` (each atomically, see :mod:`.runio`):

``config.json``
    the base configuration, the methods, the seeds, the per-method options, the data set.
``runs.csv``
    one row per finished (method, seed), rewritten after *every* run, so an interrupted
    comparison loses no finished run (``resume=True`` picks up from it). Every row's ``protocol``
    says how its test numbers were obtained (:func:`~pmtnumba.data.split.protocol_label`; the
    papers' protocol, the epoch selected on test, reads ``optimistic (epoch selected on test)``),
    so the file read alone cannot pass an optimistic score for a fair one.
``summary.csv`` / ``summary.md``
    one row per method: its runs' ``protocol``, ``<metric>@K_mean`` / ``<metric>@K_std`` for recall, ndcg and hr; the
    Markdown file is a table in the style of the paper's Table 2 (``mean ± std``, best mean per
    column in bold, runner-up underlined). Also rewritten after every run.
``<method>/seed<k>/``
    each run's own directory (config, curve, metrics, embeddings), unless ``save_runs=False``.

A run that diverges (:class:`~pmtnumba.errors.TrainingDiverged`) is recorded in ``runs.csv``
with ``status=diverged`` and the comparison goes on; the summary averages the finished seeds
of each method and says how many failed. Any other error stops the comparison.

Typical use::

    from pmtnumba.training import FitConfig
    from pmtnumba.training.compare import run_compare, format_table
    summary = run_compare("videogame", ["ew", "pcgrad", "pmtrec"], [0, 1, 2],
                          FitConfig(epochs=300, threads=1), out_dir="runs/cmp-vg")
    print(format_table(summary))
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import math
import statistics
import time
from pathlib import Path

import numpy as np

from ..combiners import COMBINERS, make_combiner
from ..data import load_dataset
from ..data.dataset import Dataset
from ..data.split import make_split, protocol_label
from ..errors import PmtError, TrainingDiverged
from ..progress import RunProgress
from . import runio
from .config import FitConfig
from .loop import Reporter, Trainer

__all__ = [
    "PAPER_METHODS",
    "BPR_ONLY",
    "DISPLAY_NAMES",
    "run_compare",
    "summarize",
    "format_table",
    "format_markdown",
    "read_runs",
    "default_lr_wd",
]

#: Not a combiner: the main task alone (tasks = bpr, EW), the "BPR only" row of the README's table
#: and of the sweep (:data:`pmtnumba.sweep.space.BPR_ONLY`); compared on the same splits.
BPR_ONLY = "bpr-only"

#: The methods of the paper's Table 2, in its row order (``--methods all``).
PAPER_METHODS = ("ew", "rlw", "graddrop", "pcgrad", "gradvac", "cagrad", "aligned-mtl", "nash-mtl", "pmtrec")

DISPLAY_NAMES = {
    "bpr-only": "BPR only",
    "ew": "EW",
    "rlw": "RLW",
    "graddrop": "GradDrop",
    "pcgrad": "PCGrad",
    "gradvac": "GradVac",
    "cagrad": "CAGrad",
    "aligned-mtl": "Aligned-MTL",
    "nash-mtl": "Nash-MTL",
    "pmtrec": "PMTRec",
    "pmtrec-nofocus": "PMTRec-NoFocus",
    "pmtrec-nobalance": "PMTRec-NoBalance",
}

#: Metrics aggregated in ``summary.csv``; the first two make the table (R@K, N@K).
SUMMARY_METRICS = ("recall", "ndcg", "hr")
_SHORT = {"recall": "R", "ndcg": "N", "hr": "HR"}
_DIGITS = 4  # decimals shown in the tables; best / runner-up are ranked on the shown value


def _split_fingerprint(labels: np.ndarray) -> str:
    """Short hash of a split's labels: equal within a seed, for every method."""
    return hashlib.sha1(np.ascontiguousarray(labels).tobytes()).hexdigest()[:16]


def _versions() -> dict:
    from ..provenance import versions

    return versions()


#: Per-method options that are training settings, not combiner hyper-parameters: ``-o ew:wd=1e-5``.
#: Adam's weight decay is added to the combined gradient, whose scale differs by combiner, so a
#: like-for-like comparison tunes it per method (docs/combiners.md).
TRAINING_OVERRIDES = ("lr", "wd")


def _split_overrides(opts: dict) -> tuple[dict, dict]:
    """(combiner options, training overrides) of one method's options."""
    comb = {k: v for k, v in opts.items() if k not in TRAINING_OVERRIDES}
    train = {k: float(v) for k, v in opts.items() if k in TRAINING_OVERRIDES}
    return comb, train


def _check_methods(methods, method_options) -> list[str]:
    methods = [str(m).strip() for m in methods]
    if not methods:
        raise PmtError("no methods to compare")
    unknown = [m for m in methods if m not in COMBINERS and m != BPR_ONLY]
    if unknown:
        raise PmtError(f"unknown method(s) {', '.join(map(repr, unknown))}; choose from {', '.join(COMBINERS)} (or all)")
    dup = sorted({m for m in methods if methods.count(m) > 1})
    if dup:
        raise PmtError(f"method(s) listed twice: {', '.join(dup)}")
    extra = sorted(set(method_options) - set(methods))
    if extra:
        raise PmtError(f"options given for method(s) not compared: {', '.join(extra)}")
    for m in methods:  # bad options fail now, not after hours of the other methods
        try:
            make_combiner(_combiner_of(m), **_split_overrides(method_options.get(m, {}))[0])
        except TypeError as exc:
            raise PmtError(f"method {m!r}: {exc}") from None
    return methods


def _combiner_of(method: str) -> str:
    return "ew" if method == BPR_ONLY else method


def default_lr_wd(dataset, methods, tasks, method_options: dict, lr=None, wd=None) -> tuple[float, float]:
    """Fill in ``fit``'s defaults where ``lr``/``wd`` are not given: the pair tuned for a shipped
    data set and kind of task set (:func:`~.config.recommended_lr_wd`), per method, so ``bpr-only``
    gets the BPR-alone pair and the others the multi-task pair; a method's own ``lr``/``wd`` in
    ``method_options`` stays. Updates ``method_options`` in place where a method's pair differs
    from the returned base pair (that of the multi-task methods, else of ``bpr-only``)."""
    from ..data import SHIPPED
    from ..tasks import default_tasks
    from .config import recommended_lr_wd

    name = str(dataset) if str(dataset) in SHIPPED else ""
    multi = list(tasks) if tasks is not None else default_tasks(name)
    pairs = {m: recommended_lr_wd(name, ["bpr"] if m == BPR_ONLY else multi) for m in methods}
    first = next((m for m in methods if m != BPR_ONLY), methods[0])
    base_lr = pairs[first][0] if lr is None else lr
    base_wd = pairs[first][1] if wd is None else wd
    for m in methods:
        for key, given, base, rec in (("lr", lr, base_lr, pairs[m][0]), ("wd", wd, base_wd, pairs[m][1])):
            if given is None and rec != base and key not in method_options.get(m, {}):
                method_options.setdefault(m, {})[key] = rec
    return base_lr, base_wd


def _check_seeds(seeds) -> list[int]:
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise PmtError("no seeds given")
    if len(set(seeds)) != len(seeds):
        raise PmtError(f"a seed is listed twice: {seeds}")
    return seeds


def _run_record(method: str, seed: int, split_hash: str, result, monitor: str, protocol: str) -> dict:
    secs = [r["train_seconds"] for r in result.curve]
    rec = {
        "method": method,
        "seed": seed,
        "status": "ok",
        "protocol": protocol,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.curve),
        "stopped_early": result.stopped_early,
        "train_seconds": round(result.train_seconds, 3),
        # median: the first epoch of a process may include JIT compilation
        "seconds_per_epoch": round(statistics.median(secs), 4) if secs else float("nan"),
        "split_sha1": split_hash,
        f"valid_{monitor}": result.best_valid[monitor],
    }
    for k in dict.fromkeys(k for r in result.curve for k in r if k.startswith("combiner_")):
        rec[k] = sum(r.get(k, 0) for r in result.curve)  # e.g. Nash-MTL fallbacks over the run
    rec.update({k: v for k, v in result.test.items()})
    return rec


def summarize(runs: list[dict], methods=None, ks=(5, 10, 20, 40)) -> list[dict]:
    """One row per method: mean and std over seeds (ddof=1 if > 1 seed, else 0) of R/N/HR@K.

    ``runs`` are rows as in ``runs.csv`` (``status`` other than ``ok`` are counted as failed and
    left out of the statistics). ``methods`` fixes the row order (default: order of appearance).
    """
    if methods is None:
        methods = list(dict.fromkeys(r["method"] for r in runs))
    out = []
    for m in methods:
        rows = [r for r in runs if r["method"] == m]
        ok = [r for r in rows if r.get("status", "ok") == "ok"]
        row = {
            "method": m,
            "n_seeds": len(ok),
            "n_failed": len(rows) - len(ok),
            "seeds": " ".join(str(int(r["seed"])) for r in ok),
        }
        protocols = list(dict.fromkeys(str(r["protocol"]) for r in rows if r.get("protocol")))
        if protocols:  # as in runs.csv: how the test numbers were obtained
            row["protocol"] = "; ".join(protocols)
        for metric in SUMMARY_METRICS:
            for k in ks:
                key = f"{metric}@{k}"
                vals = np.array([float(r[key]) for r in ok], dtype=np.float64)
                row[f"{key}_mean"] = float(vals.mean()) if vals.size else float("nan")
                row[f"{key}_std"] = float(vals.std(ddof=1)) if vals.size > 1 else (0.0 if vals.size else float("nan"))
        for key in ("best_epoch", "epochs_run", "seconds_per_epoch"):
            vals = [float(r.get(key, "nan")) for r in ok]
            row[f"{key}_mean"] = float(np.mean(vals)) if vals else float("nan")
        out.append(row)
    return out


def _table_columns(summary: list[dict]) -> list[tuple[str, str]]:
    """(header, key) of the table columns: R@K for every K, then N@K (the paper's Table 2)."""
    if not summary:
        return []
    ks = [c[len("recall@"):-len("_mean")] for c in summary[0] if c.startswith("recall@") and c.endswith("_mean")]
    return [(f"{_SHORT[m]}@{k}", f"{m}@{k}") for m in ("recall", "ndcg") for k in ks]


def _ranks(summary: list[dict], key: str) -> list[int]:
    """Per method: 1 = best mean of the column, 2 = runner-up, 0 = other (ties share a rank)."""
    shown = [round(r[f"{key}_mean"], _DIGITS) for r in summary]
    distinct = sorted({v for v in shown if not math.isnan(v)}, reverse=True)
    top = distinct[:2]
    return [top.index(v) + 1 if v in top else 0 for v in shown]


def _cell(row: dict, key: str) -> str:
    mean, std = row[f"{key}_mean"], row[f"{key}_std"]
    if math.isnan(mean):
        return "failed"
    return f"{mean:.{_DIGITS}f} ± {std:.{_DIGITS}f}"


def _name(row: dict) -> str:
    name = DISPLAY_NAMES.get(row["method"], row["method"])
    if row.get("n_failed"):
        name += f" ({row['n_failed']} failed)"
    return name


def format_markdown(summary: list[dict], caption: str | None = None) -> str:
    """Markdown table (rows = methods, columns R@K then N@K, ``mean ± std``); best mean per column
    in bold, runner-up underlined (``<u>..</u>``), ranked on the value shown (4 decimals)."""
    cols = _table_columns(summary)
    lines = []
    if caption:
        lines += [caption, ""]
    lines.append("| Method | " + " | ".join(h for h, _ in cols) + " |")
    lines.append("|---|" + "|".join(":-:" for _ in cols) + "|")
    ranks = {key: _ranks(summary, key) for _, key in cols}
    for i, row in enumerate(summary):
        cells = []
        for _, key in cols:
            c = _cell(row, key)
            r = ranks[key][i]
            cells.append(f"**{c}**" if r == 1 else f"<u>{c}</u>" if r == 2 else c)
        lines.append(f"| {_name(row)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_table(summary: list[dict], protocol: str | None = None) -> str:
    """The same table as plain text for a terminal: ``*`` marks the best mean of a column, ``+``
    the runner-up; ``protocol`` (how the test scores were obtained) ends the legend."""
    cols = _table_columns(summary)
    ranks = {key: _ranks(summary, key) for _, key in cols}
    body = []
    for i, row in enumerate(summary):
        cells = [_cell(row, key) + ("*" if ranks[key][i] == 1 else "+" if ranks[key][i] == 2 else " ")
                 for _, key in cols]
        body.append([_name(row)] + cells)
    header = ["method"] + [h for h, _ in cols]
    widths = [max(len(header[j]), *(len(b[j]) for b in body)) if body else len(header[j]) for j in range(len(header))]
    lines = ["  ".join(h.ljust(widths[0]) if j == 0 else h.rjust(widths[j] - 1) + " " for j, h in enumerate(header))]
    for b in body:
        lines.append("  ".join(c.ljust(widths[0]) if j == 0 else c.rjust(widths[j]) for j, c in enumerate(b)))
    lines = [ln.rstrip() for ln in lines]
    n = max((r["n_seeds"] + r.get("n_failed", 0) for r in summary), default=0)
    lines.append(f"mean ± std over {n} seed(s) (std ddof={1 if n > 1 else 0}); * best, + runner-up per column"
                 + (f"; {protocol}" if protocol else ""))
    return "\n".join(lines)


def read_runs(path) -> list[dict]:
    """Rows of a ``runs.csv`` with numbers parsed (for summaries and ``resume``)."""
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            row = {}
            for k, v in r.items():
                if k in ("method", "status", "error", "split_sha1", "protocol"):
                    row[k] = v
                elif v in ("True", "False"):
                    row[k] = v == "True"
                elif v == "":
                    row[k] = float("nan")
                else:
                    try:
                        row[k] = int(v)
                    except ValueError:
                        row[k] = float(v)
            rows.append(row)
    return rows


def _write_summary(out: Path, runs: list[dict], methods: list[str], ks, caption: str) -> list[dict]:
    summary = summarize(runs, [m for m in methods if any(r["method"] == m for r in runs)], ks)
    runio.write_csv(out / "summary.csv", summary)
    runio._atomic_write_bytes(out / "summary.md", format_markdown(summary, caption).encode())
    return summary


def run_compare(dataset, methods: list[str], seeds: list[int], base_config: FitConfig,
                method_options: dict[str, dict] | None = None, reporter_factory=None, out_dir=None,
                save_runs: bool = True, resume: bool = False, progress=None) -> list[dict]:
    """Train every method on every seed's split; return the per-method summary (see :func:`summarize`).

    Parameters
    ----------
    dataset : str, path or Dataset
        A shipped name or a file (loaded once with ``base_config.data_dir``), or a loaded Dataset.
    methods, seeds
        Combiner names (:data:`~pmtnumba.combiners.COMBINERS`) and seeds; each seed gives one split
        that all methods share.
    base_config : FitConfig
        Everything but the method (``method``/``method_options``/``seed``/``dataset`` are set per run).
    method_options : dict, optional
        ``{method: {option: value}}`` combiner hyper-parameters; checked before any training.
    reporter_factory : callable, optional
        ``reporter_factory(method, seed, trainer) -> Reporter`` for each run's progress; it also
        receives a start line and a result line per run through ``message``.
    out_dir : path, optional
        Where ``config.json``, ``runs.csv``, ``summary.csv``, ``summary.md`` (and each run's
        ``<method>/seed<k>/`` directory if ``save_runs``) are written.
    resume : bool
        With ``out_dir``: keep the finished runs of an earlier ``runs.csv`` there (same base
        configuration required) and train only the missing (method, seed) pairs.
    progress : callable, optional
        ``progress(event)`` before and after each run: ``event`` has ``event`` ("start"/"end"),
        ``method``, ``seed``, ``done``, ``total``, ``eta_seconds`` (None before a run finished;
        see :mod:`pmtnumba.progress`) and ``line`` (``4/27 runs done | 5m10s elapsed | ~31m left``).
        The same line goes to each run's reporter after the run.
    """
    method_options = {k: dict(v) for k, v in (method_options or {}).items()}
    methods = _check_methods(methods, method_options)
    seeds = _check_seeds(seeds)
    base, ds = _base_config(dataset, base_config, methods[0])
    cmp = _Comparison(None if out_dir is None else Path(out_dir), base, ds,
                      _compare_meta(base, ds, methods, seeds, method_options))
    if resume:
        cmp.resume(methods, method_options)
    cmp.write_meta()
    n_total = len(methods) * len(seeds)
    order = [(m, s) for s in seeds for m in methods]
    prog = RunProgress(n_total, done=sum(1 for p in order if p in cmp.done))
    emit = progress or (lambda event: None)
    i_run = 0
    for seed in seeds:
        split = None
        for method in methods:
            i_run += 1
            if (method, seed) in cmp.done:
                continue
            if split is None:  # once per seed, shared by all its methods
                split = make_split(ds, seed, **base.split_options())
            todo = [m for m, s in order if (m, s) not in cmp.done]
            emit({"event": "start", "method": method, "seed": seed, "index": i_run, "done": prog.done,
                  "total": n_total, "eta_seconds": prog.eta(todo), "line": prog.line(todo)})
            t_run = time.perf_counter()
            # the count and estimate close the previous run's lines; the first start line says them once
            rec, reporter = _run_one(cmp, split, method, seed, method_options, reporter_factory, save_runs,
                                     f"[{i_run}/{n_total}]", prog.line(todo) if prog.n_session == 0 else "")
            prog.finished(method, time.perf_counter() - t_run)
            cmp.add(rec)
            todo = [m for m, s in order if (m, s) not in cmp.done]
            reporter.message(prog.line(todo))  # off a terminal: the plain line per finished run
            emit({"event": "end", "method": method, "seed": seed, "index": i_run, "done": prog.done,
                  "total": n_total, "eta_seconds": prog.eta(todo), "line": prog.line(todo),
                  "status": rec.get("status")})
    return cmp.summary(methods)


def _base_config(dataset, base_config: FitConfig, method: str) -> tuple[FitConfig, Dataset]:
    """A private copy of ``base_config`` with the data set set and validated, and the data set."""
    base = dataclasses.replace(base_config, tasks=None if base_config.tasks is None else list(base_config.tasks),
                               method_options={}, task_options=dict(base_config.task_options))
    if isinstance(dataset, Dataset):
        ds = dataset
        base.dataset = ds.name
    else:
        ds = load_dataset(dataset, **base.load_options())
        base.dataset = str(dataset)
    base.method = method
    base.validate()
    return base, ds


def _compare_meta(base: FitConfig, ds: Dataset, methods, seeds, method_options) -> dict:
    """What ``config.json`` of a comparison records."""
    return {
        "dataset": base.dataset,
        "dataset_stats": {"name": ds.name, "n_users": int(ds.n_users), "n_items": int(ds.n_items),
                          "n_interactions": int(ds.n_interactions)},
        "protocol": protocol_label(ds, base.select_on, base.holdout),
        "methods": methods,
        "seeds": seeds,
        "method_options": method_options,
        "base_config": {k: v for k, v in base.to_dict().items() if k not in ("method", "method_options", "seed")},
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "versions": _versions(),
    }


def _run_one(cmp: "_Comparison", split, method: str, seed: int, method_options, reporter_factory,
             save_runs: bool, progress: str, status: str = "") -> tuple[dict, Reporter]:
    """Train one (method, seed) on ``split``; its ``runs.csv`` row (``status=diverged`` if it
    diverged) and the run's reporter."""
    base = cmp.base
    split_hash = _split_fingerprint(split.labels)
    comb_opts, overrides = _split_overrides(method_options.get(method, {}))
    tasks = ["bpr"] if method == BPR_ONLY else None if base.tasks is None else list(base.tasks)
    cfg = dataclasses.replace(base, method=_combiner_of(method), method_options=comb_opts, seed=seed, **overrides,
                              tasks=tasks,
                              task_options={k: dict(v) for k, v in base.task_options.items()})
    trainer = Trainer(cfg, split=split)
    if cmp.tasks_resolved is None and method != BPR_ONLY:
        cmp.tasks_resolved = list(trainer.cfg.tasks)
        cmp.write_meta()
    reporter = reporter_factory(method, seed, trainer) if reporter_factory else Reporter()
    trainer.reporter = reporter
    reporter.message(f"{progress} {method} seed {seed}" + (f" | {status}" if status else ""))
    run_dir = cmp.out / method / f"seed{seed}" if (cmp.out is not None and save_runs) else None
    try:
        result = trainer.fit(out_dir=run_dir, overwrite=True)  # the comparison owns its run dirs (runs.csv)
    except TrainingDiverged as exc:
        reporter.message(f"{method} seed {seed}: diverged ({exc}); going on")
        return ({"method": method, "seed": seed, "status": "diverged", "protocol": cmp.meta["protocol"],
                 "error": str(exc), "split_sha1": split_hash}, reporter)
    rec = _run_record(method, seed, split_hash, result, cfg.monitor, split.protocol)
    reporter.message(
        f"{method} seed {seed}: best epoch {rec['best_epoch']} of {rec['epochs_run']}, "
        f"test R@20 {rec['recall@20']:.4f} N@20 {rec['ndcg@20']:.4f}, {rec['seconds_per_epoch']:.2f} s/epoch"
    )
    return rec, reporter


class _Comparison:
    """The state of one comparison: its finished runs and what its files say."""

    def __init__(self, out: Path | None, base: FitConfig, ds: Dataset, meta: dict):
        self.out, self.base, self.ds, self.meta = out, base, ds, meta
        self.runs: list[dict] = []
        self.tasks_resolved = None  # the task list the Trainer resolves (the data set's default if None)

    @property
    def done(self) -> set:
        return {(r["method"], int(r["seed"])) for r in self.runs}

    def resume(self, methods, method_options) -> None:
        """Keep the finished runs of an earlier ``runs.csv`` in ``out`` (same configuration required)."""
        out, meta = self.out, self.meta
        if out is None or not (out / "runs.csv").is_file():
            return
        old = runio.read_json(out / "config.json") if (out / "config.json").is_file() else {}
        old_base = dict(old.get("base_config", {}))
        new_base = dict(meta["base_config"])
        for k, v in {"valid_file": None, "test_file": None, "holdout": 0.1, "select_on": "valid", "reg": 0.0}.items():
            old_base.setdefault(k, v)  # comparisons written before fixed splits and --reg
        if self.base.tasks is None:  # the earlier run stored the resolved task list
            old_base.pop("tasks", None), new_base.pop("tasks", None)
        if old_base != new_base or old.get("dataset") != meta["dataset"]:
            raise PmtError(f"{out}: cannot resume, the earlier comparison used another configuration "
                           f"(see {out / 'config.json'}); use another --out")
        runs = [r for r in read_runs(out / "runs.csv") if r.get("status") == "ok"]
        for r in runs:  # rows written before runs.csv had the column: the same configuration, so the same protocol
            r.setdefault("protocol", meta["protocol"])
        for m in sorted({r["method"] for r in runs} & set(methods)):
            if old.get("method_options", {}).get(m, {}) != method_options.get(m, {}):
                raise PmtError(f"{out}: cannot resume, method {m!r} ran with other options before")
        # earlier runs of other methods or seeds stay in runs.csv and the summary
        all_methods = list(dict.fromkeys([*old.get("methods", []), *(r["method"] for r in runs), *methods]))
        all_seeds = list(dict.fromkeys([*old.get("seeds", []), *(int(r["seed"]) for r in runs), *meta["seeds"]]))
        meta.update(methods=all_methods, seeds=all_seeds, created=old.get("created", meta["created"]),
                    method_options={**old.get("method_options", {}), **method_options})
        self.runs = runs
        if runs:  # the earlier config.json has the resolved task list
            self.tasks_resolved = old.get("base_config", {}).get("tasks") or None

    def write_meta(self) -> None:
        if self.out is not None:
            m = dict(self.meta)
            if self.tasks_resolved is not None:
                m["base_config"] = dict(m["base_config"], tasks=self.tasks_resolved)
            m["updated"] = time.strftime("%Y-%m-%d %H:%M:%S")
            runio.write_json(self.out / "config.json", m)

    def caption(self) -> str:
        n = len(self.meta["seeds"])
        tasks = ",".join(self.tasks_resolved or self.base.tasks or [])
        where = ("the epoch selected on test, OPTIMISTIC" if self.base.select_on == "test" else "the best validation epoch")
        return (f"{self.ds.name}: test metrics at {where} (tasks {tasks}; {self.meta['protocol']}); mean ± std over "
                f"{n} seed(s) (std ddof={1 if n > 1 else 0}); best in bold, runner-up underlined.")

    def add(self, rec: dict) -> None:
        """Keep a finished run; rewrite ``runs.csv`` and the summary so an interruption loses nothing."""
        self.runs.append(rec)
        if self.out is not None:
            all_seeds, all_methods = self.meta["seeds"], self.meta["methods"]
            self.runs.sort(key=lambda r: (all_seeds.index(int(r["seed"])), all_methods.index(r["method"])))
            runio.write_csv(self.out / "runs.csv", self.runs)
            _write_summary(self.out, self.runs, all_methods, tuple(self.base.ks), self.caption())

    def summary(self, methods) -> list[dict]:
        if self.out is not None:
            return _write_summary(self.out, self.runs, self.meta["methods"], tuple(self.base.ks), self.caption())
        return summarize(self.runs, methods, tuple(self.base.ks))
