"""What a run records about its origin never fails: without git the commit is None."""

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

from pmtnumba import provenance


def test_versions_without_git(monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    v = provenance.versions()
    assert v["git_commit"] is None and v["git_dirty"] is None and v["pmtnumba"]


def test_versions_outside_a_repository(monkeypatch):
    def not_a_repo(*args, **kwargs):
        raise subprocess.CalledProcessError(128, args[0], "", "fatal: not a git repository")

    monkeypatch.setattr(subprocess, "run", not_a_repo)
    assert provenance.git_commit() == {"commit": None, "dirty": None}


def test_versions_in_this_checkout_name_a_commit_or_none():
    c = provenance.git_commit()["commit"]
    assert c is None or (len(c) == 40 and int(c, 16) >= 0)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_dirty_means_the_code_differs_not_the_results(tmp_path):
    """A checkout whose results change as a search writes them still ran committed code; a
    changed or new engine file makes it dirty."""
    repo = tmp_path / "repo"
    (repo / "pmtnumba").mkdir(parents=True)
    (repo / "results").mkdir()
    shutil.copy(provenance.__file__, repo / "pmtnumba" / "provenance.py")
    (repo / "results" / "table.csv").write_text("a\n")

    def git(*args):
        subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", *args],
                       check=True, capture_output=True)

    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "x")
    spec = importlib.util.spec_from_file_location("prov_copy", repo / "pmtnumba" / "provenance.py")
    prov = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prov)
    assert prov.git_commit()["dirty"] is False
    (repo / "results" / "table.csv").write_text("b\n")
    (repo / "results" / "new.csv").write_text("c\n")
    assert prov.git_commit()["dirty"] is False
    (repo / "pmtnumba" / "new_module.py").write_text("x = 1\n")
    g = prov.git_commit()
    assert g["dirty"] is True and g["commit"] and len(g["commit"]) == 40
    (repo / "pmtnumba" / "new_module.py").unlink()
    (repo / "pmtnumba" / "provenance.py").write_text(Path(provenance.__file__).read_text() + "\n# edited\n")
    assert prov.git_commit()["dirty"] is True
