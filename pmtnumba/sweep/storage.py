"""Where a sweep's Optuna studies live.

Default: Optuna's journal file ``<sweep dir>/study.journal`` (an append-only log of operations,
made safe for several processes by a lock file next to it). It was chosen over an SQLite file
because concurrent worker processes write intermediate values (one per validation) while the
driver asks and tells: with SQLite such writers contend for one database lock and, past
SQLAlchemy's timeout, fail with ``database is locked``; the journal appends under a short file
lock and has no such failure mode. ``benchmarks/sweep_storage.py`` measures both side by side
(numbers in ``benchmarks/README.md``). The journal needs a file system every worker sees with
working locks (one machine, or a shared disk); for workers on several machines give a database
URL instead (``--storage postgresql://user@host/db``), which Optuna's RDB storage handles.

``spec`` strings: ``sqlite:///path``, ``postgresql://...``, ``mysql://...`` (any SQLAlchemy URL)
-> RDB storage; ``journal:PATH`` or a path ending in ``.journal``/``.log`` -> journal file.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import PmtError
from ._deps import optuna

DEFAULT_FILE = "study.journal"
#: What ``sweep.json`` records for the default storage: the sweep directory's own journal, wherever
#: that directory is now (a sweep directory can be moved, copied or committed and cloned).
DEFAULT_SPEC = "default"


def resolve_spec(spec: str | None, sweep_dir) -> str:
    """The storage a process opens for the sweep in ``sweep_dir``, as an absolute spec (workers run
    elsewhere). ``default`` is ``<sweep_dir>/study.journal``. Sweeps made before ``default`` was
    recorded hold that journal's absolute path; when that path is gone and the directory has its
    own journal, the directory was moved or copied, and its own journal is the study."""
    local = Path(sweep_dir).resolve() / DEFAULT_FILE
    if spec in (None, DEFAULT_SPEC):
        return f"journal:{local}"
    if spec.startswith("journal:"):
        recorded = Path(spec[len("journal:"):])
        if recorded.name == DEFAULT_FILE and recorded != local and not recorded.exists() and local.is_file():
            return f"journal:{local}"
    return spec


def open_storage(spec: str):
    """An Optuna storage object for ``spec`` (see the module docstring)."""
    op = optuna()
    if spec.startswith("journal:") or spec.endswith((".journal", ".log")):
        path = spec[len("journal:"):] if spec.startswith("journal:") else spec
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:  # Optuna >= 4.0
            from optuna.storages.journal import JournalFileBackend as _Backend
        except ImportError:  # Optuna 3.x
            from optuna.storages import JournalFileStorage as _Backend
        return op.storages.JournalStorage(_Backend(path))
    if "://" in spec:
        try:
            # a generous timeout: workers write one intermediate value per validation
            kwargs = {"connect_args": {"timeout": 60}} if spec.startswith("sqlite") else {}
            return op.storages.RDBStorage(spec, engine_kwargs=kwargs)
        except Exception as exc:  # SQLAlchemy raises many kinds; the message is what matters
            raise PmtError(f"--storage {spec}: cannot open ({type(exc).__name__}: {exc})") from None
    raise PmtError(f"--storage {spec!r}: give a database URL (sqlite:///f.db, postgresql://...) or journal:PATH")
