"""The fixed-split options shared by ``fit``, ``compare`` and ``sweep run`` (pmtnumba.data.fixed).

``--train`` is another name of ``--dataset``: with ``--test`` (and optionally ``--valid``) it is
the training file of a split given as separate files.
"""

from __future__ import annotations

import click

from pmtnumba.data.split import OPTIMISTIC


def split_options(fn=None, *, select: bool = True):
    """Add ``--valid``, ``--test``, ``--holdout`` and (``select``) ``--select-on`` to a command
    (keyword arguments ``valid_file``, ``test_file``, ``holdout``, ``select_on``). ``sweep run``
    tunes on validation only, so it takes no ``--select-on``."""
    if fn is None:
        return lambda f: split_options(f, select=select)
    opts = [
        click.option("--valid", "valid_file", default=None, metavar="FILE",
                     help="Fixed split: validation interactions (same format as the --train/--dataset file)."),
        click.option("--test", "test_file", default=None, metavar="FILE",
                     help="Fixed split: test interactions; --train/--dataset is then the training file. A file with "
                          "a 'split' column (train/valid/test) or a shipped set with a split (gowalla) needs none."),
        click.option("--holdout", default=0.1, show_default=True, type=float, metavar="FRACTION",
                     help="Fixed split without a validation part: fraction of each user's training interactions "
                          "held out (seeded) for early stopping and epoch selection."),
        click.option("--select-on", "select_on", default="valid", show_default=True,
                     type=click.Choice(["valid", "test"]),
                     help=f"test: the published papers' protocol (nothing held out, best epoch chosen on the test "
                          f"set); results are labelled '{OPTIMISTIC}'."),
    ]
    if not select:
        opts = opts[:3]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def split_kwargs(valid_file, test_file, holdout, select_on="valid", absolute: bool = False) -> dict:
    """The FitConfig fields of these options (``absolute``: file paths resolved, for workers that
    run elsewhere)."""
    from pathlib import Path

    if absolute:
        valid_file, test_file = (None if f is None else str(Path(f).resolve()) for f in (valid_file, test_file))
    return {"valid_file": valid_file, "test_file": test_file, "holdout": holdout, "select_on": select_on}
