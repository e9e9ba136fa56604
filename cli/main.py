"""``pmtnumba``: the command line. Thin: parse options, call the engine, print.

Every user-facing error (bad argument, bad file, diverged training) is printed as one line
``error: ...`` with exit status 2; set ``PMTNUMBA_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import click
import numpy as np

from pmtnumba.errors import PmtError

# shared with the command modules (compare_cmd)
from .split_options import split_kwargs, split_options
from .common import DEVICE_HELP, ClickReporter, device_line, friendly_errors, method_options, pick_device, print_metrics


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pmtnumba")
def main():
    """pmtnumba: personalized multi-task training (PMTRec) of recommender embeddings."""


@main.command()
@click.option("--dataset", "--train", "dataset", default="videogame", show_default=True,
              help="A shipped data set name (see `pmtnumba datasets`) or a path to a CSV/TSV of interactions "
                   "(with --test: the training file of a fixed split).")
@split_options
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
@click.option("--encoder", default="mf", show_default=True, type=click.Choice(["mf", "lightgcn", "ngcf"]),
              help="Encoder of the final embeddings: the table itself (mf) or graph propagation.")
@click.option("--layers", default=3, show_default=True, type=int, help="Propagation layers K (lightgcn, ngcf).")
@click.option("--mess-dropout", default=0.1, show_default=True, type=float, help="NGCF message dropout.")
@click.option("--dim", default=32, show_default=True, type=int, help="Embedding size (columns of the user and item tables).")
@click.option("--batch-size", default=2048, show_default=True, type=int,
              help="Training interactions per step (capped at the number of training interactions).")
@click.option("--lr", default=None, type=float,
              help="Adam learning rate (default: tuned per shipped data set, else 0.01; see README).")
@click.option("--wd", default=None, type=float,
              help="Adam weight decay, added to the gradient (default: tuned per shipped data set, else 1e-4).")
@click.option("--reg", default=0.0, show_default=True, type=float,
              help="The published LightGCN/NGCF regulariser: reg * 0.5 * (||e_u||^2 + ||e_i||^2 + ||e_j||^2) / B over the batch's BPR triplets on the ego (layer-0) embeddings, added to the loss and, after the combiner, to the gradient (docs/gradients.md section 12). 0: off.")
@click.option("--adam", "adam_mode", default="sparse", show_default=True, type=click.Choice(["sparse", "dense"]),
              help="sparse: update only the rows a step touched; dense: every row every step (as PyTorch's Adam).")
@click.option("--epochs", default=300, show_default=True, type=int, help="Maximum epochs.")
@click.option("--patience", default=10, show_default=True, type=int, help="Validations without improvement before stopping.")
@click.option("--eval-every", default=1, show_default=True, type=int,
              help="Validate every N epochs (and after the last); patience counts validations.")
@click.option("--monitor", default="recall@20", show_default=True,
              help="Validation metric for early stopping and the best epoch: recall|ndcg|hr|precision|mrr @ 5|10|20|40.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the split, the initialisation and the sampling (same seed: bit-identical run).")
@click.option("--threads", default=None, type=int, help="Numba threads (default: all cores).")
@click.option("--aux-sampling", default="anchored", show_default=True, type=click.Choice(["anchored", "independent"]),
              help="anchored: auxiliary samples hang off the batch's users and items; independent: their own batch.")
@click.option("--data-dir", default=None, help="Folder of the shipped .npz files (default: the repo's datasets/).")
@click.option("--out", "out_dir", default=None,
              help="Run directory for config, curve, checkpoint, metrics and embeddings "
                   "(default: runs/<dataset>-<method>-<date>-<time> under the current folder).")
@click.option("--record-weights/--no-record-weights", default=True, show_default=True,
              help="PMTRec: write per-epoch weight distributions by user/item group to weights.csv.")
@click.option("--checkpoint-every", default=30.0, show_default=True, type=float, metavar="SECONDS",
              help="Seconds between checkpoints in --out (0: after every epoch); always after the first and the "
                   "last epoch, and on Ctrl-C / SIGTERM (the epoch under way is finished first).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint (an unfinished run, or a "
              "finished one with more --epochs).")
@click.option("--overwrite", is_flag=True, help="Replace the run in --out (the old one stays until the new one finishes).")
@click.option("--allow-divergence", is_flag=True,
              help="Go on (with a warning) when a task's loss grows by orders of magnitude, instead of stopping.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["cpu", "cuda", "auto"]), help=DEVICE_HELP)
@friendly_errors
def fit(dataset, valid_file, test_file, holdout, select_on, tasks, method, alpha, tau, drop_absent, method_opts, gamma, encoder, layers, mess_dropout, dim, batch_size, lr, wd, reg, adam_mode, epochs, patience, eval_every, monitor,
        seed, threads, aux_sampling, data_dir, out_dir, record_weights, checkpoint_every, resume, overwrite,
        allow_divergence, quiet, device):
    """Train embeddings with early stopping and report test metrics of the best epoch."""
    from pmtnumba import api
    from pmtnumba.data.split import OPTIMISTIC
    from pmtnumba.training.budget import format_budget

    device = pick_device(device)
    api.check_out(out_dir, resume, overwrite)  # an occupied, locked or unusable --out fails now
    reporter = ClickReporter(quiet=quiet)
    trainer = api.trainer(
        dataset, data_dir=data_dir, reporter=reporter, tasks=tasks,
        method=method, method_options=method_options(method, alpha, tau, drop_absent, method_opts),
        gamma=gamma, encoder=encoder, layers=layers,
        mess_dropout=mess_dropout, dim=dim, batch_size=batch_size, lr=lr, wd=wd, reg=reg, adam_mode=adam_mode, epochs=epochs,
        patience=patience, eval_every=eval_every, monitor=monitor, seed=seed, threads=threads,
        aux_sampling=aux_sampling, record_weights=record_weights,
        checkpoint_every=checkpoint_every, device=device, **split_kwargs(valid_file, test_file, holdout, select_on, absolute=True),
    )
    cfg = trainer.cfg
    trainer.allow_divergence = allow_divergence
    reporter.names = [t.name for t in trainer.tasks]
    ds = trainer.split.dataset
    if out_dir is None:  # decided once the options and the data are known to be good
        from pmtnumba.training.runio import default_run_dir

        out_dir = str(default_run_dir(dataset, cfg.method))
        click.echo(f"writing the run to {out_dir} (no --out given)", err=True)
    click.echo(f"{ds.name}: {ds.n_users} users, {ds.n_items} items, {trainer.split.train_users.size} train "
               f"interactions | encoder {cfg.encoder} | tasks {','.join(cfg.tasks)} | method {cfg.method} | lr {cfg.lr:g} wd {cfg.wd:g}{f' reg {cfg.reg:g}' if cfg.reg else ''} | "
               f"{device_line(trainer.device)}", err=True)
    result = trainer.fit(out_dir=out_dir, resume=resume, overwrite=overwrite)
    click.echo(f"best epoch {result.best_epoch} ({len(result.curve)} run) | {format_budget(result.time_budget)}")
    click.echo(f"protocol: {trainer.split.protocol}")
    print_metrics(result.test, cfg.ks, **({"title": f"test, {OPTIMISTIC}"} if cfg.select_on == "test" else {}))
    if out_dir:
        click.echo(f"results written to {out_dir}")


@main.command()
@click.option("--data-dir", default=None, help="Folder of the shipped .npz files (default: the repo's datasets/).")
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


def _load_model(run_dir, data_dir, allow_changed_data=False):
    """The run's :class:`pmtnumba.api.Model` (validated, see pmtnumba.training.runs) with its split."""
    from pmtnumba.api import Model

    return Model.load(run_dir, data_dir, allow_changed_data, message=lambda t: click.echo(t, err=True))


_ALLOW_CHANGED = click.option("--allow-changed-data", is_flag=True,
                              help="Use the run's data file even if it changed since the run was trained.")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--data-dir", default=None, help="Folder of the shipped .npz files (default: the repo's datasets/).")
@click.option("--part", default="test", type=click.Choice(["valid", "test"]), show_default=True,
              help="Which held-out part to evaluate on (test masks train and validation items).")
@_ALLOW_CHANGED
@click.option("--device", default="auto", show_default=True, type=click.Choice(["cpu", "cuda", "auto"]), help=DEVICE_HELP)
@friendly_errors
def evaluate(run_dir, data_dir, part, allow_changed_data, device):
    """Re-evaluate the saved embeddings of a run on its split."""
    device = pick_device(device)
    model = _load_model(run_dir, data_dir, allow_changed_data)
    m = model.evaluate(part, device=device)
    click.echo(device_line(device), err=True)
    if model.split is not None and model.split.select_on == "test":
        click.echo(f"protocol: {model.split.protocol}")
    print_metrics(m, model.ks, title=part)
    k = model.config.get("monitor", "recall@20")
    saved = model.metrics.get(part) or {}
    if isinstance(saved.get(k), (int, float)) and k in m:
        click.echo(f"saved {part} {k}: {saved[k]:.4f}, now {m[k]:.4f}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--user", "user_id", required=True, help="The user's original id.")
@click.option("-k", "k", default=10, show_default=True, type=int, help="How many items (at most the number of items).")
@click.option("--data-dir", default=None, help="Folder of the shipped .npz files (default: the repo's datasets/).")
@_ALLOW_CHANGED
@friendly_errors
def recommend(run_dir, user_id, k, data_dir, allow_changed_data):
    """Top-K items the user has not interacted with (train, validation or test), by original id."""
    if k < 1:
        raise PmtError(f"-k must be >= 1, got {k}")
    model = _load_model(run_dir, data_dir, allow_changed_data)
    model.user_index(user_id)  # an unknown user fails before the note about -k
    n_items = model.item_emb.shape[0]
    if k > n_items:
        click.echo(f"-k {k} is more than the {n_items} items: listing at most {n_items}", err=True)
    items, scores = model.recommend(user_id, k)
    click.echo(f"top {len(items)} for user {user_id} ({model.config['dataset']}):")
    if len(items) == 0:
        click.echo("  (none: the user has interacted with every item)")
    for rank, (it, sc) in enumerate(zip(items, scores), 1):
        click.echo(f"  {rank:3d}  item {it}  score {sc:.4f}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--epoch", default=None, type=int, help="Epoch to show (default: first, best and last).")
@click.option("--plot", "plot_dir", default=None, help="Also save PNG figures there (needs the `plot` extra).")
@friendly_errors
def weights(run_dir, epoch, plot_dir):
    """PMTRec's per-row task weights by user/item activity group (from weights.csv of a run)."""
    from pathlib import Path

    from pmtnumba.training.runs import read_metrics, read_weights_csv
    from pmtnumba.training.weights import percentile_note, weights_table

    if not Path(run_dir).is_dir():
        raise PmtError(f"{run_dir}: no such run directory")
    records = read_weights_csv(Path(run_dir) / "weights.csv")
    epochs = sorted({int(r["epoch"]) for r in records})
    best = None
    mpath = Path(run_dir) / "metrics.json"
    if mpath.is_file():
        best = read_metrics(mpath).get("best_epoch")
    show = [epoch] if epoch is not None else list(dict.fromkeys(e for e in (epochs[0], best, epochs[-1]) if e))
    for e in show:
        if e not in epochs:
            raise PmtError(f"--epoch {e}: recorded epochs are {epochs[0]}..{epochs[-1]}")
        header, rows = weights_table(records, e)
        click.echo(f"epoch {e}{' (best)' if e == best else ''}: mean task weight (10th .. 90th percentile) per row group")
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
        for r in [header] + rows:
            click.echo("  " + "  ".join(str(x).ljust(w) for x, w in zip(r, widths)))
    click.echo(f"({percentile_note(records)})")
    if plot_dir:
        from pmtnumba.training.weights import plot_weights

        for p in plot_weights(records, plot_dir):
            click.echo(f"wrote {p}")


from .compare_cmd import compare  # noqa: E402
from .gradcheck_cmd import gradcheck  # noqa: E402
from .plot_cmd import plot  # noqa: E402
from .sweep_cmd import sweep  # noqa: E402

main.add_command(gradcheck)
main.add_command(plot)
main.add_command(compare)
main.add_command(sweep)


if __name__ == "__main__":
    main()
