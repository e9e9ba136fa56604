"""Run directories: atomic file writes, and a run directory written as one transaction.

Files. Every file is written to a temporary name in its folder (``.NAME.XXXX.tmp``), flushed and
fsynced, then moved over the final name with ``os.replace`` (atomic on POSIX): a reader, or a
crash, never sees a half-written file. Files get the permissions of an ordinary new file
(``0666`` less the process umask), not the ``0600`` of ``tempfile``. JSON is always valid JSON:
a non-finite float (NaN, Inf) is written as ``null``.

Run directories. :class:`RunWriter` makes one ``fit`` a transaction on its directory ``DIR``:

- a lock file ``DIR/.lock`` (``fcntl.flock``, holding the owner's pid, host and start time)
  keeps a second writer out; the kernel releases it when the owner dies, so a crashed run's lock
  is recovered by the next start (which says so);
- everything the run writes goes to the staging folder ``DIR/.partial/`` (config, curve,
  checkpoint, weights, and at the end metrics and embeddings); a run killed or failed at any point
  leaves the earlier finished run in ``DIR`` untouched, and its own files in ``.partial`` (an
  unfinished run, which ``--resume`` continues);
- the commit writes a manifest ``run.json`` (size and SHA-256 of every file) and a journal
  ``.partial/COMMIT``, then moves the files into ``DIR``, removes the earlier run's files that the
  new run does not have, and moves ``run.json`` last. A commit interrupted half-way is rolled
  forward by the next writer or reader (:func:`recover`), so ``DIR`` never holds a mix of two
  runs that a reader would take for one (the reader checks files against ``run.json``);
- temporaries of a killed write are deleted on the next start.

A directory holding a finished or an unfinished run is refused unless ``resume`` (continue it)
or ``overwrite`` (replace it, at commit) is given.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import math
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import numpy as np

from ..errors import PmtError

#: The files of a run directory (``run.json`` is the manifest, written last).
RUN_FILES = ("config.json", "curve.csv", "weights.csv", "checkpoint.npz", "metrics.json", "embeddings.npz")
MANIFEST = "run.json"
STAGING = ".partial"
JOURNAL = "COMMIT"
LOCK = ".lock"


class RunDirError(PmtError):
    """A run directory cannot be used as asked (occupied, locked, not a directory...)."""


# ----------------------------------------------------------------------------------------------
# atomic files
# ----------------------------------------------------------------------------------------------

_UMASK = None


def _umask() -> int:
    """The process umask (read from /proc where possible: ``os.umask`` can only be read by setting it)."""
    global _UMASK
    if _UMASK is None:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("Umask:"):
                        _UMASK = int(line.split()[1], 8)
                        break
        except OSError:
            pass
        if _UMASK is None:
            _UMASK = os.umask(0o022)
            os.umask(_UMASK)
    return _UMASK


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, write) -> None:
    """Write ``path`` atomically: ``write(file)`` fills a temporary in the same folder, which is
    fsynced and renamed over ``path``. An OSError names ``path``."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except OSError as exc:
        if exc.filename is None or tmp is not None:  # name the file the user knows, not the temporary
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        raise
    finally:
        if tmp is not None and os.path.exists(tmp):
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(Path(path), lambda f: f.write(data))


def json_safe(obj):
    """``obj`` with every non-finite float replaced by None (JSON has no NaN or Inf)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def write_json(path, obj) -> None:
    text = json.dumps(json_safe(obj), indent=2, sort_keys=False, allow_nan=False) + "\n"
    _atomic_write_bytes(Path(path), text.encode())


def write_csv(path, rows: list[dict]) -> None:
    buf = io.StringIO()
    if rows:
        fields = list(rows[0].keys())
        for r in rows[1:]:
            fields += [k for k in r if k not in fields]
        w = csv.DictWriter(buf, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    _atomic_write_bytes(Path(path), buf.getvalue().encode())


def write_npz(path, compress: bool = True, **arrays) -> None:
    """Write an .npz atomically, streamed to the temporary file (no copy of the arrays in memory)."""
    _atomic_write(Path(path), lambda f: (np.savez_compressed if compress else np.savez)(f, **arrays))


def read_json(path) -> dict:
    """Read a JSON file (validated readers for run files: :mod:`.runs`)."""
    from .runs import read_json_file

    return read_json_file(path)


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def clean_temporaries(folder) -> list[str]:
    """Delete the ``.NAME.XXXX.tmp`` leftovers of killed atomic writes in ``folder``."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.glob(".*.tmp"):
        try:
            p.unlink()
            removed.append(p.name)
        except OSError:
            pass
    return removed


# ----------------------------------------------------------------------------------------------
# the lock
# ----------------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class RunLock:
    """An exclusive lock on a run directory: ``DIR/.lock`` locked with ``flock`` and holding
    ``{"pid", "host", "since"}`` of its owner (for messages). The kernel drops the lock when the
    owner dies, so a crashed owner's lock is taken over (and the takeover reported in ``stale``).
    Where ``flock`` is not supported, the recorded pid is checked instead (same host only)."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.fd = None
        self.recorded = False
        self.stale = None  # the previous owner's record, when its lock was left behind by a crash

    @staticmethod
    def _read(path) -> dict:
        try:
            rec = json.loads(Path(path).read_text() or "{}")
            return rec if isinstance(rec, dict) else {}
        except (OSError, ValueError):
            return {}

    def _owner_text(self, rec: dict) -> str:
        if not rec:
            return "another process"
        return f"pid {rec.get('pid', '?')} on host {rec.get('host', '?')}, since {rec.get('since', '?')}"

    def acquire(self, record: bool = True) -> "RunLock":
        """Take the lock (RunDirError naming the owner if another process holds it). With
        ``record=False`` (a check only) the previous owner's record is left as it is."""
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                rec = self._read(self.path)
                os.close(fd)
                raise RunDirError(
                    f"{self.folder}: in use by {self._owner_text(rec)} (lock file {self.path}); "
                    f"wait until it finishes or use another --out"
                ) from None
            except OSError as exc:  # no flock on this file system: fall back to the recorded pid
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL):
                    os.close(fd)
                    raise
                rec = self._read(self.path)
                if rec and rec.get("host") == socket.gethostname() and rec.get("pid") != os.getpid() \
                        and _pid_alive(int(rec.get("pid", -1))):
                    os.close(fd)
                    raise RunDirError(f"{self.folder}: in use by {self._owner_text(rec)} (lock file {self.path})") from None
            # the file may have been unlinked by its previous owner between our open and flock
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        old = self._read(self.path)
        if old and old.get("pid") != os.getpid():
            self.stale = old
        self.recorded = record
        if not record:
            self.fd = fd
            return self
        rec = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(rec) + "\n").encode(), 0)
        self.fd = fd
        return self

    def stale_text(self) -> str | None:
        if not self.stale:
            return None
        return f"{self.folder}: recovered the lock left by a run that ended without releasing it ({self._owner_text(self.stale)})"

    def release(self) -> None:
        if self.fd is None:
            return
        if self.recorded or os.fstat(self.fd).st_size == 0:  # a check leaves no empty lock file behind
            try:
                os.unlink(self.path)  # while still holding the lock: a waiter re-checks the inode
            except OSError:
                pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


# ----------------------------------------------------------------------------------------------
# the run directory transaction
# ----------------------------------------------------------------------------------------------


def _check_out_path(run: Path) -> None:
    """Refuse an ``--out`` that cannot be a run directory, with the reason, before any training."""
    for parent in [run, *run.parents]:
        if parent.exists():
            if not parent.is_dir():
                if parent == run:
                    raise RunDirError(f"--out {run}: is a file, not a directory")
                raise RunDirError(f"--out {run}: {parent} is a file, not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise RunDirError(f"--out {run}: {parent} is not writable")
            break


def finished_run_files(run: Path) -> list[str]:
    """The run files present in ``run`` itself (a finished or a legacy run)."""
    return [n for n in (MANIFEST, *RUN_FILES) if (run / n).is_file()]


def recover(run_dir) -> bool:
    """Roll forward a commit interrupted half-way (see the module doc); True if there was one.
    The caller holds the lock."""
    run = Path(run_dir)
    stage = run / STAGING
    journal = stage / JOURNAL
    if not journal.is_file():
        return False
    try:
        names = json.loads(journal.read_text())["files"]
        names = [str(n) for n in names]
    except (OSError, ValueError, KeyError, TypeError):
        # a journal is written atomically, so this is damage from outside: keep the files, say so
        raise RunDirError(f"{journal}: unreadable commit journal; the files of the interrupted run are in {stage}")
    if (stage / MANIFEST).is_file() and (run / MANIFEST).is_file():
        os.unlink(run / MANIFEST)
    for n in names:
        if n != MANIFEST and (stage / n).is_file():
            os.replace(stage / n, run / n)
    for n in RUN_FILES:
        if n not in names and (run / n).is_file():
            os.unlink(run / n)
    if (stage / MANIFEST).is_file():
        os.replace(stage / MANIFEST, run / MANIFEST)
    _fsync_dir(run)
    shutil.rmtree(stage, ignore_errors=True)
    return True


class RunWriter:
    """One ``fit`` as a transaction on ``run_dir`` (see the module doc).

    ``with RunWriter(dir, resume=..., overwrite=..., message=print) as run:`` takes the lock,
    finishes an interrupted commit, deletes temporaries, refuses an occupied directory unless
    told, and prepares ``run.stage``; ``run.write_json/write_csv/write_npz(name, ...)`` write
    there; ``run.commit()`` makes the run the directory's finished run. Leaving the block
    without a commit keeps the staged files (an unfinished run, resumable) and frees the lock.
    """

    def __init__(self, run_dir, resume: bool = False, overwrite: bool = False, message=None):
        if resume and overwrite:
            raise RunDirError("--resume and --overwrite exclude each other")
        self.run = Path(run_dir)
        self.stage = self.run / STAGING
        self.resume = resume
        self.overwrite = overwrite
        self.message = message or (lambda text: None)
        self.lock = RunLock(self.run)
        self.committed = False
        #: the checkpoint to continue from (``resume``), or None
        self.resume_from: Path | None = None

    def _describe_unfinished(self) -> str:
        ck = self.stage / "checkpoint.npz"
        curve = self.stage / "curve.csv"
        if curve.is_file():
            try:
                n = max(0, len(curve.read_text().splitlines()) - 1)
                return f"an unfinished run (stopped after epoch {n}; its files are in {self.stage})"
            except OSError:
                pass
        return f"an unfinished run ({'with' if ck.is_file() else 'no'} checkpoint; its files are in {self.stage})"

    def open(self) -> "RunWriter":
        _check_out_path(self.run)
        try:
            self.run.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"--out {self.run}: cannot create it ({exc.strerror})") from None
        self.lock.acquire()
        try:
            self._prepare()
        except BaseException:
            self.lock.release()
            raise
        return self

    def check(self) -> None:
        """Refuse now what :meth:`open` would refuse (occupied, locked, unusable path), changing
        nothing: lets a command fail before it loads data and trains. ``open`` checks again."""
        _check_out_path(self.run)
        if not self.run.is_dir():
            return
        if not os.access(self.run, os.W_OK | os.X_OK):
            raise RunDirError(f"--out {self.run}: is not writable")
        self.lock.acquire(record=False)
        try:
            self._prepare(dry=True)
        finally:
            self.lock.release()
            self.resume_from = None

    def _prepare(self, dry: bool = False) -> None:
        if dry:
            pass
        elif self.lock.stale_text():
            self.message(self.lock.stale_text())
        if not dry:
            if recover(self.run):
                self.message(f"{self.run}: finished the commit of a run that was interrupted while saving")
            removed = clean_temporaries(self.run) + clean_temporaries(self.stage)
            if removed:
                self.message(f"{self.run}: removed {len(removed)} temporary file(s) of an interrupted write")
        finished = finished_run_files(self.run)
        unfinished = self.stage.is_dir()
        foreign = sorted(p.name for p in self.run.iterdir()
                         if p.name not in (LOCK, STAGING, MANIFEST, *RUN_FILES) and not p.name.startswith("."))
        if self.overwrite:
            if unfinished and not dry:
                shutil.rmtree(self.stage)
        elif self.resume:
            if unfinished:
                ck = self.stage / "checkpoint.npz"
                if ck.is_file():
                    self.resume_from = ck
                elif not dry:
                    self.message(f"{self.run}: the unfinished run has no checkpoint yet: starting it afresh")
            elif finished:
                ck = self.run / "checkpoint.npz"
                if not ck.is_file():
                    raise RunDirError(f"{self.run}: holds a finished run without a checkpoint to continue from; "
                                      f"use --overwrite to replace it or another --out")
                self.resume_from = ck
            elif not dry:
                self.message(f"{self.run}: nothing to resume: starting a new run")
        else:
            if unfinished:
                raise RunDirError(f"{self.run}: holds {self._describe_unfinished()}; "
                                  f"pass --resume to continue it or --overwrite to start again")
            if finished:
                kind = "a finished run" if (self.run / MANIFEST).is_file() else "a run"
                raise RunDirError(f"{self.run}: holds {kind} ({', '.join(finished)}); pass --overwrite to replace "
                                  f"it, --resume to continue it, or choose another --out")
            if foreign:
                shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
                raise RunDirError(f"{self.run}: not empty and not a run directory (holds {shown}); "
                                  f"choose another --out (or --overwrite to write a run beside those files)")
        if not dry:
            self.stage.mkdir(exist_ok=True)

    # -- writes into the staging folder ---------------------------------------------------------
    def path(self, name: str) -> Path:
        return self.stage / name

    def write_json(self, name: str, obj) -> None:
        write_json(self.stage / name, obj)

    def write_csv(self, name: str, rows) -> None:
        write_csv(self.stage / name, rows)

    def write_npz(self, name: str, compress: bool = True, **arrays) -> None:
        write_npz(self.stage / name, compress=compress, **arrays)

    def commit(self) -> None:
        """Make the staged files the directory's finished run (manifest, journal, moves)."""
        if self.resume_from is not None and self.resume_from.parent == self.run \
                and not (self.stage / "checkpoint.npz").exists() and self.resume_from.is_file():
            shutil.copy2(self.resume_from, self.stage / "checkpoint.npz")  # keep the run continuable
        names = sorted(n for n in RUN_FILES if (self.stage / n).is_file())
        manifest = {
            "format": 1,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "files": {n: {"size": (self.stage / n).stat().st_size, "sha256": sha256_file(self.stage / n)}
                      for n in names},
        }
        write_json(self.stage / MANIFEST, manifest)
        write_json(self.stage / JOURNAL, {"files": names + [MANIFEST]})  # the commit point
        recover(self.run)
        self.committed = True

    def close(self) -> None:
        self.lock.release()

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()


def default_run_dir(dataset: str, method: str, root="runs") -> Path:
    """Where a fit without ``--out`` goes: ``runs/<dataset>-<method>-<YYYYmmdd-HHMMSS>`` (a data
    file's name without its suffix; ``-2``, ``-3``... if that folder exists already)."""
    name = Path(dataset).stem if ("/" in dataset or os.sep in dataset or "." in dataset) else dataset
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "data"
    base = Path(root) / f"{name}-{method}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def save_result(run, result, dataset) -> None:
    """Write a finished run's ``curve.csv``, ``embeddings.npz`` and ``metrics.json`` into ``run``
    (a :class:`RunWriter`, or a folder path: then written there directly)."""
    if not isinstance(run, RunWriter):
        out = Path(run)

        class _Plain:
            def write_json(self, n, o):
                write_json(out / n, o)

            def write_csv(self, n, r):
                write_csv(out / n, r)

            def write_npz(self, n, compress=True, **a):
                write_npz(out / n, compress=compress, **a)

        run = _Plain()
        run.write_json("config.json", result.config)
    run.write_csv("curve.csv", result.curve)
    run.write_npz(
        "embeddings.npz",
        user_emb=result.user_emb,
        item_emb=result.item_emb,
        user_raw=dataset.user_raw if dataset.user_raw is not None else np.arange(dataset.n_users),
        item_raw=dataset.item_raw if dataset.item_raw is not None else np.arange(dataset.n_items),
    )
    run.write_json(
        "metrics.json",
        {
            "dataset": dataset.name,
            "protocol": result.config.get("protocol"),
            "best_epoch": result.best_epoch,
            "epochs_run": len(result.curve),
            "stopped_early": result.stopped_early,
            "train_seconds": round(result.train_seconds, 3),
            "time_budget": getattr(result, "time_budget", None) or None,
            "valid": result.best_valid,
            "test": result.test,
            "effective": result.config.get("effective"),
        },
    )


def load_run(run_dir):
    """Read a run directory back, validated: (config dict, metrics dict or None, embeddings dict).
    See :func:`pmtnumba.training.runs.load_run`."""
    from .runs import load_run as _load

    r = _load(run_dir)
    return r.config, r.metrics, r.embeddings
