"""A clone stands alone: every CLI option has help text, and the docs link nothing outside the
repository (``../shared`` is where the raw data lived when the data sets were built)."""

import re
from pathlib import Path

import click

from pmtnumba_cli.main import main

ROOT = Path(__file__).resolve().parents[1]


def _options(cmd, path):
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _options(sub, path + [name])
    for p in cmd.params:
        if isinstance(p, click.Option):
            yield " ".join(path), p


def test_every_option_has_help():
    missing = [f"{where} {'/'.join(p.opts)}" for where, p in _options(main, ["pmtnumba"]) if not p.help]
    assert missing == []


def test_docs_do_not_link_outside_the_repository():
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    bad = []
    for doc in docs:
        for n, line in enumerate(doc.read_text().splitlines(), 1):
            if "../shared" in line:
                bad.append(f"{doc.name}:{n}")
            for target in re.findall(r"\]\(([^)#]+)", line):  # relative markdown links must resolve
                if not target.startswith(("http://", "https://")) and not (doc.parent / target).exists():
                    bad.append(f"{doc.name}:{n} -> {target}")
    assert bad == []
