"""Helpers shared by the ``pmtnumba`` commands (imported by ``main`` and the command modules,
which ``main`` imports in turn, so they live here to avoid an import cycle)."""

from __future__ import annotations

import errno
import functools
import inspect
import math
import os
import sys
import time
import traceback

import click

from pmtnumba.errors import PmtError


_OS_HINTS = {
    errno.ENOSPC: " (the disk is full)",
    errno.EDQUOT: " (disk quota exceeded)",
    errno.EFBIG: " (the file size limit was reached: disk full or ulimit -f)",
    errno.EROFS: " (read-only file system)",
    errno.EACCES: " (permission denied: check the folder's permissions)",
}


def error_line(exc: BaseException) -> str | None:
    """The one-line message of an anticipated exception, or None for an unexpected one."""
    import zipfile

    from pmtnumba.errors import RunFileError

    if isinstance(exc, (PmtError, ValueError)):
        return str(exc)
    from pmtnumba.device import is_gpu_out_of_memory

    if is_gpu_out_of_memory(exc):  # past the estimate of training/limits.py (other processes, fragmentation)
        return "the GPU ran out of memory; use a smaller --dim or --batch-size, free the GPU, or use --device cpu"
    if isinstance(exc, MemoryError):
        return ("out of memory" + (f" ({exc})" if str(exc) else "")
                + "; use a smaller --dim or --batch-size, or free memory")
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        what = exc.strerror or str(exc) or type(exc).__name__
        return f"{where}{what}{_OS_HINTS.get(exc.errno, '')}"
    if isinstance(exc, zipfile.BadZipFile):
        return f"a damaged .npz archive ({exc})"
    if isinstance(exc, (KeyError, TypeError)) and _raised_reading_run_file(exc):
        return f"a run file lacks or mistypes an entry ({type(exc).__name__}: {exc}); it is damaged or not a pmtnumba file"
    if isinstance(exc, RunFileError):
        return str(exc)
    return None


def _raised_reading_run_file(exc) -> bool:
    """Whether an exception was raised while reading run files (the run reader's modules)."""
    tb = exc.__traceback__
    while tb is not None:
        mod = tb.tb_frame.f_globals.get("__name__", "")
        if mod in ("pmtnumba.training.runs", "pmtnumba.training.runio"):
            return True
        tb = tb.tb_next
    return False


def friendly_errors(fn):
    """Turn every anticipated exception into one line ``error: ...`` and exit status 2.

    Anticipated: :class:`PmtError` (bad input, bad run files, divergence), ``ValueError`` (bad
    arguments), every ``OSError`` (missing file, permission, full disk, file-size limit...),
    ``zipfile.BadZipFile``, ``MemoryError``, and a ``KeyError``/``TypeError`` raised while
    reading run files. Anything else is a bug: its traceback is printed with a line asking to
    report it (exit status 1). ``PMTNUMBA_DEBUG=1`` shows the traceback of every error."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.ClickException, click.exceptions.Abort, click.exceptions.Exit, SystemExit,
                KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - sorted into anticipated and unexpected below
            if os.environ.get("PMTNUMBA_DEBUG"):
                raise
            line = error_line(exc)
            if line is None:
                traceback.print_exc()
                click.echo(f"error: unexpected {type(exc).__name__}: {exc}. This is a bug in pmtnumba; please "
                           f"report it with the command you ran and the traceback above.", err=True)
                sys.exit(1)
            click.echo(f"error: {line}", err=True)
            sys.exit(2)

    return wrapper


DEVICE_HELP = ("Where to compute: cpu, cuda (a GPU; needs the `cuda` extra) or auto (cuda when a usable GPU "
               "is present, else cpu).")


def pick_device(device: str) -> str:
    """The resolved device (``cpu`` or ``cuda``); ``--device cuda`` without a usable GPU is a
    one-line error. Commands print ``device_line`` in their run header."""
    from pmtnumba.device import resolve_device

    return resolve_device(device)


def device_line(device: str) -> str:
    """``device: cpu`` or ``device: cuda (GPU name)`` for a run header."""
    from pmtnumba.device import describe

    return describe(device)


class ClickReporter:
    """Per-epoch click progress bar showing the running losses and steps per second, on a terminal;
    elsewhere (a file, a pipe) only one line per finished epoch. ``bar=None``: decide by whether
    stderr is a terminal."""

    def __init__(self, quiet: bool = False, bar: bool | None = None):
        self.quiet = quiet
        self.bar = None
        self.names: list[str] = []
        self.use_bar = sys.stderr.isatty() if bar is None else bar

    def epoch_start(self, epoch, n_steps):
        if self.quiet or not self.use_bar:
            return
        self.t0 = time.perf_counter()
        self.done = 0
        self.bar = click.progressbar(length=n_steps, label=f"epoch {epoch:3d}", file=sys.stderr,
                                     item_show_func=lambda s: s, show_eta=False)
        self.bar.__enter__()

    def step_done(self, epoch, step, losses):
        if self.bar is None:
            return
        self.done += 1
        rate = self.done / max(1e-9, time.perf_counter() - self.t0)
        text = " ".join(f"{n}={v:.4f}" for n, v in zip(self.names, losses)) + f" {rate:.0f} it/s"
        self.bar.update(1, text)

    def epoch_end(self, rec):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
        if self.quiet:
            return
        losses = " ".join(f"{k[5:]}={v:.4f}" for k, v in rec.items() if k.startswith("loss_"))
        val = ""
        if "valid_recall@20" in rec:
            val = f" | valid R@20 {rec['valid_recall@20']:.4f} N@20 {rec['valid_ndcg@20']:.4f} (best epoch {rec['best_epoch']})"
        click.echo(f"epoch {rec['epoch']:3d} | {losses} | {rec['train_seconds']:.2f}s{val}", err=True)

    def message(self, text):
        click.echo(text, err=True)


def print_metrics(metrics: dict, ks=(5, 10, 20, 40), title: str = "test") -> None:
    click.echo(f"{title} metrics ({metrics.get('n_users', '?')} users):")
    click.echo("  K    " + "  ".join(f"{m:>9s}" for m in ("Recall", "NDCG", "HR", "Precision", "MRR")))
    for k in ks:
        vals = [metrics.get(f"{m}@{k}", float("nan")) for m in ("recall", "ndcg", "hr", "precision", "mrr")]
        click.echo(f"  {k:<4d} " + "  ".join(f"{v:9.4f}" for v in vals))


#: Options the CLI never passes through -o (set by the method itself or by other options).
_INTERNAL_OPTIONS = {"variant", "record_weights"}
#: Ranges of combiner options whose constructor does not check them: (low, low inclusive).
_RANGES = {"eps": (0.0, False), "tau": (0.0, False), "alpha": (0.0, False), "max_norm": (0.0, False),
           "tol": (0.0, False), "calpha": (0.0, True), "leak": (0.0, True), "beta": (0.0, True),
           "update_every": (1, True)}


def _parse_bool(text: str, key: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "yes", "1", "on"):
        return True
    if low in ("false", "no", "0", "off"):
        return False
    raise PmtError(f"-o {key}={text}: expected true or false")


def parse_option_value(method: str, key: str, text: str, default):
    """``text`` parsed as the type of the combiner option's default, and range-checked."""
    if isinstance(default, bool):
        return _parse_bool(text, key)
    if isinstance(default, int):
        try:
            value = int(text)
        except ValueError:
            raise PmtError(f"-o {key}={text}: {method} option {key!r} takes an integer") from None
    elif isinstance(default, float):
        try:
            value = float(text)
        except ValueError:
            raise PmtError(f"-o {key}={text}: {method} option {key!r} takes a number") from None
        if not math.isfinite(value):
            raise PmtError(f"-o {key}={text}: {method} option {key!r} must be finite")
    else:
        return text
    if key in _RANGES:
        low, inclusive = _RANGES[key]
        if value < low or (value == low and not inclusive):
            raise PmtError(f"-o {key}={text}: {method} option {key!r} must be {'>=' if inclusive else '>'} {low}")
    return value


def _typed_default(p):
    """The default of a constructor parameter, or a value of its annotated type where the default
    is None (``alpha: float | None = None``): what -o parses the text as."""
    if p.default is not None:
        return p.default
    ann = str(p.annotation)
    for name, value in (("bool", False), ("int", 0), ("float", 0.0)):
        if name in ann:
            return value
    return None


def combiner_parameters(method: str) -> dict:
    """``{option: typed default}`` of a combiner's constructor (what -o may set)."""
    from pmtnumba.combiners import COMBINERS

    cls = COMBINERS.get(method)
    if cls is None:
        raise PmtError(f"unknown method {method!r}; choose from {', '.join(COMBINERS)}")
    params = inspect.signature(cls.__init__).parameters
    return {k: _typed_default(p) for k, p in params.items()
            if k != "self" and k not in _INTERNAL_OPTIONS and p.kind is p.POSITIONAL_OR_KEYWORD}


def method_options(method, alpha, tau, drop_absent, pairs) -> dict:
    """Combiner keyword arguments from the CLI options: every -o KEY=VALUE must be an option of
    ``method``'s combiner, parsed as its type and range-checked; --alpha/--tau/--drop-absent only
    for the pmtrec methods. Raises PmtError naming the option otherwise."""
    params = combiner_parameters(method)
    opts = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise PmtError(f"-o expects KEY=VALUE, got {p!r}")
        if key not in params:
            have = ", ".join(params) or "none"
            raise PmtError(f"-o {p}: method {method!r} has no option {key!r} (its options: {have})")
        opts[key] = parse_option_value(method, key, value.strip(), params[key])
    pm = method.startswith("pmtrec")
    for name, val in (("alpha", alpha), ("tau", tau), ("drop_absent", drop_absent or None)):
        if val is not None:
            flag = f"--{name.replace('_', '-')}"
            if not pm:
                raise PmtError(f"{flag} applies to the pmtrec methods, not {method!r}")
            if name in opts:
                raise PmtError(f"{flag} and -o {name}=... both given; use one")
            if isinstance(val, float):
                if not math.isfinite(val) or val <= 0:
                    raise PmtError(f"{flag} must be a positive finite number, got {val}")
            opts[name] = val
    return opts
