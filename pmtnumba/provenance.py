"""What produced a run: package and library versions and, when the package runs from a git
checkout, its commit (recorded in every run's ``config.json``).

Never fails: without git, outside a repository, or when git does not answer within a few
seconds, the commit is recorded as ``None``.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path


#: The parts of a checkout that decide what a run computes: the engine, the command line, the
#: shipped data and the build file.
CODE_PATHS = ("pmtnumba", "cli", "datasets", "pyproject.toml")


def git_commit() -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the checkout holding this package.

    Only a repository whose top level holds this package counts (an installed copy that happens to
    sit inside some other repository reports None). ``dirty`` is True when what a run computes
    with differs from the commit: changed or new files of :data:`CODE_PATHS`. Results, docs and
    tests written beside the code (a search committing its results as it goes) do not count.
    """
    root = Path(__file__).resolve().parent.parent

    def git(*args):
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5, check=True)
        return out.stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != root:
            return {"commit": None, "dirty": None}
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=normal", "--", *CODE_PATHS))
    except (OSError, subprocess.SubprocessError, ValueError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def versions() -> dict:
    """Versions of pmtnumba, its git commit (see :func:`git_commit`), numba, numpy and Python."""
    import numba
    import numpy as np

    from . import __version__

    g = git_commit()
    return {"pmtnumba": __version__, "git_commit": g["commit"], "git_dirty": g["dirty"],
            "numba": numba.__version__, "numpy": np.__version__, "python": platform.python_version()}
