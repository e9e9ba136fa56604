"""``pmtnumba sweep run`` / ``pmtnumba sweep report``: hyper-parameter search on Optuna + Dask.

Thin over :mod:`pmtnumba.sweep` (wired into the command group by ``cli/main.py``).
"""

from __future__ import annotations

import math
from pathlib import Path

import click

from pmtnumba.errors import PmtError

from .split_options import split_kwargs, split_options
from .common import friendly_errors


@click.group("sweep")
def sweep():
    """Hyper-parameter search: Optuna studies (grid or TPE, with pruning) whose trials run on Dask.

    \b
    pmtnumba sweep run DIR --dataset office --methods bpr-only,ew,pmtrec --space paper --trials 30
    pmtnumba sweep report DIR --seeds 0-4
    """


def _fmt_eta(s: float) -> str:
    from pmtnumba.progress import format_seconds

    return format_seconds(s)


class _Status:
    """The live line of a sweep command on a terminal: units done / total, the seconds since the
    start (ticking) and the estimate made when the last unit finished, counted down since."""

    def __init__(self, unit: str):
        import time

        self.clock = time.monotonic
        self.t0 = self.clock()
        self.unit, self.done, self.total, self.eta, self.t_eta = unit, None, None, None, None

    def update(self, done, total, eta_seconds):
        self.done, self.total, self.eta, self.t_eta = done, total, eta_seconds, self.clock()

    def text(self) -> str:
        now = self.clock()
        head = "starting" if self.total is None else f"{self.done}/{self.total} {self.unit} done"
        left = "?" if self.eta is None or math.isnan(self.eta) else _fmt_eta(max(0.0, self.eta - (now - self.t_eta)))
        return f"{head} | {_fmt_eta(now - self.t0)} elapsed | ~{left} left"


def _device_here(device: str | None, scheduler: str | None) -> str | None:
    """``--device`` as the trials get it: resolved (and checked) here for the embedded cluster,
    whose workers share this machine's GPU; left to each worker with ``--scheduler``."""
    if device in (None, "cpu") or scheduler is not None:
        return device
    from .common import pick_device

    return pick_device(device)


def _methods(text: str) -> list[str]:
    from pmtnumba.sweep.space import BPR_ONLY
    from pmtnumba.training.compare import PAPER_METHODS

    out = []
    for m in (x.strip().lower() for x in text.split(",") if x.strip()):
        out += [BPR_ONLY, *PAPER_METHODS] if m == "all" else [m]
    return list(dict.fromkeys(out))


@sweep.command("run")
@click.argument("sweep_dir", type=click.Path(file_okay=False))
@click.option("--dataset", required=True,
              help="A shipped data set name or a path to a CSV/TSV of interactions (workers must see it).")
@split_options(select=False)
@click.option("--tasks", default=None, help="Comma-separated tasks; default: the data set's paper task set.")
@click.option("--methods", default="bpr-only,ew,pmtrec", show_default=True,
              help="Comma-separated methods, each its own study: bpr-only (the main task alone), ew, rlw, graddrop, "
                   "pcgrad, gradvac, cagrad, aligned-mtl, nash-mtl, pmtrec, pmtrec-nofocus, pmtrec-nobalance; "
                   "`all` = bpr-only and the paper's nine.")
@click.option("--space", "space_src", default=None,
              help="`paper` (the paper's grid: lr, wd, alpha 1.0-1.2 step 0.02, tau 10..1e-6) or a JSON file "
                   "{param: [values], \"methods\": {method: {param: [values]}}}; the options below replace its lists.")
@click.option("--lr", default=None, help="Learning rates to try, comma-separated (e.g. 0.01,0.005).")
@click.option("--wd", default=None, help="Weight decays to try, comma-separated (e.g. 1e-4,1e-6).")
@click.option("--alpha", default=None, help="PMTRec task-focusing bases to try (pmtrec, pmtrec-nobalance).")
@click.option("--tau", default=None, help="PMTRec temperatures to try (pmtrec, pmtrec-nofocus).")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=V1,V2",
              help="Values of another combiner option, searched for the methods that take it "
                   "(e.g. -p calpha=0.2,0.5 -p beta=0.1,0.5); repeatable.")
@click.option("--trials", default=None, type=int,
              help="TPE with this many trials per method (at most its grid size); omit for the exhaustive grid.")
@click.option("--pruner", default="median", show_default=True, type=click.Choice(["median", "hyperband", "none"]),
              help="Optuna pruner on the per-epoch validation metric.")
@click.option("--prune-startup", default=5, show_default=True, type=int,
              help="Median pruner: trials of a method finished before any is pruned.")
@click.option("--prune-warmup", default=5, show_default=True, type=int,
              help="Epochs of a trial before it may be pruned.")
@click.option("--adam", "adam_mode", default="sparse", show_default=True, type=click.Choice(["sparse", "dense"]),
              help="Adam mode of every trial (dense is the paper's torch.optim.Adam setting).")
@click.option("--reg", default=0.0, show_default=True, type=float,
              help="The published LightGCN/NGCF regulariser: reg * 0.5 * (||e_u||^2 + ||e_i||^2 + ||e_j||^2) / B over the batch's BPR triplets on the ego (layer-0) embeddings, added to the loss and, after the combiner, to the gradient (docs/gradients.md section 12). 0: off.")
@click.option("--encoder", default="mf", show_default=True, type=click.Choice(["mf", "lightgcn", "ngcf"]),
              help="Encoder of every trial (the table itself, or graph propagation).")
@click.option("--layers", default=3, show_default=True, type=int, help="Propagation layers K (lightgcn, ngcf).")
@click.option("--mess-dropout", default=0.1, show_default=True, type=float, help="NGCF message dropout.")
@click.option("--dim", default=32, show_default=True, type=int, help="Embedding size.")
@click.option("--batch-size", default=2048, show_default=True, type=int, help="Training interactions per step.")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda", "auto"]),
              help="Where every trial (and the report's seed runs) trains: cpu, cuda (each worker on its GPU; needs "
                   "the `cuda` extra there) or auto (the embedded cluster: decided here, once; with --scheduler: by "
                   "each worker). A sweep may go on on another device than it began on; trials.csv says where "
                   "each trial ran.")
@click.option("--epochs", default=300, show_default=True, type=int, help="Maximum epochs per trial.")
@click.option("--patience", default=10, show_default=True, type=int, help="Validations without improvement before stopping.")
@click.option("--eval-every", default=1, show_default=True, type=int, help="Validate every N epochs.")
@click.option("--monitor", default="recall@20", show_default=True, help="Validation metric searched and pruned on.")
@click.option("--aux-sampling", default="anchored", show_default=True, type=click.Choice(["anchored", "independent"]),
              help="Auxiliary samples anchored on the batch, or their own batch.")
@click.option("--seed", default=0, show_default=True, type=int, help="Split and initialisation seed of every trial.")
@click.option("--data-dir", default=None, help="Folder of the shipped .npz files (default: the repo's datasets/).")
@click.option("--storage", default=None,
              help="Optuna storage: a database URL (postgresql://..., sqlite:///f.db) or journal:PATH; "
                   "default: journal file DIR/study.journal.")
@click.option("--scheduler", default=None, help="Address of an existing Dask scheduler (tcp://HOST:8786); "
                                                "default: an embedded local cluster.")
@click.option("--workers", "n_workers", default=None, type=int,
              help="Embedded cluster: single-threaded worker processes (default: one per core).")
@click.option("--quiet", is_flag=True, help="Only the final summary.")
@friendly_errors
def run(sweep_dir, dataset, valid_file, test_file, holdout, tasks, methods, space_src, lr, wd, alpha, tau, params, trials, pruner, prune_startup,
        prune_warmup, adam_mode, reg, encoder, layers, mess_dropout, dim, batch_size, device, epochs, patience, eval_every, monitor, aux_sampling, seed, data_dir,
        storage, scheduler, n_workers, quiet):
    """Search each method's hyper-parameters on validation; re-running the same command continues it.

    Every trial trains one configuration on the split of --seed (early stopping on --monitor) and is
    recorded in the study with its resolved configuration, validation and test metrics of the best
    epoch, seconds, package version and git commit (DIR/trials.csv lists them all).
    """
    from pmtnumba.data import SHIPPED
    from pmtnumba.sweep.space import build_space
    from pmtnumba.sweep.study import run_sweep, sweep_settings
    from pmtnumba.training import FitConfig
    from pmtnumba.training.config import recommended_lr_wd

    overrides = {"lr": lr, "wd": wd, "alpha": alpha, "tau": tau}
    for p in params:
        name, sep, vals = p.partition("=")
        if not sep or not name.strip():
            raise PmtError(f"-p expects NAME=V1,V2, got {p!r}")
        overrides[name.strip().replace("-", "_")] = vals
    space = build_space(space_src, overrides)
    task_list = None if tasks is None else [t.strip() for t in tasks.split(",") if t.strip()]
    if dataset not in SHIPPED and Path(dataset).exists():
        dataset = str(Path(dataset).resolve())  # workers may run elsewhere
    name = dataset if dataset in SHIPPED else ""
    from pmtnumba.tasks import default_tasks

    base_lr, base_wd = recommended_lr_wd(name, task_list if task_list is not None else default_tasks(name))
    cfg = FitConfig(dataset=dataset, tasks=task_list, encoder=encoder, layers=layers, mess_dropout=mess_dropout, dim=dim, batch_size=batch_size, lr=base_lr, wd=base_wd,
                    adam_mode=adam_mode, reg=reg, epochs=epochs, patience=patience, eval_every=eval_every, monitor=monitor,
                    aux_sampling=aux_sampling, data_dir=data_dir, device=device,
                    **split_kwargs(valid_file, test_file, holdout, absolute=True))
    cfg.device = _device_here(device, scheduler)
    settings = sweep_settings(
        name=Path(sweep_dir).resolve().name, dataset=dataset, base_config=cfg, methods=_methods(methods), space=space,
        trials=trials, pruner={"name": pruner, "startup": prune_startup, "warmup": prune_warmup}, seed=seed,
        storage=storage)
    if not quiet:
        for m in settings["methods"]:
            sp = space.for_method(m)
            desc = " ".join(f"{k}={','.join(f'{v:g}' if isinstance(v, float) else str(v) for v in vals)}"
                            for k, vals in sp.items()) or "(no parameters: one trial)"
            click.echo(f"{m}: {desc} | grid {space.grid_size(m)}", err=True)

    from pmtnumba.progress import LiveLine

    status = _Status("trials")
    live = LiveLine(status.text, enabled=None if not quiet else False)

    def progress(ev):
        if quiet:
            return
        if "message" in ev:
            live.echo(ev["message"])
            return
        status.update(ev["done"], ev["total"], ev["eta_seconds"])
        val = "" if ev.get("value") is None else f" valid {ev['value']:.4f}"
        err = f" ({ev['error']})" if ev["status"] == "fail" else ""
        ps = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in ev["params"].items())
        secs = f" {ev['seconds']:.0f}s" if ev.get("seconds") is not None else ""
        if ev.get("duplicate_of") is not None:
            secs = f" (repeat of #{ev['duplicate_of']}: answered from it, not counted)"
        live.echo(f"[{ev['done']}/{ev['total']}] {ev['method']} #{ev['number']} {ev['status']}{val} {ps}{secs}{err}"
                  f" | left ~{_fmt_eta(ev['eta_seconds'])}")

    with live:
        out = run_sweep(sweep_dir, settings, scheduler=scheduler, n_workers=n_workers, progress=progress)
    for m, r in out.items():
        best = "none complete" if r["best_params"] is None else \
            f"best valid {r['best_value']:.4f} at {r['best_params']}"
        click.echo(f"{m}: {r['counted']}/{r['target']} trials, {best}")
    click.echo(f"trials: {Path(sweep_dir) / 'trials.csv'}; next: pmtnumba sweep report {sweep_dir} --seeds 0-4")


@sweep.command("report")
@click.argument("sweep_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--seeds", default="0-4", show_default=True,
              help="Seeds to re-run each method's best configuration on (comma-separated or ranges).")
@click.option("--sensitivity/--no-sensitivity", default=True, show_default=True,
              help="PMTRec's validation/test R@20 against alpha and tau (others at their best); may train extra runs.")
@click.option("--alpha", "sens_alpha", default=None,
              help="Sensitivity: alpha values to train PMTRec's best configuration with (e.g. 1.0,1.05,1.1,1.15,1.2); "
                   "default: the search space's. Points the study has are not trained again.")
@click.option("--tau", "sens_tau", default=None,
              help="Sensitivity: tau values (e.g. 1,1e-2,1e-4,1e-6); default: the search space's.")
@click.option("--ablation/--no-ablation", default=True, show_default=True,
              help="Also run PMTRec without task focusing / magnitude balancing at PMTRec's best configuration "
                   "when those ablations were not searched themselves.")
@click.option("--reuse-study-seed/--retrain-study-seed", default=True, show_default=True,
              help="On the sweep's own --seed take each best trial's metrics from the study (the same run) "
                   "instead of training it again.")
@click.option("--storage", default=None, help="The sweep's Optuna storage if not the one in sweep.json.")
@click.option("--scheduler", default=None, help="Address of an existing Dask scheduler (default: embedded cluster).")
@click.option("--workers", "n_workers", default=None, type=int, help="Embedded cluster: worker processes.")
@click.option("--device", default=None, type=click.Choice(["cpu", "cuda", "auto"]),
              help="Where the runs the report trains go (as `sweep run --device`); default: the sweep's. "
                   "Runs an earlier report trained on another device are reused.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@friendly_errors
def report(sweep_dir, seeds, sensitivity, sens_alpha, sens_tau, ablation, reuse_study_seed, storage, scheduler,
           n_workers, device, quiet):
    """Best configuration per method, re-run on --seeds: Table 2, ablation, alpha/tau sensitivity.

    Writes DIR/report/: best.csv, table2.csv/.md (mean ± std and paired t-tests against the best
    other method), ablation.csv/.md, sensitivity.csv, runs.csv, and PNGs with matplotlib. Re-running
    continues the seed runs already done.
    """
    from pmtnumba.sweep.report import run_report
    from pmtnumba.sweep.space import parse_list

    from .compare_cmd import _parse_seeds

    from pmtnumba.progress import LiveLine

    status = _Status("tasks")
    live = LiveLine(status.text, enabled=None if not quiet else False)

    def progress(text, ev=None):
        if ev is not None:
            status.update(ev["done"], ev["total"], ev["eta_seconds"])
        live.echo(text)

    values = {p: parse_list(text, p) for p, text in (("alpha", sens_alpha), ("tau", sens_tau)) if text is not None}
    device = _device_here(device, scheduler)
    with live:
        paths = run_report(sweep_dir, _parse_seeds(seeds), scheduler=scheduler, n_workers=n_workers, storage=storage,
                           sensitivity=sensitivity, ablation=ablation, reuse_study_seed=reuse_study_seed,
                           sensitivity_values=values, device=device, progress=None if quiet else progress)
    click.echo(Path(paths["table2"]).read_text())
    if "ablation" in paths:
        click.echo(Path(paths["ablation"]).read_text())
    click.echo("written: " + ", ".join(str(p) for p in paths.values()))
