"""Which Optuna storage holds up under concurrent sweep workers: journal file vs SQLite file.

A sweep's workers write one intermediate value per validation (for pruning) while other
processes ask and tell. This runs P processes at once, each doing T trials of R reports each
(ask, R x report + should_prune with a MedianPruner, tell), against a fresh journal file and a
fresh SQLite file, side by side, and counts failed operations (exceptions) and wall time.

    python benchmarks/sweep_storage.py --procs 4 --trials 20 --reports 20
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time


def _storage(kind, path):
    import optuna

    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(path))
    return optuna.storages.RDBStorage(f"sqlite:///{path}")


def _worker(kind, path, trials, reports, q):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    errors, first = 0, ""
    try:
        study = optuna.load_study(study_name="bench", storage=_storage(kind, path),
                                  pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2))
    except Exception as exc:  # noqa: BLE001
        q.put((trials * (reports + 2), f"{type(exc).__name__}: {exc}"))
        return
    for t in range(trials):
        try:
            tr = study.ask()
            x = tr.suggest_float("x", 0, 1)
            for r in range(reports):
                tr.report(x * r, r)
                tr.should_prune()
            study.tell(tr, x)
        except Exception as exc:  # noqa: BLE001 - what we count
            errors += 1
            first = first or f"{type(exc).__name__}: {str(exc)[:120]}"
    q.put((errors, first))


def run(kind, procs, trials, reports):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    d = tempfile.mkdtemp()
    path = os.path.join(d, "s.journal" if kind == "journal" else "s.db")
    optuna.create_study(study_name="bench", storage=_storage(kind, path), direction="maximize")
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    ps = [ctx.Process(target=_worker, args=(kind, path, trials, reports, q)) for _ in range(procs)]
    t0 = time.perf_counter()
    for p in ps:
        p.start()
    res = [q.get() for _ in ps]
    for p in ps:
        p.join()
    wall = time.perf_counter() - t0
    st = optuna.load_study(study_name="bench", storage=_storage(kind, path))
    n_done = sum(1 for t in st.trials if t.state.is_finished())
    return wall, sum(e for e, _ in res), next((m for _, m in res if m), ""), n_done


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--reports", type=int, default=20)
    a = ap.parse_args()
    print(f"{a.procs} processes x {a.trials} trials x {a.reports} reports; load {os.getloadavg()[0]:.2f}")
    for kind in ("journal", "sqlite"):
        wall, errs, msg, n_done = run(kind, a.procs, a.trials, a.reports)
        print(f"{kind:8s} wall {wall:6.1f}s  failed trials {errs:3d}  finished {n_done}/{a.procs * a.trials}  {msg}")
