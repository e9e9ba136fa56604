"""The training loop: epochs of mini-batches, validation, early stopping, best-epoch restore.

The loop itself knows nothing of the terminal: progress goes to an optional ``reporter`` object
(the CLI gives a click progress bar), and results to an optional run directory.
"""

from __future__ import annotations

import time
from pathlib import Path
from dataclasses import dataclass, field

import numba
import numpy as np

from ..combiners import make_combiner, StepContext
from ..data import load_dataset
from ..data.samplers import epoch_batches
from ..data.split import SplitData, make_split
from ..encoders import MF
from ..evaluation import evaluate
from ..optim import Adam
from ..tasks import Batch, TaskContext, build_tasks, default_tasks
from . import runio
from .config import FitConfig
from .step import StepWorkspace, train_step
from .weights import WeightRecorder


class Reporter:
    """Receives progress events; the default does nothing."""

    def epoch_start(self, epoch: int, n_steps: int) -> None: ...
    def step_done(self, epoch: int, step: int, losses: np.ndarray) -> None: ...
    def epoch_end(self, record: dict) -> None: ...
    def message(self, text: str) -> None: ...


@dataclass
class FitResult:
    config: dict
    best_epoch: int
    best_valid: dict
    test: dict
    curve: list[dict] = field(default_factory=list)
    user_emb: np.ndarray | None = None
    item_emb: np.ndarray | None = None
    stopped_early: bool = False
    train_seconds: float = 0.0


class Trainer:
    """Trains one model on one split. ``Trainer(cfg).fit()`` or with a prepared ``split``."""

    def __init__(self, cfg: FitConfig, split: SplitData | None = None, reporter: Reporter | None = None):
        cfg.validate()
        self.cfg = cfg
        self.reporter = reporter or Reporter()
        if split is None:
            split = make_split(load_dataset(cfg.dataset, data_dir=cfg.data_dir), cfg.seed)
        self.split = split
        ds = split.dataset
        if cfg.tasks is None:
            cfg.tasks = default_tasks(ds.name)
        self.task_ctx = TaskContext(
            n_users=ds.n_users,
            n_items=ds.n_items,
            train_users=split.train_users,
            train_items=split.train_items,
            train_indptr=split.train[0],
            train_indices=split.train[1],
            train_ratings=split.train_ratings,
            dataset=ds,
            aux_sampling=cfg.aux_sampling,
        )
        self.tasks = build_tasks(cfg.tasks, self.task_ctx, cfg.task_options)
        cfg.tasks = [t.name for t in self.tasks]
        opts = dict(cfg.method_options)
        self.weights = None
        if cfg.method.startswith("pmtrec") and cfg.record_weights:
            opts["record_weights"] = True
            self.weights = WeightRecorder(
                split.user_degree(), np.bincount(split.train_items, minlength=ds.n_items), [t.name for t in self.tasks]
            )
        try:
            self.combiner = make_combiner(cfg.method, **opts)
        except TypeError as exc:  # an option the combiner does not take
            raise ValueError(f"method {cfg.method!r}: {exc}") from None
        self.encoder = MF(ds.n_users, ds.n_items, cfg.dim, cfg.seed)
        self.adam = Adam(self.encoder.E, lr=cfg.lr, weight_decay=cfg.wd, mode=cfg.adam_mode)
        self.rng = np.random.default_rng(np.random.SeedSequence([int(cfg.seed), 0xC0B]))

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self, part: str = "valid") -> dict:
        sp = self.split
        if part == "valid":
            heldout, exclude = sp.valid, [sp.train]
        elif part == "test":
            heldout, exclude = sp.test, [sp.train, sp.valid]
        else:
            raise ValueError(f"unknown split part {part!r}")
        return evaluate(self.encoder.user_emb, self.encoder.item_emb, heldout, exclude=exclude, ks=self.cfg.ks)

    # -- training ---------------------------------------------------------------------------
    def fit(self, out_dir=None) -> FitResult:
        """Train until ``cfg.epochs`` or early stopping; restore the best epoch; test it.

        With ``out_dir``, the resolved config is written first, the per-epoch curve after every
        epoch, and metrics plus embeddings at the end (all atomically).
        """
        cfg = self.cfg
        if out_dir is not None:
            runio.write_json(Path(out_dir) / "config.json", cfg.to_dict())
        if cfg.threads is not None:
            numba.set_num_threads(min(cfg.threads, numba.config.NUMBA_NUM_THREADS))
        sp = self.split
        E = self.encoder.E
        n_train = sp.train_users.shape[0]
        if n_train == 0:
            raise ValueError(f"data set {sp.dataset.name!r} has no training interactions")
        ws = StepWorkspace(self.tasks, cfg.batch_size, E.shape[0], cfg.dim, E.dtype)
        ratings = sp.train_ratings
        best = None  # (value, epoch, E copy, valid metrics)
        bad = 0
        curve: list[dict] = []
        step = 0
        stopped_early = False
        t_train = 0.0
        for epoch in range(1, cfg.epochs + 1):
            batches = epoch_batches(n_train, cfg.batch_size, cfg.seed, epoch)
            self.reporter.epoch_start(epoch, len(batches))
            loss_sum = np.zeros(len(self.tasks))
            pair_sum = np.zeros(len(self.tasks))
            t0 = time.perf_counter()
            for bidx in batches:
                step += 1
                batch = Batch(sp.train_users[bidx], sp.train_items[bidx], None if ratings is None else ratings[bidx])
                ctx = StepContext(epoch=epoch, step=step, rng=self.rng, n_users=sp.n_users)
                losses, pairs = train_step(E, self.tasks, batch, self.combiner, self.adam, ctx, cfg.seed, ws)
                if self.weights is not None:
                    self.weights.observe(ctx.rows, self.combiner.last_weights)
                loss_sum += losses * pairs
                pair_sum += pairs
                self.reporter.step_done(epoch, step, losses)
            t_epoch = time.perf_counter() - t0
            if self.weights is not None:
                self.weights.end_epoch(epoch)
                if out_dir is not None:
                    runio.write_csv(Path(out_dir) / "weights.csv", self.weights.records)
            t_train += t_epoch
            rec = {"epoch": epoch, "train_seconds": round(t_epoch, 4)}
            for t, task in enumerate(self.tasks):
                rec[f"loss_{task.name}"] = float(loss_sum[t] / pair_sum[t]) if pair_sum[t] else float("nan")
            if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
                t1 = time.perf_counter()
                val = self.evaluate("valid")
                rec["eval_seconds"] = round(time.perf_counter() - t1, 4)
                for k in ("recall@20", "ndcg@20", cfg.monitor):
                    rec[f"valid_{k}"] = val[k]
                value = val[cfg.monitor]
                if best is None or value > best[0]:
                    best = (value, epoch, E.copy(), val)
                    bad = 0
                else:
                    bad += 1
                rec["best_epoch"] = best[1]
            curve.append(rec)
            self.reporter.epoch_end(rec)
            if out_dir is not None:
                runio.write_csv(Path(out_dir) / "curve.csv", curve)
            if best is not None and bad >= cfg.patience:
                stopped_early = True
                self.reporter.message(
                    f"early stop at epoch {epoch}: no {cfg.monitor} improvement in {cfg.patience} validations; "
                    f"best epoch {best[1]}"
                )
                break
        E[...] = best[2]
        test = self.evaluate("test")
        result = FitResult(
            config=cfg.to_dict(),
            best_epoch=best[1],
            best_valid=best[3],
            test=test,
            curve=curve,
            user_emb=self.encoder.user_emb.copy(),
            item_emb=self.encoder.item_emb.copy(),
            stopped_early=stopped_early,
            train_seconds=t_train,
        )
        if out_dir is not None:
            runio.save_result(out_dir, result, sp.dataset)
        return result
