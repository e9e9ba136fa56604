"""The README's `pmtnumba compare` commands reproduce its results: each parses, resolves to the
learning rate, weight decay and combiner options recorded under results/, and (one of them, on a
toy file for a single epoch) starts and finishes."""

from __future__ import annotations

import csv
import json
import re
import shlex
from pathlib import Path

import click
import pytest

from pmtnumba.training import compare as cmp

from .faults import cli, write_toy_csv

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


def readme_compare_commands() -> list[list[str]]:
    """Every `pmtnumba compare ...` of README.md (code blocks with `\\` continuations, and inline)."""
    text = (ROOT / "README.md").read_text()
    text = re.sub(r"\\\n\s*", " ", text)
    cmds = [m.group(1) for m in re.finditer(r"^(?:\$ )?pmtnumba compare (.+?)(?:\s+#.*)?$", text, re.M)]
    cmds += [re.sub(r"\s+", " ", m.group(1)) for m in re.finditer(r"`pmtnumba compare ([^`]+)`", text)]
    return [shlex.split(c) for c in dict.fromkeys(cmds)]


def _tuned(name: str) -> dict:
    """{method: (lr, wd, combiner options)} of the tuned runs behind the README's table."""
    out = {}
    for d, rename in ((name, None), (f"{name}-nash-fixed", None), (f"{name}-bpr-only", "bpr-only")):
        argv = json.loads((RESULTS / d / "config.json").read_text())["argv"]
        pm = dict(kv.split("=") for kv in argv["pmtrec"].split(","))
        for row in csv.DictReader(open(RESULTS / d / "summary.csv")):
            m = rename or row["method"]
            opts = {k: float(v) for k, v in pm.items()} if m == "pmtrec" else {}
            out[m] = (float(argv["lr"]), float(row["wd"]), opts)
    return out


def _ablation(name: str) -> dict:
    c = json.loads((RESULTS / name / "config.json").read_text())
    b = c["base_config"]
    # the variants fix alpha (nofocus) or tau (nobalance) at 1 and keep the other option
    return {"pmtrec-nofocus": (b["lr"], b["wd"], {"tau": c["method_options"]["pmtrec-nofocus"]["tau"]}),
            "pmtrec-nobalance": (b["lr"], b["wd"], {"alpha": c["method_options"]["pmtrec-nobalance"]["alpha"]})}


def _common(name: str) -> dict:
    """One lr and wd for every method (results/compare-office-common; its Nash-MTL re-run)."""
    out = {}
    for d in (name, f"{name}-nash-fixed"):
        c = json.loads((RESULTS / d / "config.json").read_text())
        for m in c["methods"]:
            out[m] = (c["base_config"]["lr"], c["base_config"]["wd"], dict(c["method_options"].get(m, {})))
    return out


def _epinion() -> dict:
    out = {}
    for d, m in (("epinion-bpr-wd1e-4", "bpr-only"), ("epinion-ew-wd1e-5", "ew"), ("epinion-pmtrec-wd1e-5", "pmtrec")):
        c = json.loads((RESULTS / d / "config.json").read_text())
        out[m] = (c["lr"], c["wd"], dict(c.get("method_options") or {}))
    return out


EXPECTED = {
    "runs/table-videogame": lambda: _tuned("tuned-videogame"),
    "runs/table-office": lambda: _tuned("tuned-office"),
    "runs/ablation-videogame": lambda: _ablation("ablation-videogame"),
    "runs/ablation-office": lambda: _ablation("ablation-office"),
    "runs/epinion": _epinion,
    "runs/cmp-office": lambda: _common("compare-office-common"),
}


def _resolved(args, monkeypatch) -> tuple[str, dict]:
    """(dataset, {method: (lr, wd, combiner options)}) that `pmtnumba compare ARGS` would train."""
    seen = {}

    def spy(dataset, methods, seeds, base, method_options=None, **kw):
        seen.update(dataset=dataset, methods=methods, seeds=seeds, base=base, opts=method_options or {})
        return []

    monkeypatch.setattr(cmp, "run_compare", spy)
    r = cli("compare", *args, "--quiet")
    assert r.exit_code == 0, (args, r.output)
    base, out = seen["base"], {}
    for m in seen["methods"]:
        o = dict(seen["opts"].get(m, {}))
        out[m] = (o.pop("lr", base.lr), o.pop("wd", base.wd), o)
    return seen["dataset"], out


def test_every_readme_compare_command_resolves_to_the_recorded_settings(monkeypatch):
    cmds = readme_compare_commands()
    outs = [c[c.index("--out") + 1] for c in cmds]
    assert sorted(outs) == sorted(EXPECTED), outs  # a README command without its results, or the reverse
    for args in cmds:
        dataset, got = _resolved(args, monkeypatch)
        want = EXPECTED[args[args.index("--out") + 1]]()
        assert set(got) == set(want), (args, sorted(got), sorted(want))
        for m, (lr, wd, opts) in want.items():
            assert got[m][0] == pytest.approx(lr) and got[m][1] == pytest.approx(wd), (args, m, got[m], want[m])
            assert got[m][2] == pytest.approx(opts), (args, m, got[m], want[m])


def test_the_office_table_command_starts_and_finishes_on_a_toy_file(tmp_path):
    """The README's office command, on a toy file with its tasks, one seed and one epoch."""
    args = next(c for c in readme_compare_commands() if "runs/table-office" in c)
    csv_path = write_toy_csv(tmp_path / "toy.csv")
    i = args.index("--dataset")
    args = args[:i] + ["--dataset", str(csv_path)] + args[i + 2:]
    r = cli("compare", *args, "--out", tmp_path / "cmp", "--tasks", "bpr,rating", "--seeds", "0", "--epochs", "1",
            "--batch-size", "64", "--dim", "8", "--no-run-dirs", "--quiet")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(tmp_path / "cmp" / "runs.csv")))
    assert len(rows) == 10 and {r["status"] for r in rows} == {"ok"}  # BPR only and the paper's nine


def readme_cli_lines() -> list[list[str]]:
    """Every `pmtnumba ...` line of the README's bash blocks (continuations joined, comments cut)."""
    text = (ROOT / "README.md").read_text()
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        block = re.sub(r"\\\n\s*", " ", block)
        for line in block.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words and words[0].endswith("pmtnumba"):
                    out.append(words[1:])
    return out


def test_every_readme_command_line_parses(tmp_path, monkeypatch):
    """Each README `pmtnumba` line names a real command with real options of the right types (the
    folders it names exist here as empty ones); the long runs themselves are not started."""
    from pmtnumba_cli.main import main

    monkeypatch.chdir(tmp_path)
    lines = readme_cli_lines()
    assert len(lines) >= 20 and any(w[:1] == ["sweep"] for w in lines)
    for words in lines:
        for w in words:
            if w.startswith("runs/"):
                (tmp_path / w).mkdir(parents=True, exist_ok=True)
        cmd, args = main, list(words)
        while isinstance(cmd, click.Group):  # `sweep run ...`: down to the command itself
            name = args.pop(0)
            assert name in cmd.commands, (words, f"no command {name!r}")
            cmd = cmd.commands[name]
        cmd.make_context(name, args)  # raises on an unknown option or a bad value
