"""The resolved configuration of a training run (written to ``config.json`` of each run)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


@dataclass
class FitConfig:
    dataset: str = "office"
    tasks: list[str] | None = None  # None: the data set's default task set
    method: str = "ew"
    method_options: dict = field(default_factory=dict)
    task_options: dict = field(default_factory=dict)
    aux_sampling: str = "anchored"
    checkpoint_every: float = 30.0  # seconds between checkpoints in the run directory (0: after every epoch)
    record_weights: bool = True  # PMTRec: per-epoch weight distributions (weights.csv)
    encoder: str = "mf"  # mf | lightgcn | ngcf
    layers: int = 3  # propagation layers K of lightgcn / ngcf
    mess_dropout: float = 0.1  # ngcf message dropout
    dim: int = 32
    batch_size: int = 2048
    lr: float = 1e-2
    wd: float = 1e-4
    # the published LightGCN/NGCF L2 on the batch's ego embeddings (0: off); see training/ego_reg.py
    reg: float = 0.0
    adam_mode: str = "sparse"
    epochs: int = 300
    patience: int = 10
    eval_every: int = 1
    monitor: str = "recall@20"
    ks: tuple = (5, 10, 20, 40)
    seed: int = 0
    threads: int | None = None
    device: str = "cpu"  # "cpu", "cuda" or "auto" (the CLI's default); see pmtnumba.device
    data_dir: str | None = None
    # a fixed split from files (``dataset`` is then the training file); see pmtnumba.data.fixed
    valid_file: str | None = None
    test_file: str | None = None
    holdout: float = 0.1  # fixed split without a validation part: fraction of each user's train held out
    select_on: str = "valid"  # "test": the papers' protocol, results labelled optimistic

    def validate(self) -> None:
        def need(cond, msg):
            if not cond:
                raise ValueError(msg)

        need(self.dim >= 1, f"--dim must be >= 1, got {self.dim}")
        need(self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}")
        need(self.lr > 0 and math.isfinite(self.lr), f"--lr must be a finite number > 0, got {self.lr}")
        need(self.wd >= 0 and math.isfinite(self.wd), f"--wd must be a finite number >= 0, got {self.wd}")
        need(self.reg >= 0 and math.isfinite(self.reg), f"--reg must be a finite number >= 0, got {self.reg}")
        need(self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}")
        need(self.patience >= 1, f"--patience must be >= 1, got {self.patience}")
        need(self.checkpoint_every >= 0 and math.isfinite(self.checkpoint_every),
             f"--checkpoint-every must be a number of seconds >= 0, got {self.checkpoint_every}")
        need(self.eval_every >= 1, f"--eval-every must be >= 1, got {self.eval_every}")
        need(self.adam_mode in ("sparse", "dense"), f"--adam must be sparse or dense, got {self.adam_mode}")
        need(self.aux_sampling in ("anchored", "independent"),
             f"--aux-sampling must be anchored or independent, got {self.aux_sampling}")
        need(self.encoder in ("mf", "lightgcn", "ngcf"), f"--encoder must be mf, lightgcn or ngcf, got {self.encoder}")
        lo = 1 if self.encoder == "ngcf" else 0
        need(self.layers >= lo, f"--layers must be >= {lo} for {self.encoder}, got {self.layers}")
        need(0.0 <= self.mess_dropout < 1.0, f"--mess-dropout must be in [0, 1), got {self.mess_dropout}")
        need(self.device in ("cpu", "cuda", "auto"), f"--device must be cpu, cuda or auto, got {self.device}")
        need(self.threads is None or self.threads >= 1, f"--threads must be >= 1, got {self.threads}")
        need(0.0 <= self.holdout < 1.0, f"--holdout must be a fraction in [0, 1), got {self.holdout}")
        need(self.select_on in ("valid", "test"), f"--select-on must be valid or test, got {self.select_on}")
        need(self.valid_file is None or self.test_file is not None,
             f"--valid {self.valid_file} needs --test FILE too (the training file is --train/--dataset)")
        metric, _, k = self.monitor.partition("@")
        need(metric in ("recall", "ndcg", "hr", "precision", "mrr") and k.isdigit() and int(k) in self.ks,
             f"--monitor must be one of recall/ndcg/hr/precision/mrr @ {list(self.ks)}, got {self.monitor}")

    def split_options(self) -> dict:
        """Keyword arguments of :func:`pmtnumba.data.split.make_split` from this config."""
        return {"holdout": self.holdout, "select_on": self.select_on}

    def load_options(self) -> dict:
        """Keyword arguments of :func:`pmtnumba.data.load_dataset` from this config."""
        return {"data_dir": self.data_dir, "valid": self.valid_file, "test": self.test_file}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ks"] = list(self.ks)
        return d


#: Learning rate and weight decay that ``pmtnumba fit`` uses when they are not given, per shipped
#: data set and kind of task set, chosen on seed-0 validation Recall@20 (experiments in
#: ``results/``, README "Results"). Weight decay matters most: it is added to the combined
#: gradient, so its best value depends on the task set and the combiner (docs/combiners.md).
RECOMMENDED = {
    ("office", "bpr"): (1e-2, 1e-4),
    ("office", "multi"): (5e-3, 1e-4),
    ("videogame", "bpr"): (1e-2, 3e-5),
    ("videogame", "multi"): (1e-2, 1e-5),
}
FALLBACK_LR_WD = (1e-2, 1e-4)


def recommended_lr_wd(dataset: str, tasks) -> tuple[float, float]:
    """(lr, wd) for a data set and task list: the tuned pair where measured, else (1e-2, 1e-4)."""
    kind = "bpr" if list(tasks) == ["bpr"] else "multi"
    return RECOMMENDED.get((dataset, kind), FALLBACK_LR_WD)
