"""A Python API for notebooks and teaching: fit, recommend, evaluate, load a run, inspect one step.

::

    import pmtnumba
    model = pmtnumba.fit("office", method="pmtrec", epochs=20)      # or a pandas DataFrame
    items, scores = model.recommend(user="A2FXY0D4MDO3OH", k=10)   # original ids
    model.metrics["test"]["recall@20"], model.evaluate("valid")
    model = pmtnumba.Model.load("runs/office-pmtrec")             # a run directory of `pmtnumba fit`
    s = pmtnumba.step_inspect("office", method="pmtrec")           # one step: G, weights, combined g

The engine underneath is :class:`pmtnumba.training.Trainer`; this module turns keyword options
into a :class:`~pmtnumba.training.FitConfig` (:func:`make_config`), builds the Trainer
(:func:`trainer`) and wraps the results. The ``pmtnumba`` command is a layer over these functions
(``fit``, ``evaluate``, ``recommend`` parse options, call them and print).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .errors import PmtError

__all__ = ["Model", "StepInspection", "fit", "step_inspect", "trainer", "make_config", "model_of", "check_out"]

_CONFIG_FIELDS = None


def make_config(dataset_name: str, **options):
    """A :class:`~pmtnumba.training.FitConfig` from keyword options, as ``pmtnumba fit`` builds it:
    FitConfig's fields, plus ``alpha``/``tau``/``drop_absent`` for the pmtrec methods and ``gamma``
    for align_uniform; ``tasks`` as a list or comma-separated; lr and wd default to the pair tuned
    for a shipped data set and kind of task set (:func:`~pmtnumba.training.config.recommended_lr_wd`)."""
    from .data import SHIPPED
    from .tasks import default_tasks
    from .training import FitConfig
    from .training.config import recommended_lr_wd

    opts = dict(options)
    names = {f.name for f in fields(FitConfig)}
    method = opts.pop("method", "ew")
    mopts = dict(opts.pop("method_options", {}) or {})
    for key in ("alpha", "tau", "drop_absent"):
        if opts.get(key) is not None:
            mopts[key] = opts.pop(key)
        opts.pop(key, None)
    topts = dict(opts.pop("task_options", {}) or {})
    if opts.get("gamma") is not None:
        topts["align_uniform"] = {"gamma": opts.pop("gamma")}
    opts.pop("gamma", None)
    unknown = sorted(set(opts) - names)
    if unknown:
        raise PmtError(f"unknown option(s) {', '.join(unknown)}; options are {', '.join(sorted(names))}, "
                       f"alpha, tau, drop_absent, gamma")
    tasks = opts.pop("tasks", None)
    if isinstance(tasks, str):
        tasks = [t.strip() for t in tasks.split(",") if t.strip()]
    if opts.get("lr") is None or opts.get("wd") is None:
        name = dataset_name if dataset_name in SHIPPED else ""
        lr, wd = recommended_lr_wd(name, tasks if tasks is not None else default_tasks(name))
        opts["lr"] = lr if opts.get("lr") is None else opts["lr"]
        opts["wd"] = wd if opts.get("wd") is None else opts["wd"]
    opts.pop("dataset", None)
    return FitConfig(dataset=dataset_name, tasks=tasks, method=method, method_options=mopts, task_options=topts,
                     **opts)


def _ids(col) -> np.ndarray:
    """Integer ids as int64, anything else as strings (as the file reader stores them; never objects)."""
    values = col.to_numpy()
    return values.astype(np.int64) if values.dtype.kind in "iub" else values.astype(str)


def dataset_from_frame(df, name: str = "dataframe", user="user", item="item", rating=None, time=None):
    """A :class:`~pmtnumba.data.dataset.Dataset` from a pandas DataFrame of interactions (one row
    per interaction; ids of any type; duplicates collapse to the last one, as for files)."""
    from .data.dataset import Dataset
    from .data.io import remap_interactions

    for col in (user, item, rating, time):
        if col is not None and col not in df.columns:
            raise PmtError(f"DataFrame has no column {col!r} (columns: {', '.join(map(str, df.columns))})")
    if rating is None and "rating" in df.columns:
        rating = "rating"
    rm = remap_interactions(_ids(df[user]), _ids(df[item]),
                            ratings=None if rating is None else df[rating].to_numpy(np.float64),
                            times=None if time is None else df[time].to_numpy(np.int64))
    return Dataset(name=name, n_users=rm.n_users, n_items=rm.n_items, users=rm.users, items=rm.items,
                   ratings=rm.ratings, user_raw=rm.user_raw, item_raw=rm.item_raw, source="")


def _is_frame(obj) -> bool:
    return hasattr(obj, "columns") and hasattr(obj, "to_numpy")


def _split_of(dataset, seed: int, data_dir=None):
    """(name, split) for a shipped name, a file path, a Dataset or a pandas DataFrame."""
    from .data import load_dataset
    from .data.dataset import Dataset
    from .data.split import make_split

    if isinstance(dataset, (str, Path)):
        ds = load_dataset(str(dataset), data_dir=data_dir)
    elif isinstance(dataset, Dataset):
        ds = dataset
    elif _is_frame(dataset):
        ds = dataset_from_frame(dataset)
    else:
        raise PmtError(f"dataset must be a shipped name, a file path, a Dataset or a DataFrame, "
                       f"got {type(dataset).__name__}")
    return (str(dataset) if isinstance(dataset, (str, Path)) else ds.name), make_split(ds, seed)


class Model:
    """Trained user and item embeddings with their original ids, the run's config and metrics.

    ``recommend`` ranks all items for one user (items seen in train, validation or test left
    out); ``evaluate`` re-runs the full-ranking metrics on the split."""

    def __init__(self, config: dict, user_emb, item_emb, user_raw, item_raw, metrics=None, split=None,
                 run_dir=None):
        self.config = config
        self.user_emb, self.item_emb = user_emb, item_emb
        self.user_raw, self.item_raw = np.asarray(user_raw), np.asarray(item_raw)
        self.metrics = metrics or {}
        self.split = split
        self.run_dir = None if run_dir is None else Path(run_dir)

    def __repr__(self) -> str:
        t = (self.metrics.get("test") or {}).get("recall@20")
        return (f"Model({self.config.get('dataset')!r}, method={self.config.get('method')!r}, "
                f"users={len(self.user_raw)}, items={len(self.item_raw)}"
                + (f", test recall@20={t:.4f}" if t is not None else "") + ")")

    @classmethod
    def load(cls, run_dir, data_dir=None, allow_changed_data: bool = False, message=None) -> "Model":
        """The model of a finished run directory (``pmtnumba fit --out``), with its split (the run
        remembers its data file and refuses one that changed since, unless told; ``message``
        receives the warning about a changed file then)."""
        from .training.runs import load_run_split

        r, sp = load_run_split(run_dir, data_dir, allow_changed_data, message=message)
        e = r.embeddings
        return cls(r.config, e["user_emb"], e["item_emb"], e["user_raw"], e["item_raw"], r.metrics, sp, run_dir)

    def user_index(self, user) -> int:
        hit = np.flatnonzero(self.user_raw.astype(str) == str(user))
        if hit.size == 0:
            raise PmtError(f"user {user!r} is not in data set {self.config.get('dataset')!r}")
        return int(hit[0])

    def recommend(self, user, k: int = 10):
        """(item ids, scores) of the top ``k`` items for ``user`` (an original id), best first."""
        from .evaluation import topk_for_users

        if k < 1:
            raise PmtError(f"k must be >= 1, got {k}")
        u = self.user_index(user)
        k = min(k, self.item_emb.shape[0])
        exclude = [] if self.split is None else [self.split.train, self.split.valid, self.split.test]
        items = topk_for_users(self.user_emb, self.item_emb, np.array([u]), exclude, k)[0]
        items = items[items >= 0]
        return self.item_raw[items], (self.item_emb[items] @ self.user_emb[u]).astype(np.float64)

    @property
    def ks(self) -> tuple:
        return tuple(self.config.get("ks", (5, 10, 20, 40)))

    def evaluate(self, part: str = "test", device: str = "cpu") -> dict:
        """Full-ranking metrics on ``part`` (``"valid"``: train items masked; ``"test"``: train and
        validation items masked); ``device="cuda"`` scores on the GPU (``pmtnumba.device``)."""
        from .evaluation import evaluate
        from .training.loop import eval_device_kwargs

        if part not in ("valid", "test"):
            raise PmtError(f"part must be 'valid' or 'test', got {part!r}")
        if self.split is None:
            raise PmtError("this model has no split to evaluate on")
        sp = self.split
        heldout, exclude = (sp.valid, [sp.train]) if part == "valid" else (sp.test, [sp.train, sp.valid])
        return evaluate(self.user_emb, self.item_emb, heldout, exclude=exclude, ks=self.ks, **eval_device_kwargs(device))


def trainer(dataset="videogame", *, data_dir=None, reporter=None, **options):
    """The :class:`~pmtnumba.training.Trainer` that :func:`fit` (and ``pmtnumba fit``) runs, built
    and checked but not yet trained: options, data, split, tasks, memory limits. ``dataset`` and
    ``options`` as for :func:`fit`. A shipped name or a file is loaded by the Trainer (its load time
    in the time budget); a Dataset or DataFrame is split here (the same split for a seed)."""
    import time

    from .training import Trainer

    if isinstance(dataset, (str, Path)):
        return Trainer(make_config(str(dataset), **{**options, "data_dir": data_dir}), reporter=reporter)
    t0 = time.perf_counter()
    name, split = _split_of(dataset, int(options.get("seed", 0)), data_dir)
    t_load = time.perf_counter() - t0
    tr = Trainer(make_config(name, **{**options, "data_dir": data_dir}), split=split, reporter=reporter)
    tr.budget.add("load", t_load)  # loaded here, not by the Trainer: its clock starts later
    tr.budget.t0 -= t_load
    return tr


def model_of(trainer, result, out=None) -> Model:
    """The :class:`Model` of a finished :meth:`Trainer.fit <pmtnumba.training.Trainer.fit>`."""
    metrics = {"best_epoch": result.best_epoch, "epochs_run": len(result.curve),
               "stopped_early": result.stopped_early, "valid": result.best_valid, "test": result.test,
               "time_budget": result.time_budget, "curve": result.curve}
    ds = trainer.split.dataset
    return Model(result.config, result.user_emb, result.item_emb,
                 ds.user_raw if ds.user_raw is not None else np.arange(ds.n_users),
                 ds.item_raw if ds.item_raw is not None else np.arange(ds.n_items), metrics, trainer.split, out)


def fit(dataset="videogame", *, out=None, resume: bool = False, overwrite: bool = False, data_dir=None,
        reporter=None, allow_divergence: bool = False, **options) -> Model:
    """Train as ``pmtnumba fit`` does and return the :class:`Model` of the best validation epoch.

    ``dataset``: a shipped name, a CSV/TSV path, a :class:`~pmtnumba.data.dataset.Dataset`, or a
    pandas DataFrame with ``user`` and ``item`` columns (and optionally ``rating``). ``options``:
    ``method``, ``tasks`` (list or comma-separated), ``epochs``, ``lr``, ``wd``, ``dim``,
    ``batch_size``, ``seed``, ``threads``, ``alpha``, ``tau``, ... (the fields of
    :class:`~pmtnumba.training.FitConfig`); lr and wd default to the tuned pair of a shipped set.
    ``out``: a run directory to write (none by default: nothing is written); an occupied, locked
    or unusable one is refused before anything is loaded (``resume``/``overwrite`` as for the CLI).
    ``reporter``: a :class:`~pmtnumba.training.loop.Reporter` for progress (none by default)."""
    check_out(out, resume, overwrite)
    tr = trainer(dataset, data_dir=data_dir, reporter=reporter, **options)
    tr.allow_divergence = allow_divergence
    return model_of(tr, tr.fit(out_dir=out, resume=resume, overwrite=overwrite), out)


def check_out(out, resume: bool = False, overwrite: bool = False) -> None:
    """Refuse an occupied, locked or unusable run directory now, not after loading and training."""
    from .training.runio import RunWriter

    if out is not None:
        RunWriter(out, resume=resume, overwrite=overwrite).check()
    elif resume or overwrite:
        raise PmtError(f"--{'resume' if resume else 'overwrite'} needs --out DIR")


@dataclass
class StepInspection:
    """One training step laid open (see docs/gradients.md and docs/combiners.md).

    rows     int64 [R]       the rows the step touched (users ``< n_users``, then items)
    G        float32 [T, R, d]  each task's gradient on each row (zero where a task did not touch it)
    weights  float [R, T] or None  PMTRec's per-row task weights (None for other methods)
    g        float32 [R, d]  the combined gradient Adam receives (before weight decay)
    losses   float [T]       each task's mean loss on the batch
    tasks    list[str]       task names, the order of G's first axis and of weights' columns
    """

    rows: np.ndarray
    G: np.ndarray
    weights: np.ndarray | None
    g: np.ndarray
    losses: np.ndarray
    tasks: list
    n_users: int
    epoch: int
    step: int

    def row_norms(self) -> np.ndarray:
        """``||G[t, r, :]||`` as [R, T] (what PMTRec's softmax starts from)."""
        return np.linalg.norm(self.G, axis=2).T


def step_inspect(dataset="office", *, step: int = 1, data_dir=None, **options) -> StepInspection:
    """Train up to step ``step`` of epoch 1 and return that step's quantities (the step itself is
    applied, as in training). ``options`` as for :func:`fit` (``method="pmtrec"`` by default)."""
    from .combiners import StepContext
    from .data.samplers import epoch_batches
    from .tasks import Batch
    from .training import Trainer
    from .training.step import StepWorkspace, multitask_gradients, train_step

    options = {"method": "pmtrec", **options}
    seed = int(options.get("seed", 0))
    name, split = _split_of(dataset, seed, data_dir)
    cfg = make_config(name, **{**options, "data_dir": data_dir, "record_weights": True})
    tr = Trainer(cfg, split=split)
    batches = epoch_batches(split.train_users.shape[0], tr.batch_size, cfg.seed, 1)
    if not 1 <= step <= len(batches):
        raise PmtError(f"step must be in 1..{len(batches)} (the steps of epoch 1), got {step}")
    ws = StepWorkspace(tr.tasks, tr.batch_size, tr.encoder.E.shape[0], cfg.dim, tr.encoder.E.dtype)
    sp = split
    for s, bidx in enumerate(batches[:step], 1):
        batch = Batch(sp.train_users[bidx], sp.train_items[bidx], None if sp.train_ratings is None else sp.train_ratings[bidx])
        ctx = StepContext(epoch=1, step=s, rng=tr.rng, n_users=sp.n_users)
        if s < step:
            train_step(tr.encoder.E, tr.tasks, batch, tr.combiner, tr.adam, ctx, cfg.seed, ws)
            continue
        rows, G, losses, _ = multitask_gradients(tr.encoder.E, tr.tasks, batch, cfg.seed, 1, s, ws)
        G = G.copy()
        ctx.rows = rows
        g = tr.combiner(G, ctx)
        w = getattr(tr.combiner, "last_weights", None)
        out = StepInspection(rows=rows.copy(), G=G, weights=None if w is None else np.array(w), g=np.array(g),
                             losses=losses, tasks=[t.name for t in tr.tasks], n_users=sp.n_users, epoch=1, step=s)
        tr.adam.step(rows, g)
        return out
