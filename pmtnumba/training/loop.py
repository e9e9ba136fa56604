"""The training loop: epochs of mini-batches, validation, early stopping, best-epoch restore.

The loop itself knows nothing of the terminal: progress goes to an optional ``reporter`` object
(the CLI gives a click progress bar), and results to an optional run directory.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from dataclasses import dataclass, field

import numba
import numpy as np

from ..combiners import make_combiner, StepContext
from ..data import load_dataset
from ..data.samplers import epoch_batches
from ..data.split import SplitData, make_split
from ..encoders import make_encoder
from ..device import gpu_free_memory, gpu_name, resolve_device
from ..errors import PmtError
from ..evaluation import evaluate
from ..optim import Adam
from ..provenance import versions
from ..tasks import Batch, TaskContext, build_tasks, default_tasks
from . import health, limits, runio, runs
from .budget import TimeBudget
from .config import FitConfig
from .ego_reg import EgoReg
from .step import StepWorkspace, graph_train_step, train_step
from .weights import WeightRecorder


def eval_device_kwargs(device: str) -> dict:
    """Keyword arguments that run :func:`pmtnumba.evaluation.evaluate` on ``device``: empty while
    evaluation has no ``device`` option (then it runs on the host, on a host copy of the table)."""
    import inspect

    if device == "cuda" and "device" in inspect.signature(evaluate).parameters:
        return {"device": "cuda"}
    return {}


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
    #: seconds per part of this process's fit (:mod:`.budget`); also in ``metrics.json``
    time_budget: dict = field(default_factory=dict)


CHECKPOINT = "checkpoint.npz"


@dataclass
class TrainState:
    """Where training stands after ``epoch`` epochs (what a checkpoint stores besides tensors)."""

    epoch: int = 0
    step: int = 0
    best_value: float = float("-inf")
    best_epoch: int = 0
    best_valid: dict | None = None
    best_E: np.ndarray | None = None
    best_dense: dict | None = None  # graph encoders' dense parameters at the best epoch
    bad: int = 0
    t_train: float = 0.0
    curve: list = field(default_factory=list)


class Trainer:
    """Trains one model on one split. ``Trainer(cfg).fit()`` or with a prepared ``split``."""

    def __init__(self, cfg: FitConfig, split: SplitData | None = None, reporter: Reporter | None = None):
        cfg.validate()
        self.cfg = cfg
        self.reporter = reporter or Reporter()
        self.budget = TimeBudget()
        if split is None:
            with self.budget.measure("load"):
                split = make_split(load_dataset(cfg.dataset, **cfg.load_options()), cfg.seed, **cfg.split_options())
        if split.select_on != cfg.select_on:  # a prepared split decides how the epoch is selected
            raise PmtError(f"the split selects the epoch on {split.select_on}, the config on {cfg.select_on}")
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
        limits.check_split(split, cfg.tasks)  # empty parts, one item: before the tasks' own checks
        self.tasks = build_tasks(cfg.tasks, self.task_ctx, cfg.task_options)
        cfg.tasks = [t.name for t in self.tasks]
        limits.check_task_options(cfg.task_options, cfg.tasks)
        #: the batch actually used: never more than the training interactions (same batches, smaller buffers)
        self.batch_size = min(cfg.batch_size, int(split.train_users.shape[0]))
        slots = sum(t.max_slots(self.batch_size) for t in self.tasks)
        self._memory_parts = limits.estimate_fit_memory(
            ds.n_users, ds.n_items, cfg.dim, self.batch_size, slots, len(self.tasks), max_k=max(cfg.ks),
            encoder=cfg.encoder, layers=cfg.layers, n_train=int(split.train_users.shape[0]))
        self._memory_what = (f"training {ds.name} with --dim {cfg.dim} and --batch-size {self.batch_size}"
                             + (f" (capped from {cfg.batch_size} at the training interactions)"
                                if self.batch_size < cfg.batch_size else ""))
        self.memory_estimate = limits.check_memory(self._memory_parts, self._memory_what)
        #: go on (with a warning) when a loss grows by orders of magnitude, instead of stopping
        self.allow_divergence = False
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
        self.encoder = make_encoder(cfg.encoder, ds.n_users, ds.n_items, cfg.dim, cfg.seed, split.train_users,
                                    split.train_items, layers=cfg.layers, dropout=cfg.mess_dropout)
        self.adam = Adam(self.encoder.E, lr=cfg.lr, weight_decay=cfg.wd, mode=cfg.adam_mode)
        # dense parameters (NGCF's weights): one dense Adam each, on a [rows, last axis] view
        self.dense_adams = {k: Adam(p.reshape(-1, p.shape[-1]), lr=cfg.lr, weight_decay=cfg.wd, mode="sparse")
                            for k, p in self.encoder.dense_params().items()}
        #: the published ego-embedding L2 (``--reg``), added after the combiner; None when off
        self.penalty = EgoReg(cfg.reg) if cfg.reg > 0 else None
        #: the step's keyword for it: none when off, so the step is called exactly as before --reg existed
        self._penalty_kw = {"penalty": self.penalty} if self.penalty is not None else {}
        self.rng = np.random.default_rng(np.random.SeedSequence([int(cfg.seed), 0xC0B]))
        self._versions = None
        self.device = resolve_device(cfg.device)  # "cpu" or "cuda" (one-line error without a GPU)
        if self.device == "cuda":
            from .step_cuda import cuda_unsupported  # numba.cuda is imported only on this path

            why = cuda_unsupported(self.tasks, cfg.encoder, self.encoder.out_dim)
            if why and cfg.device == "cuda":
                raise PmtError(f"--device cuda: {why}; use --device cpu")
            if why:  # auto: fall back to the CPU, and say so
                self.device = "cpu"
                self.reporter.message(f"device auto: {why}; training on the cpu")
        if self.device == "cuda":
            limits.check_device_memory(
                limits.estimate_device_memory(self._memory_parts, ds.n_users + ds.n_items, cfg.dim, len(self.tasks),
                                              int(split.train_users.shape[0]), cfg.encoder != "mf"),
                gpu_free_memory(), self._memory_what)
        self.gpu_name = gpu_name() if self.device == "cuda" else None
        self.dstep = None  # the device step (training/step_cuda.py), made when fit starts
        self._stepped = False  # whether this Trainer ran a step (its first one compiles or loads kernels)

    def run_config(self) -> dict:
        """What ``config.json`` records: the configuration as given, the hyper-parameters the
        combiner and each task really use (``effective``; e.g. an ablation's fixed tau, a task's
        defaults) and what produced the run (``versions``: package, git commit, libraries)."""
        if self._versions is None:
            self._versions = versions()
        return {
            **self.cfg.to_dict(),
            "protocol": self.split.protocol,
            "device_used": self.device,
            "gpu_name": self.gpu_name,
            "effective": {
                "method": {"name": self.combiner.name, **self.combiner.config()},
                "tasks": {t.name: t.config() for t in self.tasks},
                "encoder": {"name": self.encoder.name, **self.encoder.config()},
            },
            "versions": self._versions,
        }

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self, part: str = "valid") -> dict:
        heldout, exclude = self.split.parts(part)
        F = self.encoder.output()  # MF: the table itself
        U = self.encoder.n_users
        return evaluate(F[:U], F[U:], heldout, exclude=exclude, ks=self.cfg.ks,
                        **eval_device_kwargs(self.device))

    # -- checkpoints ------------------------------------------------------------------------
    def _checkpoint(self, run, st: "TrainState") -> None:
        """Everything needed to continue bit-identically after ``st.epoch`` (atomic write into the
        run's staging folder; ``run`` is a :class:`.runio.RunWriter`)."""
        health.check_table(self.encoder.E, st.epoch, "before the checkpoint of epoch")
        meta = {
            "config": self.cfg.to_dict(), "epoch": st.epoch, "step": st.step, "best_value": st.best_value,
            "best_epoch": st.best_epoch, "best_valid": st.best_valid, "bad": st.bad, "t_train": st.t_train,
            "curve": st.curve, "rng": self.rng.bit_generator.state,
            "weights": self.weights.records if self.weights is not None else None,
        }
        arrays = {f"combiner_{k}": np.asarray(v) for k, v in self.combiner.state_dict().items()}
        arrays.update(self.adam.state_dict())
        for k, p in self.encoder.dense_params().items():
            arrays[f"enc_{k}"] = p
            arrays.update({f"dense_{k}_{n}": v for n, v in self.dense_adams[k].state_dict().items()})
            if st.best_dense is not None:
                arrays[f"best_enc_{k}"] = st.best_dense[k]
        run.write_npz(
            CHECKPOINT, compress=False, E=self.encoder.E,
            best_E=st.best_E if st.best_E is not None else np.zeros((0,) + self.encoder.E.shape[1:], self.encoder.E.dtype),
            meta=np.array(json.dumps(meta)), **arrays,
        )

    def _resume(self, path) -> "TrainState":
        path = Path(path)
        data, meta = runs.read_checkpoint(path)  # validated: keys, shapes, dtypes, finite
        mine, theirs = self.cfg.to_dict(), meta["config"]
        new = {"valid_file": None, "test_file": None, "holdout": 0.1, "select_on": "valid", "reg": 0.0}  # older checkpoints
        diff = [k for k in mine if k not in ("epochs", "threads", "patience", "device", "checkpoint_every")
                and mine[k] != theirs.get(k, new.get(k))]
        if diff:
            raise PmtError(f"{path}: checkpoint was written with different settings ({', '.join(diff)}); "
                           f"use another --out or the same options")
        if data["E"].shape != self.encoder.E.shape:
            raise PmtError(f"{path}: embedding shape {data['E'].shape} does not match {self.encoder.E.shape}")
        self.encoder.E[...] = data["E"]
        self.adam.load_state_dict(data)
        best_dense = None
        for k, p in self.encoder.dense_params().items():
            p[...] = data[f"enc_{k}"]
            pre = f"dense_{k}_"
            self.dense_adams[k].load_state_dict({n[len(pre):]: v for n, v in data.items() if n.startswith(pre)})
            if f"best_enc_{k}" in data:
                best_dense = best_dense or {}
                best_dense[k] = data[f"best_enc_{k}"]
        self.combiner.load_state_dict({k[9:]: v for k, v in data.items() if k.startswith("combiner_")})
        self.rng.bit_generator.state = meta["rng"]
        if self.weights is not None and meta.get("weights") is not None:
            self.weights.records = meta["weights"]
        return TrainState(
            epoch=meta["epoch"], step=meta["step"], best_value=meta["best_value"], best_epoch=meta["best_epoch"],
            best_valid=meta["best_valid"], best_E=data["best_E"] if data["best_E"].size else None, bad=meta["bad"],
            t_train=meta["t_train"], curve=meta["curve"], best_dense=best_dense,
        )

    # -- training ---------------------------------------------------------------------------
    def fit(self, out_dir=None, resume: bool = False, overwrite: bool = False) -> FitResult:
        """Train until ``cfg.epochs`` or early stopping; restore the best epoch; test it.

        With ``out_dir``, the run is a transaction on that directory (:class:`.runio.RunWriter`):
        the resolved config (with a fingerprint of the data file) is written first, the per-epoch
        curve after each epoch, a checkpoint after the first epoch, then at most every
        ``cfg.checkpoint_every`` seconds, after the last epoch and when SIGINT or SIGTERM arrives
        (the epoch under way is finished first, then the fit stops with a :class:`PmtError`),
        metrics and embeddings at the end, all into a staging folder that becomes the run at the
        end. A directory holding another run is refused unless ``resume`` (continue from its last
        checkpoint, replaying the epochs after it; the result is bit-identical to an uninterrupted
        run) or ``overwrite``.
        """
        if out_dir is None:
            if resume:
                raise PmtError("--resume needs --out DIR (the run to continue)")
            return self._fit(None)
        with runio.RunWriter(out_dir, resume=resume, overwrite=overwrite, message=self.reporter.message) as run, \
                _StopSignals(self.reporter.message) as self._signals:
            return self._fit(run)

    def _fit(self, run) -> FitResult:
        """The fit itself; ``run`` is the open :class:`.runio.RunWriter` or None."""
        st = self._start(run)
        if self.device == "cuda":
            from .step_cuda import CudaStep  # numba.cuda is imported only on this path

            sp = self.split
            self.dstep = CudaStep(self.encoder.E, self.tasks, self.combiner, self.adam, self.batch_size,
                                  sp.train_users, sp.train_items, sp.train_ratings, sp.n_users, encoder=self.encoder,
                                  penalty=self.penalty, dense_adams=self.dense_adams)
            if self.weights is not None:  # summarised on the device, added in once per epoch
                self.dstep.record_weights(self.weights)
        if self.batch_size < self.cfg.batch_size:
            self.reporter.message(f"--batch-size {self.cfg.batch_size} is more than the {self.batch_size} training "
                                  f"interactions: using one batch of {self.batch_size}")
        ws = StepWorkspace(self.tasks, self.batch_size, self.encoder.E.shape[0], self.encoder.out_dim,
                           self.encoder.E.dtype)
        self._watch = health.LossWatch(allow=self.allow_divergence)
        stopped_early = st.bad >= self.cfg.patience
        self._last_checkpoint = None  # perf_counter of this process's last checkpoint
        for epoch in range(st.epoch + 1, self.cfg.epochs + 1):
            if stopped_early:
                break
            rec = self._run_epoch(epoch, st, ws, run)
            if epoch % self.cfg.eval_every == 0 or epoch == self.cfg.epochs:
                self._validate(epoch, st, rec)
            st.curve.append(rec)
            self.reporter.epoch_end(rec)
            stopped_early = st.best_E is not None and st.bad >= self.cfg.patience
            self._save_epoch(run, st, stopped_early)
            signum = self._signals.received if run is not None else None
            if signum is not None:
                raise PmtError(f"stopped by {signal.Signals(signum).name} after epoch {epoch}; its checkpoint is in "
                               f"{run.stage}: continue with --resume --out {run.run}")
        return self._finish(run, st, stopped_early)

    def _start(self, run) -> TrainState:
        """The state to start from (fresh, or the checkpoint's), the config written, threads set."""
        cfg = self.cfg
        st = TrainState()
        if run is not None and run.resume_from is not None:
            old = run.resume_from.parent / "config.json"
            rec = runs.read_config(old).get("data") if old.is_file() else None
            change = runs.data_change(rec, rec["path"]) if rec is not None else None
            if change is not None:
                raise PmtError(f"{change}; cannot resume the run in {run.run} on other data ({old})")
            st = self._resume(run.resume_from)
            self.reporter.message(f"resuming {run.run} after epoch {st.epoch}")
        if run is not None:
            with self.budget.measure("io"):
                data = runs.fingerprint_for(self.split.dataset)
                run.write_json("config.json", {**self.run_config(), **({"data": data} if data else {})})
        if cfg.threads is not None:
            numba.set_num_threads(min(cfg.threads, numba.config.NUMBA_NUM_THREADS))
        if self.split.train_users.shape[0] == 0:
            raise ValueError(f"data set {self.split.dataset.name!r} has no training interactions")
        return st

    def _run_epoch(self, epoch: int, st: TrainState, ws: StepWorkspace, run) -> dict:
        """One pass over the shuffled training pairs; returns the epoch's curve record so far
        (seconds, pair-weighted mean loss per task, the combiner's event counts of the epoch)."""
        cfg, sp = self.cfg, self.split
        ratings = sp.train_ratings
        batches = epoch_batches(sp.train_users.shape[0], self.batch_size, cfg.seed, epoch)
        first = not self._stepped
        if first:
            self._stepped = True
            if not _kernels_loaded():
                self.reporter.message("compiling kernels (once per process; later runs load them from the cache) ...")
            self._warm_evaluation()
        else:
            self.reporter.epoch_start(epoch, len(batches))
        loss_sum = np.zeros(len(self.tasks))
        pair_sum = np.zeros(len(self.tasks))
        reg_sum = 0.0  # the penalty, weighted by the main task's triplets as its loss is
        events0 = self.combiner.events()
        mf = self.encoder.name == "mf"
        t0 = time.perf_counter()
        t_first = 0.0
        dstep, lo = self.dstep, 0
        if dstep is not None:
            dstep.set_epoch_order(np.concatenate(batches))  # the epoch's order: one upload
        for bidx in batches:
            st.step += 1
            ctx = StepContext(epoch=epoch, step=st.step, rng=self.rng, n_users=sp.n_users)
            if dstep is None:
                batch = Batch(sp.train_users[bidx], sp.train_items[bidx], None if ratings is None else ratings[bidx])
                if mf:  # MF keeps its own (sparse-row) step path
                    losses, pairs = train_step(self.encoder.E, self.tasks, batch, self.combiner, self.adam, ctx,
                                               cfg.seed, ws, **self._penalty_kw)
                else:
                    losses, pairs = graph_train_step(self.encoder, self.tasks, batch, self.combiner, self.adam,
                                                     self.dense_adams, ctx, cfg.seed, ws, **self._penalty_kw)
                rows, weights = ctx.rows, getattr(self.combiner, "last_weights", None)
            else:
                losses, pairs = dstep.step(lo, len(bidx), ctx, cfg.seed)
                lo += len(bidx)
            if self.penalty is not None:
                reg_sum += self.penalty.loss * pairs[0]
            if self.weights is not None and dstep is None:
                self.weights.observe(rows, weights)
            loss_sum += losses * pairs
            pair_sum += pairs
            if first and not t_first:
                t_first = time.perf_counter() - t0
                ready = self.budget.seconds["compile"] + t_first  # evaluation warm-up + first step
                if ready >= 0.5:
                    self.reporter.message(f"kernels ready after {ready:.1f}s (counted apart from training)")
                self.reporter.epoch_start(epoch, len(batches))
            self.reporter.step_done(epoch, st.step, losses)
        t_epoch = time.perf_counter() - t0
        if first:  # the first step's excess over the epoch's mean step is compilation, not training
            n = len(batches)
            compile_s = max(0.0, t_first - (t_epoch - t_first) / (n - 1)) if n > 1 else 0.0
            self.budget.add("compile", compile_s)
            t_epoch -= compile_s
        self.budget.add("train", t_epoch)
        if dstep is not None:  # the host copy of the table (and moments) for evaluation and checkpoints
            dstep.download(self.encoder.E)
        st.epoch = epoch
        st.t_train += t_epoch
        if self.weights is not None:
            if dstep is not None:
                dstep.flush_weights()
            self.weights.end_epoch(epoch)
            if run is not None:
                with self.budget.measure("io"):
                    run.write_csv("weights.csv", self.weights.records)
        rec = {"epoch": epoch, "train_seconds": round(t_epoch, 4)}
        for t, task in enumerate(self.tasks):
            rec[f"loss_{task.name}"] = float(loss_sum[t] / pair_sum[t]) if pair_sum[t] else float("nan")
        if self.penalty is not None:  # the published loss is loss_bpr + loss_reg
            rec["loss_reg"] = float(reg_sum / pair_sum[0]) if pair_sum[0] else float("nan")
        health.check_table(self.encoder.E, epoch)
        for text in self._watch.observe(epoch, {t.name: rec[f"loss_{t.name}"] for t in self.tasks}):
            self.reporter.message(text)
        for k, n in self.combiner.events().items():  # e.g. Nash-MTL's fallbacks during this epoch
            rec[f"combiner_{k}"] = n - events0[k]
        return rec

    def _validate(self, epoch: int, st: TrainState, rec: dict) -> None:
        """Evaluate on the validation part, add it to ``rec``, keep the best epoch's embeddings."""
        monitor = self.cfg.monitor
        t1 = time.perf_counter()
        val = self.evaluate("valid")
        rec["eval_seconds"] = round(time.perf_counter() - t1, 4)
        self.budget.add("evaluate", rec["eval_seconds"])
        for k in ("recall@20", "ndcg@20", monitor):
            rec[f"valid_{k}"] = val[k]
        if st.best_E is None or val[monitor] > st.best_value:
            st.best_value, st.best_epoch, st.best_valid, st.best_E = val[monitor], epoch, val, self.encoder.E.copy()
            if self.encoder.dense_params():
                st.best_dense = {k: p.copy() for k, p in self.encoder.dense_params().items()}
            st.bad = 0
        else:
            st.bad += 1
        rec["best_epoch"] = st.best_epoch

    def _warm_evaluation(self) -> None:
        """Compile the ranking kernels before the first validation (an evaluation of one user; it
        changes nothing), so that evaluation time is evaluation and compilation is counted apart."""
        indptr = self.split.valid[0]
        users = np.flatnonzero(np.diff(indptr) > 0)[:1]
        if users.size:
            with self.budget.measure("compile"):
                evaluate(self.encoder.user_emb, self.encoder.item_emb, self.split.valid, exclude=[self.split.train],
                         ks=self.cfg.ks, users=users, **eval_device_kwargs(self.device))

    def _checkpoint_due(self, st: TrainState, stopped_early: bool) -> bool:
        """After this process's first epoch, then once ``checkpoint_every`` seconds have passed since
        the last one, after the last epoch, and when a stop signal arrived."""
        if self._last_checkpoint is None or stopped_early or st.epoch >= self.cfg.epochs:
            return True
        if self._signals.received is not None:
            return True
        return time.perf_counter() - self._last_checkpoint >= self.cfg.checkpoint_every

    def _save_epoch(self, run, st: TrainState, stopped_early: bool) -> None:
        """The curve after every epoch, a checkpoint when due, the early-stop message."""
        cfg = self.cfg
        if run is not None:
            with self.budget.measure("io"):
                run.write_csv("curve.csv", st.curve)
            if self._checkpoint_due(st, stopped_early):
                with self.budget.measure("checkpoint"):
                    self._checkpoint(run, st)
                self._last_checkpoint = time.perf_counter()
        if stopped_early:
            self.reporter.message(
                f"early stop at epoch {st.epoch}: no {cfg.monitor} improvement in {cfg.patience} validations; "
                f"best epoch {st.best_epoch}"
            )

    def _finish(self, run, st: TrainState, stopped_early: bool) -> FitResult:
        """Restore the best epoch's embeddings, test them, save the result."""
        if st.best_E is None:
            raise PmtError("no validation ran: nothing to restore (check --epochs and --eval-every)")
        self.encoder.E[...] = st.best_E
        for k, p in self.encoder.dense_params().items():
            p[...] = st.best_dense[k]
        health.check_table(self.encoder.E, st.best_epoch, "at the best epoch")
        with self.budget.measure("evaluate"):
            test = self.evaluate("test")
        F = self.encoder.output()
        result = FitResult(
            config=self.run_config(),
            best_epoch=st.best_epoch,
            best_valid=st.best_valid,
            test=test,
            curve=st.curve,
            user_emb=F[: self.encoder.n_users].copy(),
            item_emb=F[self.encoder.n_users :].copy(),
            stopped_early=stopped_early,
            train_seconds=st.t_train,
        )
        result.time_budget = self.budget.as_dict()  # as of now: what metrics.json records
        if run is not None:
            with self.budget.measure("io"):
                runio.save_result(run, result, self.split.dataset)
                run.commit()
        return result


def _kernels_loaded() -> bool:
    """Whether this process has already compiled or loaded the step's kernels (Adam's is in every step)."""
    from ..optim import adam

    return bool(adam.adam_sparse_kernel.signatures or adam.adam_dense_kernel.signatures)


class _StopSignals:
    """While a fit writes a run directory: SIGINT and SIGTERM ask it to stop after the epoch under
    way, with a checkpoint (``received`` holds the signal); a second one stops at once
    (KeyboardInterrupt). Outside the main thread (no handlers can be set there) it does nothing."""

    def __init__(self, message):
        self.message = message
        self.received = None
        self._old = {}

    def _handle(self, signum, frame):
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        self.message(f"{signal.Signals(signum).name}: finishing this epoch, then writing a checkpoint and stopping "
                     f"(send it again to stop at once)")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        return False
