"""Lazy imports of the optional ``sweep`` extra (optuna, dask.distributed).

``import pmtnumba`` and every other command work without them; the sweep code imports them
through :func:`optuna` / :func:`distributed` only when it runs, and a missing one becomes one
clear line naming the extra to install.
"""

from __future__ import annotations

from ..errors import PmtError

_HINT = "pip install -e '.[sweep]'"


def optuna():
    try:
        import optuna as mod
    except ImportError:
        raise PmtError(f"pmtnumba sweep needs Optuna, which is not installed: {_HINT}") from None
    return mod


def distributed():
    try:
        import distributed as mod
    except ImportError:
        raise PmtError(f"pmtnumba sweep needs dask.distributed, which is not installed: {_HINT}") from None
    return mod
