"""``pmtnumba``: the command line. Thin: parse options, call the engine, print.

Every user-facing error (bad argument, bad file, diverged training) is printed as one line
``error: ...`` with exit status 2; set ``PMTNUMBA_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import click
import numpy as np

from pmtnumba.errors import PmtError

# shared with the command modules (compare_cmd)
from .common import ClickReporter, friendly_errors, method_options, print_metrics


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pmtnumba")
def main():
    """pmtnumba: personalized multi-task training (PMTRec) of recommender embeddings."""


@main.command()
@click.option("--dataset", default="videogame", show_default=True,
              help="A shipped data set name (see `pmtnumba datasets`) or a path to a CSV/TSV of interactions.")
@click.option("--tasks", default=None, help="Comma-separated tasks; default: the data set's paper task set.")
@click.option("--method", default="ew", show_default=True,
              type=click.Choice(["ew", "rlw", "graddrop", "pcgrad", "gradvac", "cagrad", "aligned-mtl", "nash-mtl",
                                 "pmtrec", "pmtrec-nofocus", "pmtrec-nobalance"]),
              help="Gradient combiner (docs/combiners.md).")
@click.option("--alpha", default=None, type=float, help="PMTRec task-focusing base (default 1.1).")
@click.option("--tau", default=None, type=float, help="PMTRec softmax temperature (default 1e-4).")
@click.option("--drop-absent", is_flag=True, help="PMTRec: leave tasks with a zero gradient on a row out of its softmax.")
@click.option("-o", "--method-opt", "method_opts", multiple=True, metavar="KEY=VALUE",
              help="Other combiner hyper-parameters, e.g. -o calpha=0.4, -o beta=0.5, -o per=epoch (repeatable).")
@click.option("--gamma", default=None, type=float, help="DirectAU uniformity weight (align_uniform task; default 1).")
@click.option("--dim", default=32, show_default=True, type=int)
@click.option("--batch-size", default=2048, show_default=True, type=int)
@click.option("--lr", default=None, type=float,
              help="Adam learning rate (default: tuned per shipped data set, else 0.01; see README).")
@click.option("--wd", default=None, type=float,
              help="Adam weight decay, added to the gradient (default: tuned per shipped data set, else 1e-4).")
@click.option("--adam", "adam_mode", default="sparse", show_default=True, type=click.Choice(["sparse", "dense"]))
@click.option("--epochs", default=300, show_default=True, type=int, help="Maximum epochs.")
@click.option("--patience", default=10, show_default=True, type=int, help="Validations without improvement before stopping.")
@click.option("--eval-every", default=1, show_default=True, type=int)
@click.option("--monitor", default="recall@20", show_default=True)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--threads", default=None, type=int, help="Numba threads (default: all cores).")
@click.option("--aux-sampling", default="anchored", show_default=True, type=click.Choice(["anchored", "independent"]))
@click.option("--data-dir", default=None, help="Folder of the shipped .npz files (default: the repo's datasets/).")
@click.option("--out", "out_dir", default=None, help="Run directory for config, curve, metrics and embeddings.")
@click.option("--record-weights/--no-record-weights", default=True, show_default=True,
              help="PMTRec: write per-epoch weight distributions by user/item group to weights.csv.")
@click.option("--checkpoint-every", default=1, show_default=True, type=int,
              help="Epochs between checkpoints in --out (0: none).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@friendly_errors
def fit(dataset, tasks, method, alpha, tau, drop_absent, method_opts, gamma, dim, batch_size, lr, wd, adam_mode, epochs, patience, eval_every, monitor,
        seed, threads, aux_sampling, data_dir, out_dir, record_weights, checkpoint_every, resume, quiet):
    """Train embeddings with early stopping and report test metrics of the best epoch."""
    from pmtnumba.data import SHIPPED
    from pmtnumba.tasks import default_tasks
    from pmtnumba.training import FitConfig, Trainer
    from pmtnumba.training.config import recommended_lr_wd

    task_list = None if tasks is None else [t.strip() for t in tasks.split(",") if t.strip()]
    if lr is None or wd is None:
        name = dataset if dataset in SHIPPED else ""
        rec_lr, rec_wd = recommended_lr_wd(name, task_list if task_list is not None else default_tasks(name))
        lr = rec_lr if lr is None else lr
        wd = rec_wd if wd is None else wd
    cfg = FitConfig(
        dataset=dataset, tasks=task_list,
        method=method, method_options=method_options(method, alpha, tau, drop_absent, method_opts),
        task_options={} if gamma is None else {"align_uniform": {"gamma": gamma}}, dim=dim, batch_size=batch_size, lr=lr, wd=wd, adam_mode=adam_mode, epochs=epochs,
        patience=patience, eval_every=eval_every, monitor=monitor, seed=seed, threads=threads,
        aux_sampling=aux_sampling, data_dir=data_dir, record_weights=record_weights,
        checkpoint_every=checkpoint_every,
    )
    reporter = ClickReporter(quiet=quiet)
    trainer = Trainer(cfg, reporter=reporter)
    reporter.names = [t.name for t in trainer.tasks]
    ds = trainer.split.dataset
    click.echo(f"{ds.name}: {ds.n_users} users, {ds.n_items} items, {trainer.split.train_users.size} train "
               f"interactions | tasks {','.join(cfg.tasks)} | method {cfg.method} | lr {cfg.lr:g} wd {cfg.wd:g}", err=True)
    result = trainer.fit(out_dir=out_dir, resume=resume)
    click.echo(f"best epoch {result.best_epoch} ({len(result.curve)} run, {result.train_seconds:.1f}s training)")
    print_metrics(result.test, cfg.ks)
    if out_dir:
        click.echo(f"results written to {out_dir}")


@main.command()
@click.option("--data-dir", default=None)
@friendly_errors
def datasets(data_dir):
    """Table-1 style summary of the shipped data sets, computed from the files."""
    from pmtnumba.data import summary_table

    rows = summary_table(data_dir=data_dir)
    cols = list(rows[0].keys())
    widths = {c: max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in cols}
    click.echo("  ".join(c.rjust(widths[c]) if i else c.ljust(widths[c]) for i, c in enumerate(cols)))
    for r in rows:
        click.echo("  ".join(_fmt(r[c]).rjust(widths[c]) if i else _fmt(r[c]).ljust(widths[c]) for i, c in enumerate(cols)))


def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.5f}" if v < 0.1 else f"{v:.3f}"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    return "-" if v is None else str(v)


def _load_run_split(run_dir, data_dir):
    from pmtnumba.data import load_dataset
    from pmtnumba.data.split import make_split
    from pmtnumba.training.runio import load_run

    cfg, metrics, emb = load_run(run_dir)
    ds = load_dataset(cfg["dataset"], data_dir=data_dir or cfg.get("data_dir"))
    if emb["user_emb"].shape[0] != ds.n_users or emb["item_emb"].shape[0] != ds.n_items:
        raise PmtError(f"{run_dir}: embeddings do not match data set {cfg['dataset']!r} "
                       f"({emb['user_emb'].shape[0]} x {emb['item_emb'].shape[0]} vs {ds.n_users} x {ds.n_items})")
    return cfg, metrics, emb, make_split(ds, cfg["seed"])


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--data-dir", default=None)
@click.option("--part", default="test", type=click.Choice(["valid", "test"]), show_default=True)
@friendly_errors
def evaluate(run_dir, data_dir, part):
    """Re-evaluate the saved embeddings of a run on its split."""
    from pmtnumba.evaluation import evaluate as eval_fn

    cfg, metrics, emb, sp = _load_run_split(run_dir, data_dir)
    heldout, exclude = (sp.valid, [sp.train]) if part == "valid" else (sp.test, [sp.train, sp.valid])
    ks = tuple(cfg.get("ks", (5, 10, 20, 40)))
    m = eval_fn(emb["user_emb"], emb["item_emb"], heldout, exclude=exclude, ks=ks)
    print_metrics(m, ks, title=part)
    if metrics is not None and part in metrics:
        k = cfg.get("monitor", "recall@20")
        click.echo(f"saved {part} {k}: {metrics[part].get(k, float('nan')):.4f}, now {m[k]:.4f}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--user", "user_id", required=True, help="The user's original id.")
@click.option("-k", "k", default=10, show_default=True, type=int)
@click.option("--data-dir", default=None)
@friendly_errors
def recommend(run_dir, user_id, k, data_dir):
    """Top-K items the user has not interacted with (train, validation or test), by original id."""
    from pmtnumba.evaluation import topk_for_users

    if k < 1:
        raise PmtError(f"-k must be >= 1, got {k}")
    cfg, _, emb, sp = _load_run_split(run_dir, data_dir)
    user_raw = emb["user_raw"]
    matches = np.flatnonzero(user_raw.astype(str) == str(user_id))
    if matches.size == 0:
        raise PmtError(f"user {user_id!r} is not in data set {cfg['dataset']!r}")
    u = int(matches[0])
    items = topk_for_users(emb["user_emb"], emb["item_emb"], np.array([u]), [sp.train, sp.valid, sp.test], k)[0]
    scores = emb["item_emb"] @ emb["user_emb"][u]
    click.echo(f"top {k} for user {user_id} ({cfg['dataset']}):")
    for rank, it in enumerate(items[items >= 0], 1):
        click.echo(f"  {rank:3d}  item {emb['item_raw'][it]}  score {scores[it]:.4f}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--epoch", default=None, type=int, help="Epoch to show (default: first, best and last).")
@click.option("--plot", "plot_dir", default=None, help="Also save PNG figures there (needs the `plot` extra).")
@friendly_errors
def weights(run_dir, epoch, plot_dir):
    """PMTRec's per-row task weights by user/item activity group (from weights.csv of a run)."""
    import csv
    from pathlib import Path

    from pmtnumba.training.weights import weights_table

    path = Path(run_dir) / "weights.csv"
    if not path.is_file():
        raise PmtError(f"{path}: no weights recorded (train with --method pmtrec and --out)")
    with open(path) as f:
        records = list(csv.DictReader(f))
    epochs = sorted({int(r["epoch"]) for r in records})
    if not epochs:
        raise PmtError(f"{path}: empty")
    best = None
    mpath = Path(run_dir) / "metrics.json"
    if mpath.is_file():
        from pmtnumba.training.runio import read_json

        best = read_json(mpath).get("best_epoch")
    show = [epoch] if epoch is not None else list(dict.fromkeys(e for e in (epochs[0], best, epochs[-1]) if e))
    for e in show:
        if e not in epochs:
            raise PmtError(f"--epoch {e}: recorded epochs are {epochs[0]}..{epochs[-1]}")
        header, rows = weights_table(records, e)
        click.echo(f"epoch {e}{' (best)' if e == best else ''}: mean task weight (10th-90th percentile) per row group")
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
        for r in [header] + rows:
            click.echo("  " + "  ".join(str(x).ljust(w) for x, w in zip(r, widths)))
    if plot_dir:
        from pmtnumba.training.weights import plot_weights

        for p in plot_weights(records, plot_dir):
            click.echo(f"wrote {p}")


from .compare_cmd import compare  # noqa: E402
from .gradcheck_cmd import gradcheck  # noqa: E402
from .sweep_cmd import sweep  # noqa: E402

main.add_command(gradcheck)
main.add_command(compare)
main.add_command(sweep)


if __name__ == "__main__":
    main()
