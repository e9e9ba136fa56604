"""Bad run files: every file a command reads, emptied, truncated, garbled, with keys missing or
mistyped, wrong shapes or dtypes, non-finite values; and the data file changed or gone. Each case
must end in ONE line ``error: <file>: <what is wrong>`` and exit status 2, never a traceback.

``CASES`` is the table of the closing note: (name, how the run is damaged, command, the message).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile

import numpy as np
import pytest

from .faults import FIT, cli, error_of, write_toy_csv


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """One finished PMTRec run (with weights.csv) on a tiny CSV; each case damages a copy."""
    root = tmp_path_factory.mktemp("runfiles")
    csv = write_toy_csv(root / "toy.csv")
    run = root / "run"
    r = cli("fit", "--dataset", csv, "--tasks", "bpr,rating", "--method", "pmtrec", "--epochs", "2", "--out", run, *FIT)
    assert r.exit_code == 0, r.output
    return root


def _npz(path, **arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


def _emb(run):
    with np.load(run / "embeddings.npz") as z:
        return {k: z[k] for k in z.files}


def _legacy(run):
    """Drop the manifest: the content checks themselves are then what catches the damage."""
    (run / "run.json").unlink()


def _edit_json(run, name, fn):
    p = run / name
    p.write_text(json.dumps(fn(json.loads(p.read_text()))))


def _truncate(p, keep=0.5):
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * keep)])


def _pickled(run):
    e = _emb(run)
    e["user_emb"] = np.array([{"x": 1}] * 3, dtype=object)
    buf = io.BytesIO()
    np.savez(buf, **e)  # savez pickles object arrays
    (run / "embeddings.npz").write_bytes(buf.getvalue())


def _with(**changes):
    def damage(run):
        _legacy(run)
        e = _emb(run)
        for k, v in changes.items():
            if v is None:
                e.pop(k)
            else:
                e[k] = v(e)
        _npz(run / "embeddings.npz", **e)
    return damage


def _same_size_edit(run):
    p = run / "config.json"
    text = p.read_text()
    p.write_text(text.replace('"seed": 0', '"seed": 7'))


def _partial_checkpoint(fn):
    """Make the run an unfinished one whose checkpoint is damaged by ``fn``."""
    def damage(run):
        (run / ".partial").mkdir()
        for n in ("config.json", "curve.csv", "checkpoint.npz"):
            shutil.copy2(run / n, run / ".partial" / n)
        fn(run / ".partial" / "checkpoint.npz")
    return damage


def _ckpt_without_meta_key(p):
    with np.load(p) as z:
        a = {k: z[k] for k in z.files}
    meta = json.loads(str(a["meta"]))
    meta.pop("epoch")
    a["meta"] = np.array(json.dumps(meta))
    _npz(p, **a)


RUN = "{run}"
EVAL = ("evaluate", RUN)
RESUME = ("fit", "--dataset", "{csv}", "--tasks", "bpr,rating", "--method", "pmtrec", "--epochs", "3",
          "--out", RUN, "--resume", *FIT)

#: (name, damage(run dir), command, expected message with {run} for the run directory)
CASES = [
    # the manifest (run.json) catches any change to a finished run's files
    ("embeddings truncated (manifest)", lambda r: _truncate(r / "embeddings.npz"), EVAL,
     "error: {run}/embeddings.npz: {n} bytes, but the run wrote {m} (run.json): cut short or replaced after the run finished"),
    ("config edited, same size (manifest)", _same_size_edit, EVAL,
     "error: {run}/config.json: content differs from what the run wrote (run.json): changed after the run finished"),
    ("metrics.json deleted (manifest)", lambda r: (r / "metrics.json").unlink(), EVAL,
     "error: {run}/metrics.json: missing (listed in run.json)"),
    ("run.json garbage", lambda r: (r / "run.json").write_text("{nonsense"), EVAL,
     "error: {run}/run.json: not valid JSON (Expecting property name enclosed in double quotes, line 1 column 2)"),
    ("run.json wrong shape", lambda r: (r / "run.json").write_text('{"files": [1, 2]}'), EVAL,
     "error: {run}/run.json: key 'files' should be an object, is a list ([1, 2])"),
    # content checks (runs written before manifests, or manifest removed)
    ("config.json emptied", lambda r: (_legacy(r), (r / "config.json").write_text("")), EVAL,
     "error: {run}/config.json: empty file (expected JSON)"),
    ("config.json truncated", lambda r: (_legacy(r), _truncate(r / "config.json")), EVAL,
     "error: {run}/config.json: not valid JSON ({jsonmsg}); the file looks cut short"),
    ("config.json a list", lambda r: (_legacy(r), (r / "config.json").write_text("[1, 2]")), EVAL,
     "error: {run}/config.json: expected a JSON object, found a list"),
    ("config.json missing key", lambda r: (_legacy(r), _edit_json(r, "config.json", lambda c: {k: v for k, v in c.items() if k != "seed"})), EVAL,
     "error: {run}/config.json: missing key 'seed'"),
    ("config.json wrong type", lambda r: (_legacy(r), _edit_json(r, "config.json", lambda c: {**c, "seed": "abc"})), EVAL,
     "error: {run}/config.json: key 'seed' should be an integer, is a string (\"abc\")"),
    ("config.json binary garbage", lambda r: (_legacy(r), (r / "config.json").write_bytes(b"\xff\xfe\x00garbage")), EVAL,
     "error: {run}/config.json: not a UTF-8 text file (expected JSON)"),
    ("metrics.json wrong value", lambda r: (_legacy(r), _edit_json(r, "metrics.json", lambda m: {**m, "test": {"recall@20": "high"}})), EVAL,
     "error: {run}/metrics.json: 'test' value 'recall@20' should be a number or null, is a string"),
    ("config.json missing, no run", lambda r: (_legacy(r), (r / "config.json").unlink()), EVAL,
     "error: {run}: not a finished run directory (missing config.json)"),
    ("embeddings.npz emptied", lambda r: (_legacy(r), (r / "embeddings.npz").write_bytes(b"")), EVAL,
     "error: {run}/embeddings.npz: empty file (0 bytes; expected an .npz archive)"),
    ("embeddings.npz truncated", lambda r: (_legacy(r), _truncate(r / "embeddings.npz")), EVAL,
     "error: {run}/embeddings.npz: damaged or truncated .npz archive (BadZipFile: File is not a zip file)"),
    ("embeddings.npz garbage", lambda r: (_legacy(r), (r / "embeddings.npz").write_bytes(os.urandom(3000))), EVAL,
     "error: {run}/embeddings.npz: not an .npz archive (garbage or another format)"),
    ("embeddings.npz pickled", lambda r: (_legacy(r), _pickled(r)), EVAL,
     "error: {run}/embeddings.npz: holds a Python object array (pickled data), which pmtnumba never writes; not loading it"),
    ("embeddings.npz missing key", _with(item_emb=None), EVAL,
     "error: {run}/embeddings.npz: missing array 'item_emb' (has item_raw, user_emb, user_raw)"),
    ("embeddings.npz wrong dtype", _with(user_emb=lambda e: e["user_emb"].astype(np.int64)), EVAL,
     "error: {run}/embeddings.npz: array 'user_emb' has dtype int64, expected floats"),
    ("embeddings.npz wrong width", _with(item_emb=lambda e: e["item_emb"][:, :5]), EVAL,
     "error: {run}/embeddings.npz: 'user_emb' and 'item_emb' differ in width (32 vs 5)"),
    ("embeddings.npz wrong rows", _with(item_emb=lambda e: e["item_emb"][:-1], item_raw=lambda e: e["item_raw"][:-1]), EVAL,
     "error: {run}/embeddings.npz: embeddings do not match the data ({csv}: 40 users x 29 items vs 40 x 30)"),
    ("embeddings.npz NaN", _with(user_emb=lambda e: np.where(np.arange(e["user_emb"].size).reshape(e["user_emb"].shape) % 7 == 0, np.nan, e["user_emb"])), EVAL,
     "error: {run}/embeddings.npz: array 'user_emb' holds 183 non-finite value(s) (NaN/Inf); the run diverged, retrain it (e.g. with a smaller --lr)"),
    ("embeddings.npz NaN (recommend)", _with(item_emb=lambda e: e["item_emb"] * np.inf), ("recommend", RUN, "--user", "u3"),
     "error: {run}/embeddings.npz: array 'item_emb' holds 960 non-finite value(s) (NaN/Inf); the run diverged, retrain it (e.g. with a smaller --lr)"),
    # checkpoints (fit --resume)
    ("checkpoint.npz truncated", _partial_checkpoint(_truncate), RESUME,
     "error: {run}/.partial/checkpoint.npz: damaged or truncated .npz archive (BadZipFile: File is not a zip file)"),
    ("checkpoint.npz emptied", _partial_checkpoint(lambda p: p.write_bytes(b"")), RESUME,
     "error: {run}/.partial/checkpoint.npz: empty file (0 bytes; expected an .npz archive)"),
    ("checkpoint meta missing key", _partial_checkpoint(_ckpt_without_meta_key), RESUME,
     "error: {run}/.partial/checkpoint.npz (meta): missing key 'epoch'"),
    # weights.csv (pmtnumba weights)
    ("weights.csv truncated", lambda r: _truncate(r / "weights.csv", 0.5), ("weights", RUN),
     "error: {run}/weights.csv: line {line}: missing value for {col} (the file looks cut short)"),
    ("weights.csv garbage", lambda r: (r / "weights.csv").write_text("a;b;c\n1;2;3\n"), ("weights", RUN),
     "error: {run}/weights.csv: missing column(s) epoch, group, task, n, mean, p10, p50, p90 in the header"),
    ("weights.csv emptied", lambda r: (r / "weights.csv").write_text(""), ("weights", RUN),
     "error: {run}/weights.csv: empty file (no weights recorded)"),
    # the data the run was trained on
    ("data file changed", lambda r: (r.parent / "toy.csv").open("a").write("u1,1999,4\n"), EVAL,
     "error: {csv}: the data file changed since the run was trained ({n} -> {m} bytes); the split and ids would not be "
     "the run's ({run}/config.json). Pass --allow-changed-data to use it anyway"),
    ("data file gone", lambda r: (r.parent / "toy.csv").unlink(), EVAL,
     "error: {csv}: the data file the run was trained on is gone (recorded in {run}/config.json); put it back to "
     "use this run"),
]


def _matches(line: str, pattern: str) -> bool:
    """``pattern`` with ``{n}``/``{m}``/``{jsonmsg}``/``{line}``/``{col}`` as wildcards."""
    import re

    rx = re.escape(pattern)
    for w in ("n", "m", "line"):
        rx = rx.replace(re.escape("{" + w + "}"), r"\d+")
    rx = rx.replace(re.escape("{jsonmsg}"), r"[^()]+, line \d+ column \d+").replace(re.escape("{col}"), r"'\w+'")
    return re.fullmatch(rx, line) is not None


def _repoint(run, csv):
    """The run's config.json records the data file's absolute path: point it at this copy (and
    keep the manifest run.json in step, as if the run had been trained here)."""
    from pmtnumba.training.runio import sha256_file

    p = run / "config.json"
    c = json.loads(p.read_text())
    c["data"]["path"] = str(csv)
    p.write_text(json.dumps(c, indent=2))
    m = json.loads((run / "run.json").read_text())
    m["files"]["config.json"] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    (run / "run.json").write_text(json.dumps(m))


def run_case(base, tmp_path, case):
    name, damage, argv, expected = case
    work = tmp_path / "w"
    shutil.copytree(base, work)
    run = work / "run"
    _repoint(run, work / "toy.csv")
    damage(run)
    fill = {"run": str(run), "csv": str(work / "toy.csv")}
    r = cli(*[a.format(**fill) for a in argv])
    return r, expected.replace("{run}", fill["run"]).replace("{csv}", fill["csv"])


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_run_file_gives_one_line(base, tmp_path, case):
    r, expected = run_case(base, tmp_path, case)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    assert _matches(error_of(r), expected), f"\n got: {error_of(r)}\nwant: {expected}"
    assert sum(ln.startswith("error:") for ln in r.output.splitlines()) == 1


def test_changed_data_allowed_when_asked(base, tmp_path):
    work = tmp_path / "w"
    shutil.copytree(base, work)
    csv = work / "toy.csv"
    cfg = json.loads((base / "run" / "config.json").read_text())
    assert cfg["data"]["path"] == str(base / "toy.csv") and cfg["data"]["size"] == csv.stat().st_size
    with open(base / "toy.csv", "a") as f:  # the file the run records
        f.write("u1,1001,5\n")  # a duplicate pair: same data set, different file
    try:
        r = cli("evaluate", base / "run")
        assert r.exit_code == 2 and "the data file changed since the run was trained" in r.output
        r = cli("evaluate", base / "run", "--allow-changed-data")
        assert r.exit_code == 0, r.output
        assert "warning:" in r.output and "going on as asked" in r.output
    finally:
        data = (base / "toy.csv").read_bytes()
        (base / "toy.csv").write_bytes(data[: -len(b"u1,1001,5\n")])


def test_run_of_a_csv_works_from_any_directory(base, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("evaluate", base / "run")
    assert r.exit_code == 0, r.output
    r = cli("recommend", base / "run", "--user", "u3", "-k", "99999999999")
    assert r.exit_code == 0, r.output
    assert "-k 99999999999 is more than the 30 items: listing at most 30" in r.output
    listed = [ln for ln in r.output.splitlines() if ln.strip().split()[:1] and ln.strip().split()[0].isdigit()]
    assert len(listed) == 30 - 8  # every item the user has not interacted with


def test_zip_member_damaged_inside(base, tmp_path):
    """A flipped byte inside a compressed member (the zip directory intact): CRC / zlib error, one line."""
    work = tmp_path / "w"
    shutil.copytree(base, work)
    run = work / "run"
    _legacy(run)
    p = run / "embeddings.npz"
    with zipfile.ZipFile(p) as z:
        info = z.getinfo("user_emb.npy")
    data = bytearray(p.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + 200] ^= 0xFF
    p.write_bytes(bytes(data))
    r = cli("evaluate", run)
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert error_of(r).startswith(f"error: {p}: damaged"), error_of(r)
