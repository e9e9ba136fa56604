"""What a run records about its origin never fails: without git the commit is None."""

import subprocess

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
