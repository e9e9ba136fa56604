"""The sweep's search space: the paper's grid, JSON files, command-line lists, per-method filtering."""

import json

import pytest

from pmtnumba.errors import PmtError
from pmtnumba.sweep.space import PAPER_SPACE, SearchSpace, build_space, load_space_file, parse_list


def test_paper_grid_matches_section_414():
    assert PAPER_SPACE["lr"] == [0.1, 0.05, 0.01, 0.005, 0.001]
    assert PAPER_SPACE["wd"] == [1e-2, 1e-4, 1e-6, 1e-8]
    assert PAPER_SPACE["alpha"] == [1.0, 1.02, 1.04, 1.06, 1.08, 1.1, 1.12, 1.14, 1.16, 1.18, 1.2]
    assert PAPER_SPACE["tau"] == [10, 1, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6]
    sp = build_space("paper")
    # only the parameters meaningful for each method
    assert sp.for_method("ew") == {"lr": PAPER_SPACE["lr"], "wd": PAPER_SPACE["wd"]}
    assert sp.grid_size("bpr-only") == 20
    assert sp.grid_size("pmtrec") == 5 * 4 * 11 * 8
    assert set(sp.for_method("pmtrec-nofocus")) == {"lr", "wd", "tau"}  # alpha is fixed at 1 there
    assert set(sp.for_method("pmtrec-nobalance")) == {"lr", "wd", "alpha"}  # tau is fixed at 1 there
    grid = sp.grid("pmtrec-nobalance")
    assert len(grid) == len({tuple(sorted(g.items())) for g in grid}) == 5 * 4 * 11


def test_command_line_lists_replace_the_base():
    sp = build_space("paper", {"lr": "0.01,0.005", "tau": "1e-2", "calpha": "0.2,0.5", "wd": None})
    assert sp.for_method("pmtrec")["lr"] == [0.01, 0.005]
    assert sp.for_method("pmtrec")["tau"] == [1e-2]
    assert sp.for_method("pmtrec")["wd"] == PAPER_SPACE["wd"]
    assert sp.for_method("cagrad")["calpha"] == [0.2, 0.5]
    assert "calpha" not in sp.for_method("pmtrec")
    assert parse_list("step,epoch", "per") == ["step", "epoch"]
    assert parse_list("true,false", "drop_absent") == [True, False]
    assert parse_list("1,1,2", "update_every") == [1, 2]  # duplicates dropped


def test_json_file_with_per_method_values(tmp_path):
    f = tmp_path / "space.json"
    f.write_text(json.dumps({"lr": [0.01], "wd": [1e-4, 1e-6], "methods": {"cagrad": {"calpha": [0.1, 0.4]},
                                                                           "pmtrec": {"lr": [0.005]}}}))
    sp = load_space_file(f)
    assert sp.for_method("cagrad") == {"calpha": [0.1, 0.4], "lr": [0.01], "wd": [1e-4, 1e-6]}
    assert sp.for_method("pmtrec") == {"lr": [0.005], "wd": [1e-4, 1e-6]}
    assert SearchSpace.from_dict(sp.to_dict()).for_method("cagrad") == sp.for_method("cagrad")


@pytest.mark.parametrize("content, msg", [
    ('{"lr": [0.1,', "line 1"),
    ('{"lrr": [0.1]}', "unknown parameter 'lrr'"),
    ('{"lr": []}', "non-empty list"),
    ('{"methods": {"ew": {"tau": [1]}}}', "method 'ew' has no parameter 'tau'"),
    ('[1, 2]', "must be an object"),
])
def test_bad_space_file_is_one_clear_error(tmp_path, content, msg):
    f = tmp_path / "s.json"
    f.write_text(content)
    with pytest.raises(PmtError, match=msg) as e:
        load_space_file(f)
    assert str(f) in str(e.value)


def test_bad_list_option():
    with pytest.raises(PmtError, match="--lr: no values"):
        build_space(None, {"lr": " , "})
    with pytest.raises(PmtError, match="unknown parameter 'gamma'"):
        build_space(None, {"gamma": "1,2"})
    with pytest.raises(PmtError, match="finite"):
        build_space(None, {"lr": "nan"})


def test_package_imports_without_the_sweep_extra(monkeypatch):
    """`import pmtnumba.sweep.*` needs neither optuna nor dask; using it says what to install."""
    import builtins
    import importlib

    real = builtins.__import__

    def fake(name, *a, **k):
        if name.split(".")[0] in ("optuna", "distributed", "dask"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    for mod in ("pmtnumba.sweep", "pmtnumba.sweep.space", "pmtnumba.sweep.study", "pmtnumba.sweep.report",
                "pmtnumba.sweep.executor", "pmtnumba.sweep.trial", "pmtnumba.sweep.storage"):
        importlib.reload(importlib.import_module(mod))
    from pmtnumba.sweep._deps import distributed, optuna

    with pytest.raises(PmtError, match=r"pip install -e '\.\[sweep\]'"):
        optuna()
    with pytest.raises(PmtError, match=r"pip install -e '\.\[sweep\]'"):
        distributed()


def _settings(methods, space):
    return {"name": "s", "dataset": "office", "base_config": {"lr": 0.01}, "methods": methods,
            "space": space.to_dict(), "search": "grid", "trials": None, "pruner": {}, "seed": 0, "storage": None}


def test_a_method_without_trials_may_get_values_of_its_own(tmp_path):
    """Methods added to a sweep, or whose search has not begun, may be given values of their own;
    the methods with trials keep their recorded spaces, and the shared lists cannot change."""
    pytest.importorskip("optuna")
    from pmtnumba.sweep.study import Sweep

    shared = {"lr": [0.01], "wd": [1e-4, 1e-6], "tau": [1e-2, 1e-6]}
    sw = Sweep.create_or_resume(tmp_path, _settings(["ew", "pmtrec"], SearchSpace(shared)))
    sw.create_study("ew", 0).ask()  # ew's search has begun, pmtrec's not
    later = SearchSpace(shared, {"pmtrec": {"wd": [1e-6]}, "pcgrad": {"wd": [1e-6]},
                                 "cagrad": {"wd": [1e-6], "calpha": [0.4]}})
    sw = Sweep.create_or_resume(tmp_path, _settings(["pcgrad", "cagrad"], later))
    assert sw.methods() == ["ew", "pmtrec", "pcgrad", "cagrad"]
    assert sw.space.for_method("pcgrad") == {"lr": [0.01], "wd": [1e-6]}
    assert sw.space.grid_size("cagrad") == 1
    assert sw.space.for_method("pmtrec") == {"lr": [0.01], "tau": [1e-2, 1e-6], "wd": [1e-6]}
    assert sw.space.for_method("ew") == {"lr": [0.01], "wd": [1e-4, 1e-6]}
    # the merged space is what sweep.json now holds: a plain re-run of the first command continues
    again = Sweep.create_or_resume(tmp_path, _settings(["ew"], SearchSpace(shared)))
    assert again.space.for_method("cagrad") == {"calpha": [0.4], "lr": [0.01], "wd": [1e-6]}
    with pytest.raises(PmtError, match="'ew' already has trials in this sweep"):
        Sweep.create_or_resume(tmp_path, _settings(["ew"], SearchSpace(shared, {"ew": {"wd": [1e-6]}})))
    with pytest.raises(PmtError, match="other settings \\(space\\)"):
        Sweep.create_or_resume(tmp_path, _settings(["rlw"], SearchSpace(dict(shared, lr=[0.005]))))


def test_one_seed_report_says_there_is_no_paired_test(tmp_path):
    """A report on one seed gives its table and says why there is no t-test (not a column of NaN)."""
    pytest.importorskip("scipy")
    from pmtnumba.sweep.report import _table

    def run(method, seed, r):
        return {"method": method, "seed": seed, "status": "ok", **{f"{m}@{k}": r for m in ("recall", "ndcg", "hr")
                                                                  for k in (20,)}}

    one = [run("ew", 0, 0.1), run("pmtrec", 0, 0.2)]
    _table(one, ["ew", "pmtrec"], (20,), "cap", tmp_path / "t1")
    text = (tmp_path / "t1.md").read_text()
    assert "No paired t-test" in text and "nan" not in text
    two = one + [run("ew", 1, 0.12), run("pmtrec", 1, 0.25)]
    _table(two, ["ew", "pmtrec"], (20,), "cap", tmp_path / "t2")
    text = (tmp_path / "t2.md").read_text()
    assert "| ew | pmtrec |" in text and "No paired t-test" not in text
