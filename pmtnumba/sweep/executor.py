"""Where trials run: a ``dask.distributed`` cluster.

By default an embedded ``LocalCluster`` with one single-threaded worker *process* per core
(``threads_per_worker=1``; each trial also sets Numba to one thread): a trial is a long chain of
short Numba kernels, so several one-thread trials side by side use the cores better than one
trial with several threads, and processes keep the GIL out of the way. With ``scheduler`` (e.g.
``tcp://host:8786``) the same tasks go to an existing cluster started with ``dask scheduler`` /
``dask worker`` or any Dask deployment; its workers need the package, the data, and access to
the study storage (see :mod:`.storage`).
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from ..errors import PmtError
from ._deps import distributed


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


#: One thread per worker process for Numba and the BLAS (the trial sets Numba to one thread too).
WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


@contextmanager
def _spawn_environ(env: dict):
    """Set ``env`` in this process while the cluster spawns its workers, then restore it.

    The variables must be there when a worker process starts, not later: a spawned worker first
    re-imports the driver's ``__main__`` (the ``pmtnumba`` script imports Numba and NumPy), so
    Numba and OpenBLAS read their thread counts before Dask's ``env=`` would reach them, and a
    NUMBA_NUM_THREADS that changes after Numba's threads started makes Numba's next compilation
    fail ("Cannot set NUMBA_NUM_THREADS to a different value once the threads have been
    launched"): every trial failed on a cold kernel cache. Dask's ``pre-spawn-environ`` would
    leave them set in this process, where the same error would then hit the driver's own
    compilations; hence set, spawn, restore.
    """
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def open_client(scheduler: str | None = None, n_workers: int | None = None, quiet: bool = True):
    """Yield a ``distributed.Client``: connected to ``scheduler``, or to an embedded LocalCluster of
    ``n_workers`` single-threaded worker processes (closed again on exit)."""
    dist = distributed()
    if scheduler:
        try:
            client = dist.Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise PmtError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        try:
            yield client
        finally:
            client.close()
        return
    n = n_workers or default_workers()
    if n < 1:
        raise PmtError(f"--workers must be >= 1, got {n}")
    with _spawn_environ(WORKER_ENV):
        cluster = dist.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                                    silence_logs=40 if quiet else 30)
    try:
        client = dist.Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def n_slots(client) -> int:
    """Trials worth keeping in flight: one per worker thread (at least one)."""
    try:
        info = client.scheduler_info()
        return max(1, sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values()))
    except Exception:  # noqa: BLE001 - a scheduler without the info: keep one in flight
        return 1
