"""Helpers of the bad-input and fault-injection tests (test_faults_*.py): a tiny CSV, a fit through
the CLI, and running the CLI in a subprocess (for kills, locks and file-size limits)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from pmtnumba_cli.main import main

from .conftest import synthetic_dataset

REPO = Path(__file__).resolve().parents[1]
FIT = ["--batch-size", "64", "--threads", "1", "--quiet"]


def write_toy_csv(path, n_users=40, n_items=30, per_user=8, seed=0):
    ds = synthetic_dataset(n_users=n_users, n_items=n_items, per_user=per_user, seed=seed)
    with open(path, "w") as f:
        f.write("user_id,item_id,rating\n")
        for u, i, r in zip(ds.users, ds.items, ds.ratings):
            f.write(f"u{u},{i + 1000},{r}\n")
    return Path(path)


def cli(*args, env=None):
    """Run ``pmtnumba ARGS`` in-process; returns the click Result (exit_code, output)."""
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def error_of(result) -> str:
    """The last line of a result's output (where the ``error: ...`` line is)."""
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def cli_process(*args, env=None, preexec_fn=None, **popen):
    """Start ``pmtnumba ARGS`` as a separate process (stdout+stderr piped)."""
    e = dict(os.environ)
    e.setdefault("NUMBA_NUM_THREADS", "1")
    e.update(env or {})
    return subprocess.Popen([sys.executable, "-c", "from pmtnumba_cli.main import main; main()", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=e,
                            preexec_fn=preexec_fn, **popen)
