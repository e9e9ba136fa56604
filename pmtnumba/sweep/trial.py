"""One trial of a sweep, as it runs on a Dask worker: train one configuration, report every
validation to the study so Optuna's pruner can stop it early, return what happened.

The worker never finishes the trial in the study itself: it returns a plain dict and the driver
(:mod:`.study`) tells the study, so a trial is counted exactly once, by one process, even if a
worker's result arrives for a trial the driver has already written off.
"""

from __future__ import annotations

import os
import socket
import time

from ..errors import PmtError

#: Errors that mean "this configuration failed" (recorded, the sweep goes on); TrainingDiverged
#: is a PmtError. Anything else is recorded too, with its type, since one bad trial must not stop
#: a sweep of hundreds; the message says it was unexpected.
EXPECTED_ERRORS = (PmtError, ValueError, FloatingPointError, ArithmeticError)


class _Pruned(Exception):
    def __init__(self, epoch: int, value: float):
        super().__init__(f"pruned after epoch {epoch} (valid {value:.5f})")
        self.epoch, self.value = epoch, value


def make_pruner(spec: dict):
    """An Optuna pruner from its description (``{"name": "median", "startup": 5, "warmup": 5}``)."""
    from ._deps import optuna

    op = optuna()
    name = spec.get("name", "median")
    if name == "none":
        return op.pruners.NopPruner()
    if name == "median":
        return op.pruners.MedianPruner(n_startup_trials=int(spec.get("startup", 5)),
                                       n_warmup_steps=int(spec.get("warmup", 5)))
    if name == "hyperband":
        return op.pruners.HyperbandPruner(min_resource=max(1, int(spec.get("warmup", 5))),
                                          max_resource=int(spec.get("max_epochs", 300)))
    raise PmtError(f"--pruner must be median, hyperband or none, got {name!r}")


def _reporter(spec: dict, monitor: str):
    """A training Reporter that reports each validation to the trial and stops a hopeless one."""
    from ..training.loop import Reporter

    if spec["pruner"].get("name") == "none" or spec.get("trial_id") is None:
        return Reporter()
    from ._deps import optuna
    from .storage import open_storage

    op = optuna()
    study = op.load_study(study_name=spec["study"], storage=open_storage(spec["storage"]),
                          pruner=make_pruner(spec["pruner"]), sampler=op.samplers.RandomSampler())
    trial = op.trial.Trial(study, spec["trial_id"])

    class PruningReporter(Reporter):
        def epoch_end(self, record: dict) -> None:
            key = f"valid_{monitor}"
            if key not in record:
                return
            value = float(record[key])
            trial.report(value, int(record["epoch"]))
            if trial.should_prune():
                raise _Pruned(int(record["epoch"]), value)

    return PruningReporter()


def trial_config(spec: dict):
    """The FitConfig of a trial: the sweep's base configuration with the trial's parameters."""
    from ..training.config import FitConfig
    from .space import BPR_ONLY, TRAINING_PARAMS

    base = dict(spec["base_config"])
    base["ks"] = tuple(base.get("ks", (5, 10, 20, 40)))
    cfg = FitConfig(**base)
    cfg.method = spec["method"]
    if cfg.method == BPR_ONLY:  # the main task alone
        cfg.method, cfg.tasks, cfg.method_options = "ew", ["bpr"], {}
    opts = dict(cfg.method_options)
    for k, v in spec["params"].items():
        if k in TRAINING_PARAMS:
            setattr(cfg, k, float(v))
        else:
            opts[k] = v
    cfg.method_options = opts
    cfg.threads = 1  # one single-threaded worker per core: trials, not threads, use the cores
    cfg.checkpoint_every = 0
    cfg.record_weights = False
    return cfg


def run_trial(spec: dict) -> dict:
    """Train the trial's configuration; return ``{"status": "complete"|"pruned"|"fail", ...}``.

    ``spec``: ``study``, ``storage``, ``trial_id``, ``number``, ``method``, ``params``,
    ``base_config`` (a FitConfig as a dict), ``pruner`` (see :func:`make_pruner`).
    """
    import numba

    from ..training.loop import Trainer

    t0 = time.perf_counter()
    out = {"number": spec["number"], "worker": f"{socket.gethostname()}:{os.getpid()}"}
    cfg = None
    try:
        numba.set_num_threads(1)
        cfg = trial_config(spec)
        trainer = Trainer(cfg, reporter=_reporter(spec, cfg.monitor))
        out["device"] = trainer.device  # "cpu" or "cuda": what --device auto resolved to on this worker
        result = trainer.fit()
    except _Pruned as p:
        out.update(status="pruned", value=p.value, epochs_run=p.epoch, error=str(p))
    except EXPECTED_ERRORS as exc:
        out.update(status="fail", error=f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - see EXPECTED_ERRORS
        out.update(status="fail", error=f"unexpected {type(exc).__name__}: {exc}")
    else:
        out.update(
            status="complete",
            value=float(result.best_valid[cfg.monitor]),
            best_epoch=int(result.best_epoch),
            epochs_run=len(result.curve),
            stopped_early=bool(result.stopped_early),
            train_seconds=round(float(result.train_seconds), 3),
            valid={k: float(v) for k, v in result.best_valid.items()},
            test={k: float(v) for k, v in result.test.items()},
        )
    if cfg is not None:
        out["config"] = cfg.to_dict()
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out
