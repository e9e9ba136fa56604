"""Helpers shared by the ``pmtnumba`` commands (imported by ``main`` and the command modules,
which ``main`` imports in turn, so they live here to avoid an import cycle)."""

from __future__ import annotations

import functools
import os
import sys
import time

import click

from pmtnumba.errors import PmtError


def friendly_errors(fn):
    """Turn user-facing exceptions into one clear line."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (PmtError, ValueError, FileNotFoundError) as exc:
            if os.environ.get("PMTNUMBA_DEBUG"):
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper


DEVICE_HELP = ("Where to compute: cpu, cuda (a GPU; needs the `cuda` extra) or auto (cuda when a usable GPU "
               "is present, else cpu).")


def pick_device(device: str) -> str:
    """The resolved device (``cpu`` or ``cuda``) and the run header's line about it (stderr);
    ``--device cuda`` without a usable GPU is a one-line error."""
    from pmtnumba.device import describe, resolve_device

    dev = resolve_device(device)
    click.echo(describe(dev), err=True)
    return dev


class ClickReporter:
    """Per-epoch click progress bar showing the running losses and steps per second."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.bar = None
        self.names: list[str] = []

    def epoch_start(self, epoch, n_steps):
        if self.quiet:
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


def _parse_value(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def method_options(method, alpha, tau, drop_absent, pairs) -> dict:
    """Combiner keyword arguments from the CLI options (validated by the combiner itself)."""
    opts = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise PmtError(f"--method-opt expects KEY=VALUE, got {p!r}")
        opts[key.strip().replace("-", "_")] = _parse_value(value.strip())
    pm = method.startswith("pmtrec")
    for name, val in (("alpha", alpha), ("tau", tau), ("drop_absent", drop_absent or None)):
        if val is not None:
            if not pm:
                raise PmtError(f"--{name.replace('_', '-')} applies to the pmtrec methods, not {method!r}")
            opts[name] = val
    return opts
