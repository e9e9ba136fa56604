"""``pmtnumba plot``: figures of a fit run or a compare directory (needs the ``plot`` extra)."""

from __future__ import annotations

import click

from .common import friendly_errors


@click.command("plot")
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--format", "fmt", default="png", show_default=True, type=click.Choice(["png", "svg"]),
              help="Image format.")
@click.option("--out", "out", default=None,
              help="Image file to write (default: curve.<format> in a run, methods.<format> in a compare directory).")
@friendly_errors
def plot(path, fmt, out):
    """Training losses and validation metrics per epoch of a run, or the method comparison (mean
    and std over seeds) of a compare directory."""
    from pmtnumba.plots import plot_dir

    click.echo(f"wrote {plot_dir(path, out, fmt)}")
