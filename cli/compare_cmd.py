"""``pmtnumba compare``: several methods x several seeds on one data set, one Table-2 style table.

Wired into the command group by ``cli/main.py`` (``main.add_command(compare)``); the engine is
:func:`pmtnumba.training.compare.run_compare`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import click

from pmtnumba.errors import PmtError
from pmtnumba.progress import format_seconds

from .split_options import split_kwargs, split_options
from .common import DEVICE_HELP, ClickReporter, device_line, friendly_errors, method_options, pick_device


class _CompareReporter(ClickReporter):
    """ClickReporter for one run of a comparison; ``--quiet`` also silences its messages. On a
    terminal the epoch's progress bar is labelled with the comparison's runs done and time left."""

    status = ""

    def epoch_start(self, epoch, n_steps):
        super().epoch_start(epoch, n_steps)
        if self.bar is not None and self.status:
            self.bar.label = f"[{self.status}] epoch {epoch:3d}"

    def message(self, text):
        if not self.quiet:
            click.echo(text, err=True)


def _parse_methods(text: str) -> list[str]:
    from pmtnumba.combiners import COMBINERS
    from pmtnumba.training.compare import BPR_ONLY, PAPER_METHODS

    names = [m.strip().lower() for m in text.split(",") if m.strip()]
    if not names:
        raise PmtError("--methods is empty")
    out = []
    for m in names:
        out += list(PAPER_METHODS) if m == "all" else [m]
    out = list(dict.fromkeys(out))
    unknown = [m for m in out if m not in COMBINERS and m != BPR_ONLY]
    if unknown:
        raise PmtError(f"unknown method(s) {', '.join(unknown)} in --methods; choose from {BPR_ONLY}, "
                       f"{', '.join(COMBINERS)} or all")
    return out


def _parse_seeds(text: str) -> list[int]:
    seeds = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            rng = range(int(lo), int(hi) + 1) if sep else [int(part)]
        except ValueError:
            raise PmtError(f"--seeds expects comma-separated integers or ranges like 0-4, got {text!r}") from None
        seeds += list(rng)
    if not seeds:
        raise PmtError(f"--seeds gives no seed: {text!r}")
    if min(seeds) < 0:
        raise PmtError(f"--seeds must be >= 0, got {text!r}")
    return list(dict.fromkeys(seeds))


def _per_method_options(methods, alpha, tau, drop_absent, pairs) -> dict[str, dict]:
    """``{method: combiner kwargs}`` from --alpha/--tau/--drop-absent (pmtrec methods) and -o METHOD:KEY=VALUE."""
    by_method: dict[str, list[str]] = {m: [] for m in methods}
    for p in pairs:
        m, sep, kv = p.partition(":")
        m = m.strip().lower()
        if not sep or not m or "=" not in kv:
            raise PmtError(f"-o expects METHOD:KEY=VALUE (e.g. -o cagrad:calpha=0.4), got {p!r}")
        if m not in by_method:
            raise PmtError(f"-o {p}: method {m!r} is not among --methods ({', '.join(methods)})")
        by_method[m].append(kv)
    from pmtnumba.combiners.pmtrec import FIXED

    pm = [m for m in methods if m.startswith("pmtrec")]
    for name, val in (("alpha", alpha), ("tau", tau), ("drop-absent", drop_absent or None)):
        if val is not None and not [m for m in pm if name not in FIXED.get(m, {})]:
            raise PmtError(f"--{name} applies to the pmtrec methods that do not fix it, and none is among --methods")
    opts = {}
    for m in methods:
        is_pm = m.startswith("pmtrec")
        fixed = FIXED.get(m, {})  # an ablation's fixed value is not overridden by the shared option
        train, rest = {}, []
        for kv in by_method[m]:  # lr and wd are training settings (TRAINING_OVERRIDES), not combiner options
            k, _, v = kv.partition("=")
            if k.strip() in ("lr", "wd"):
                try:
                    val = float(v)
                except ValueError:
                    raise PmtError(f"-o {m}:{kv}: {k.strip()} takes a number") from None
                if not math.isfinite(val) or val < 0 or (k.strip() == "lr" and val == 0):
                    raise PmtError(f"-o {m}:{kv}: {k.strip()} must be a finite number {'> 0' if k.strip() == 'lr' else '>= 0'}")
                train[k.strip()] = val
            else:
                rest.append(kv)
        o = method_options("ew" if m == "bpr-only" else m, alpha if is_pm and "alpha" not in fixed else None,
                           tau if is_pm and "tau" not in fixed else None, drop_absent and is_pm, rest)
        o.update(train)
        if o:
            opts[m] = o
    return opts


@click.command("compare")
@click.option("--dataset", required=True,
              help="A shipped data set name (see `pmtnumba datasets`) or a path to a CSV/TSV of interactions.")
@split_options
@click.option("--methods", required=True,
              help="Comma-separated methods, or `all` (ew, rlw, graddrop, pcgrad, gradvac, cagrad, aligned-mtl, "
                   "nash-mtl, pmtrec); pmtrec-nofocus, pmtrec-nobalance and bpr-only (the main task alone, EW) may "
                   "be added.")
@click.option("--seeds", default="0,1,2", show_default=True,
              help="Comma-separated seeds or ranges (0-4); each seed gives one split shared by all methods.")
@click.option("--tasks", default=None, help="Comma-separated tasks; default: the data set's paper task set.")
@click.option("--alpha", default=None, type=float, help="PMTRec task-focusing base (pmtrec methods but pmtrec-nofocus, which fixes it at 1; default 1.1).")
@click.option("--tau", default=None, type=float, help="PMTRec softmax temperature (pmtrec methods but pmtrec-nobalance, which fixes it at 1; default 1e-4).")
@click.option("--drop-absent", is_flag=True, help="PMTRec: leave tasks with a zero gradient on a row out of its softmax.")
@click.option("-o", "--method-opt", "method_opts", multiple=True, metavar="METHOD:KEY=VALUE",
              help="A hyper-parameter of one method, e.g. -o cagrad:calpha=0.4 -o rlw:per=epoch; lr and wd override the training settings for that method, e.g. -o pmtrec:wd=1e-5 (repeatable).")
@click.option("--encoder", default="mf", show_default=True, type=click.Choice(["mf", "lightgcn", "ngcf"]),
              help="Encoder of the final embeddings (every method trains the same encoder).")
@click.option("--layers", default=3, show_default=True, type=int, help="Propagation layers K (lightgcn, ngcf).")
@click.option("--dim", default=32, show_default=True, type=int, help="Embedding size.")
@click.option("--batch-size", default=2048, show_default=True, type=int, help="Training interactions per step.")
@click.option("--lr", default=None, type=float,
              help="Adam learning rate of all methods (per method: -o METHOD:lr=...); default: as `fit`, the pair tuned "
                   "per shipped data set and kind of task set (bpr-only vs multi-task), else 0.01.")
@click.option("--wd", default=None, type=float,
              help="Adam weight decay, added to the gradient (per method: -o METHOD:wd=...); default: as `fit`, "
                   "tuned per shipped data set and kind of task set, else 1e-4.")
@click.option("--reg", default=0.0, show_default=True, type=float,
              help="The published LightGCN/NGCF regulariser: reg * 0.5 * (||e_u||^2 + ||e_i||^2 + ||e_j||^2) / B over the batch's BPR triplets on the ego (layer-0) embeddings, added to the loss and, after the combiner, to the gradient (docs/gradients.md section 12). 0: off.")
@click.option("--adam", "adam_mode", default="sparse", show_default=True, type=click.Choice(["sparse", "dense"]),
              help="Adam of every method: sparse updates only the rows a step touched; dense every row every step "
                   "(as PyTorch's Adam, the paper's setting).")
@click.option("--epochs", default=300, show_default=True, type=int, help="Maximum epochs.")
@click.option("--patience", default=10, show_default=True, type=int, help="Validations without improvement before stopping.")
@click.option("--eval-every", default=1, show_default=True, type=int, help="Validate every N epochs (and after the last).")
@click.option("--monitor", default="recall@20", show_default=True, help="Validation metric for early stopping and the best epoch.")
@click.option("--threads", default=None, type=int, help="Numba threads (default: all cores).")
@click.option("--data-dir", default=None, help="Folder of the shipped .npz files (default: the repo's datasets/).")
@click.option("--out", "out_dir", default=None,
              help="Output folder (default: runs/compare-<dataset>-<date>-<time>).")
@click.option("--run-dirs/--no-run-dirs", default=True, show_default=True,
              help="Also keep each run's own directory <out>/<method>/seed<k>/ (curve, metrics, embeddings).")
@click.option("--record-weights/--no-record-weights", default=False, show_default=True,
              help="PMTRec: record per-epoch weight distributions (weights.csv in its run directory); "
                   "off by default so that seconds per epoch compare the combiners alone.")
@click.option("--resume", is_flag=True,
              help="Keep the finished runs of an earlier comparison in --out (same settings) and run the missing ones.")
@click.option("--quiet", is_flag=True, help="No progress output; only the final table.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["cpu", "cuda", "auto"]), help=DEVICE_HELP)
@friendly_errors
def compare(dataset, valid_file, test_file, holdout, select_on, methods, seeds, tasks, alpha, tau, drop_absent, method_opts, encoder, layers, dim, batch_size, lr, wd, reg, adam_mode, epochs,
            patience, eval_every, monitor, threads, data_dir, out_dir, run_dirs, record_weights, resume, quiet, device):
    """Train several methods on the same splits (one per seed) and tabulate mean ± std test metrics.

    Every method of a seed trains on that seed's split with the same settings; the table has the
    test Recall and NDCG @5/10/20/40 of the best validation epoch, mean ± std over the seeds, best
    per column marked. Files in --out: runs.csv (one row per method and seed, updated after each
    run), summary.csv, summary.md (the table in Markdown: best bold, runner-up underlined),
    config.json.
    """
    from pmtnumba.training import FitConfig
    from pmtnumba.data.split import OPTIMISTIC
    from pmtnumba.training.compare import default_lr_wd, format_table, run_compare

    device = pick_device(device)
    method_list = _parse_methods(methods)
    seed_list = _parse_seeds(seeds)
    opts = _per_method_options(method_list, alpha, tau, drop_absent, method_opts)
    task_list = None if tasks is None else [t.strip() for t in tasks.split(",") if t.strip()]
    lr, wd = default_lr_wd(dataset, method_list, task_list, opts, lr, wd)
    cfg = FitConfig(
        dataset=dataset, tasks=task_list,
        method=method_list[0], encoder=encoder, layers=layers, dim=dim, batch_size=batch_size, lr=lr, wd=wd, reg=reg, adam_mode=adam_mode, epochs=epochs, patience=patience,
        eval_every=eval_every, monitor=monitor, threads=threads, data_dir=data_dir, record_weights=record_weights,
        device=device, **split_kwargs(valid_file, test_file, holdout, select_on, absolute=True),
    )
    cfg.validate()
    if out_dir is None:
        out_dir = str(Path("runs") / f"compare-{Path(dataset).stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    if not quiet:
        click.echo(f"compare on {dataset}: methods {','.join(method_list)} | seeds {','.join(map(str, seed_list))} "
                   f"| output {out_dir} | {device_line(device)}", err=True)

    status = {"text": ""}

    def progress(ev):  # the bar label of the next run: runs done and the time left
        eta = "?" if ev["eta_seconds"] is None else format_seconds(ev["eta_seconds"])
        status["text"] = f"{ev['index']}/{ev['total']} ~{eta} left"

    def reporter_factory(method, seed, trainer):
        rep = _CompareReporter(quiet=quiet)
        rep.names = [t.name for t in trainer.tasks]
        rep.status = status["text"]
        return rep

    t0 = time.perf_counter()
    summary = run_compare(dataset, method_list, seed_list, cfg, method_options=opts,
                          reporter_factory=reporter_factory, out_dir=out_dir, save_runs=run_dirs, resume=resume,
                          progress=progress)
    click.echo(format_table(summary, protocol=OPTIMISTIC if select_on == "test" else None))
    out = Path(out_dir)
    files = ", ".join(f for f in ("runs.csv", "summary.csv", "summary.md", "config.json") if (out / f).is_file())
    extra = " and <method>/seed<k>/ run directories" if run_dirs else ""
    click.echo(f"written to {out}: {files}{extra} ({time.perf_counter() - t0:.0f}s)")
