"""`run_compare` / `pmtnumba compare`: shared splits per seed, files, summary statistics, the table."""

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pmtnumba.errors import TrainingDiverged
from pmtnumba.training import FitConfig
from pmtnumba.training import compare as cmp
from pmtnumba_cli.main import main

from .conftest import synthetic_dataset
from .test_cli_e2e import write_csv

METHODS = ["ew", "pcgrad", "pmtrec"]
SEEDS = [0, 1]


def _cfg(**kw):
    base = dict(tasks=["bpr", "coview", "cobuy"], epochs=2, patience=5, batch_size=64, dim=8, threads=1)
    base.update(kw)
    return FitConfig(**base)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """One small comparison (3 methods x 2 seeds x 2 epochs), recording the split each run used."""
    out = tmp_path_factory.mktemp("cmp")
    seen = []
    real = cmp.Trainer

    class Spy(real):
        def __init__(self, cfg, split=None, reporter=None):
            super().__init__(cfg, split=split, reporter=reporter)
            seen.append((cfg.method, cfg.seed, self.split, cfg.to_dict()))

    mp = pytest.MonkeyPatch()
    mp.setattr(cmp, "Trainer", Spy)
    try:
        summary = cmp.run_compare(synthetic_dataset(), METHODS, SEEDS, _cfg(), out_dir=out)
    finally:
        mp.undo()
    return out, summary, seen


def test_methods_of_a_seed_share_the_split(compared):
    out, _, seen = compared
    assert [(m, s) for m, s, _, _ in seen] == [(m, s) for s in SEEDS for m in METHODS]
    for s in SEEDS:
        runs = [(sp, c) for m, seed, sp, c in seen if seed == s]
        for sp, c in runs[1:]:
            np.testing.assert_array_equal(sp.labels, runs[0][0].labels)
            # like for like: the configurations differ by the method only
            same = {k: v for k, v in c.items() if k != "method"}
            assert same == {k: v for k, v in runs[0][1].items() if k != "method"}
    assert not np.array_equal(seen[0][2].labels, seen[-1][2].labels)  # another seed, another split
    runs = pd.read_csv(out / "runs.csv")
    assert runs.groupby("seed")["split_sha1"].nunique().tolist() == [1, 1]
    assert runs["split_sha1"].nunique() == 2


def test_files_and_summary_match_runs(compared):
    out, summary, _ = compared
    for f in ("runs.csv", "summary.csv", "summary.md", "config.json"):
        assert (out / f).is_file()
    for m in METHODS:
        for s in SEEDS:
            assert (out / m / f"seed{s}" / "metrics.json").is_file()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["methods"] == METHODS and cfg["seeds"] == SEEDS
    assert cfg["base_config"]["tasks"] == ["bpr", "coview", "cobuy"] and cfg["base_config"]["epochs"] == 2
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == len(METHODS) * len(SEEDS) and (runs["status"] == "ok").all()
    # every row says how its test numbers were obtained (a random split: selected on validation)
    assert (runs["protocol"] == "random 60/20/20 split, epoch selected on validation").all()
    assert cfg["protocol"] == runs["protocol"].iloc[0]
    assert (pd.read_csv(out / "summary.csv")["protocol"] == cfg["protocol"]).all()
    assert (runs["epochs_run"] == 2).all() and (runs["seconds_per_epoch"] > 0).all()
    summ = pd.read_csv(out / "summary.csv").set_index("method")
    assert list(summ.index) == METHODS == [r["method"] for r in summary]
    for metric in ("recall", "ndcg", "hr"):
        for k in (5, 10, 20, 40):
            key = f"{metric}@{k}"
            g = runs.groupby("method")[key]
            np.testing.assert_allclose(summ[f"{key}_mean"], g.mean()[summ.index], rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(summ[f"{key}_std"], g.std(ddof=1)[summ.index], rtol=1e-9, atol=1e-15)
    # each run's metrics.json holds the same test metrics as its runs.csv row
    r = runs.iloc[0]
    m = json.loads((out / r["method"] / f"seed{r['seed']}" / "metrics.json").read_text())
    assert m["test"]["recall@20"] == pytest.approx(r["recall@20"], rel=1e-12)


def _md_cells(md: str):
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| Method")]
    header = [c.strip() for c in next(ln for ln in md.splitlines() if ln.startswith("| Method")).strip("|").split("|")]
    return header, [[c.strip() for c in ln.strip("|").split("|")] for ln in rows]


def test_markdown_bolds_best_and_underlines_runner_up(compared):
    out, summary, _ = compared
    header, rows = _md_cells((out / "summary.md").read_text())
    assert header == ["Method", "R@5", "R@10", "R@20", "R@40", "N@5", "N@10", "N@20", "N@40"]
    assert [r[0] for r in rows] == ["EW", "PCGrad", "PMTRec"]
    for j, h in enumerate(header[1:], 1):
        key = ("recall@" if h[0] == "R" else "ndcg@") + h[2:]
        shown = [round(s[f"{key}_mean"], 4) for s in summary]
        best = max(shown)
        for i, row in enumerate(rows):
            cell = row[j]
            assert re.fullmatch(r"(\*\*|<u>)?\d\.\d{4} ± \d\.\d{4}(\*\*|</u>)?", cell), cell
            assert cell.startswith("**") == (shown[i] == best)
            assert float(cell.strip("*").removeprefix("<u>").split()[0]) == pytest.approx(shown[i])
    text = cmp.format_table(summary)
    assert all(name in text for name in ("EW", "PCGrad", "PMTRec", "R@20", "N@40"))


def test_ranks_with_ties_and_single_seed():
    runs = [{"method": m, "seed": 0, "status": "ok", **{f"{x}@{k}": v for x in ("recall", "ndcg", "hr") for k in (5, 10, 20, 40)}}
            for m, v in (("ew", 0.2), ("rlw", 0.3), ("pcgrad", 0.3), ("pmtrec", 0.25))]
    summary = cmp.summarize(runs)
    assert all(s["recall@20_std"] == 0.0 for s in summary)  # one seed: std 0
    _, rows = _md_cells(cmp.format_markdown(summary))
    cells = [r[3] for r in rows]  # R@20
    assert cells == ["0.2000 ± 0.0000", "**0.3000 ± 0.0000**", "**0.3000 ± 0.0000**", "<u>0.2500 ± 0.0000</u>"]


def test_resume_keeps_finished_runs(compared, tmp_path, monkeypatch):
    out, summary, _ = compared
    import shutil

    dst = tmp_path / "again"
    shutil.copytree(out, dst)

    def boom(*a, **k):
        raise AssertionError("nothing should be retrained")

    monkeypatch.setattr(cmp, "Trainer", boom)
    again = cmp.run_compare(synthetic_dataset(), METHODS, SEEDS, _cfg(), out_dir=dst, resume=True)
    assert [s["recall@20_mean"] for s in again] == pytest.approx([s["recall@20_mean"] for s in summary], rel=1e-12)
    with pytest.raises(Exception, match="another configuration"):
        cmp.run_compare(synthetic_dataset(), METHODS, SEEDS, _cfg(lr=0.5), out_dir=dst, resume=True)


def test_diverged_run_is_recorded_and_compare_goes_on(tmp_path, monkeypatch):
    real_fit = cmp.Trainer.fit

    def fit(self, out_dir=None, **kwargs):
        if self.cfg.method == "pcgrad":
            raise TrainingDiverged("task 'bpr' has a non-finite loss at epoch 1")
        return real_fit(self, out_dir=out_dir, **kwargs)

    monkeypatch.setattr(cmp.Trainer, "fit", fit)
    summary = cmp.run_compare(synthetic_dataset(n_users=30, n_items=20, per_user=6), ["ew", "pcgrad"], [0],
                              _cfg(epochs=1), out_dir=tmp_path, save_runs=False)
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert runs["status"].tolist() == ["ok", "diverged"]
    assert runs["protocol"].tolist() == ["random 60/20/20 split, epoch selected on validation"] * 2
    assert summary[1]["n_failed"] == 1 and math.isnan(summary[1]["recall@20_mean"])
    assert "PCGrad (1 failed) | failed |" in (tmp_path / "summary.md").read_text()


def test_cli_compare_end_to_end_and_errors(tmp_path):
    csv = tmp_path / "toy.csv"
    write_csv(csv, synthetic_dataset(n_users=40, n_items=30, per_user=6))
    out = tmp_path / "cmp"
    runner = CliRunner()
    r = runner.invoke(main, ["compare", "--dataset", str(csv), "--methods", "ew,rlw", "--seeds", "0,1", "--epochs", "1",
                             "--batch-size", "64", "--dim", "8", "--threads", "1", "-o", "rlw:per=epoch",
                             "--reg", "1e-3", "--adam", "dense", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "RLW" in r.output and f"written to {out}" in r.output
    meta = json.loads((out / "config.json").read_text())
    assert meta["method_options"] == {"rlw": {"per": "epoch"}} and meta["base_config"]["reg"] == 1e-3
    assert meta["base_config"]["adam_mode"] == "dense"
    run_cfg = json.loads((out / "rlw" / "seed1" / "config.json").read_text())
    assert run_cfg["reg"] == 1e-3 and run_cfg["adam_mode"] == "dense"
    assert len(pd.read_csv(out / "runs.csv")) == 4
    for args in (["--methods", "ew,nosuch"], ["--methods", "ew", "-o", "pcgrad:x=1"], ["--methods", "ew", "--alpha", "2"],
                 ["--methods", "ew", "-o", "calpha=1"], ["--methods", "ew", "--seeds", "a"],
                 ["--methods", "ew", "--reg", "-1"]):
        r = runner.invoke(main, ["compare", "--dataset", str(csv), "--epochs", "1", "--out", str(tmp_path / "x"), *args])
        lines = r.output.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), (args, r.output)
    assert "nosuch" in runner.invoke(main, ["compare", "--dataset", str(csv), "--methods", "nosuch"]).output
    r = runner.invoke(main, ["compare", "--dataset", str(csv), "--methods", "ew", "--adam", "lazy"])
    assert r.exit_code == 2 and "'--adam'" in r.output and "Traceback" not in r.output


def test_per_method_wd_override(tmp_path):
    """-o METHOD:wd=... changes that method's weight decay only (and so its result)."""
    ds = synthetic_dataset(n_users=60, n_items=40, per_user=8)
    base = FitConfig(tasks=["bpr", "cobuy"], epochs=2, batch_size=64, threads=1, record_weights=False)
    cmp.run_compare(ds, ["ew", "pcgrad"], [0], base, out_dir=tmp_path / "a", save_runs=False)
    cmp.run_compare(ds, ["ew", "pcgrad"], [0], base, method_options={"pcgrad": {"wd": 0.05}},
                out_dir=tmp_path / "b", save_runs=False)
    a = {r["method"]: r for r in cmp.read_runs(tmp_path / "a" / "runs.csv")}
    b = {r["method"]: r for r in cmp.read_runs(tmp_path / "b" / "runs.csv")}
    assert a["ew"]["recall@20"] == b["ew"]["recall@20"]
    assert a["pcgrad"]["recall@20"] != b["pcgrad"]["recall@20"] or a["pcgrad"]["ndcg@20"] != b["pcgrad"]["ndcg@20"]
