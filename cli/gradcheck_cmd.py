"""``pmtnumba gradcheck``: hand-derived gradients of every task vs finite differences.

Wired into the command group by ``cli/main.py`` (``main.add_command(gradcheck)``).
"""

from __future__ import annotations

import sys

import click

_CHOICES = ["all", "bpr", "social", "category", "coview", "cobuy", "align_uniform", "rating", "ego_reg"]


@click.command("gradcheck")
@click.option("--task", "task", default="all", show_default=True, type=click.Choice(_CHOICES),
              help="Task to check, or all of them; ego_reg is the --reg penalty (on E itself, so mf only).")
@click.option("--dim", default=8, show_default=True, type=click.IntRange(min=1), help="Embedding size of the test problems.")
@click.option("--encoder", "encoder", default="all", show_default=True,
              type=click.Choice(["all", "mf", "lightgcn", "ngcf"]),
              help="mf: the tasks' own gradients (MF's table); lightgcn/ngcf: every task on top of that encoder, "
                   "gradients on its parameters; all: each.")
@click.option("--layers", default=2, show_default=True, type=click.IntRange(min=1),
              help="Layers K of the graph encoders' test problems.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random test problems.")
@click.option("--tol", default=1e-6, show_default=True, type=click.FloatRange(min=0.0),
              help="Largest accepted relative error (gradient and loss).")
def gradcheck(task, encoder, layers, dim, seed, tol):
    """Compare every task's analytic gradient with float64 central finite differences.

    Checks each task's pure function on a hand-made problem (rows touched several times) and the
    Task object the trainer runs on a tiny data set (both sampling modes for link tasks); for the
    graph encoders, each task on top of LightGCN / NGCF: the forward pass against a NumPy/scipy
    reference and the gradient on every encoder parameter (E, and NGCF's W1, W2, b). Exits with
    status 1 if any check is above tolerance.
    """
    from pmtnumba.gradcheck import format_table, run_encoder_gradcheck, run_gradcheck

    results = []
    if encoder in ("all", "mf"):
        results += run_gradcheck(tasks=task, dim=dim, seed=seed, tol=tol)
    if encoder != "mf":
        encs = ("lightgcn", "ngcf") if encoder == "all" else (encoder,)
        results += run_encoder_gradcheck(encs, tasks=task, dim=dim, layers=layers,
                                         seed=seed, tol=tol)
    click.echo(format_table(results))
    failed = [f"{r['task']}/{r['check']}" for r in results if r["status"] != "pass"]
    if failed:
        click.echo(f"FAILED ({len(failed)} of {len(results)} checks above tol {tol:g}): {', '.join(failed)}", err=True)
        sys.exit(1)
    click.echo(f"all {len(results)} checks pass (tol {tol:g})")
