"""The encoder interface: parameters in, final user/item embeddings out, and the way back.

An encoder owns its parameters: an embedding table ``E`` [N, d] over the joint row space (users
``0..U-1``, items ``U..U+I-1``), updated by the row-sparse Adam, plus optional dense parameters
(NGCF's weight matrices), each updated by its own dense Adam. A training step runs:

    F = encoder.forward(key)                      # final embeddings [N, d_out], one forward
    tasks on F -> rows, G [T, R, d_out]           # exactly as with MF (slots, per-row sums)
    rows0, G0, dense = encoder.backward(rows, G)  # per-task gradients on E's rows and on the
                                                  # dense parameters: G0 [T, R0, d], dense[name] [T, *shape]

The per-task gradients then go to the combiner (:func:`pmtnumba.training.step.graph_train_step`).
MF is the identity encoder (``F`` is ``E``, ``backward`` returns its input); the trainer keeps
MF on its own step path (:func:`pmtnumba.training.step.train_step`), which never calls these.
"""

from __future__ import annotations

import numpy as np


class Encoder:
    """Base class; subclasses set ``name``, ``E``, ``n_users``, ``n_items`` and implement
    :meth:`forward` and :meth:`backward`."""

    name = "encoder"
    E: np.ndarray
    n_users: int
    n_items: int

    @property
    def out_dim(self) -> int:
        """Width of the final embeddings (what the tasks and the evaluation see)."""
        return int(self.E.shape[1])

    def dense_params(self) -> dict:
        """Dense parameters by name (updated in place by the trainer's dense Adam); none here."""
        return {}

    def forward(self, key=None, train: bool = False) -> np.ndarray:  # pragma: no cover - interface
        """Final embeddings [N, out_dim]. ``train=True`` applies training-only noise (NGCF's
        message dropout, drawn with the counter-based ``key``) and keeps what :meth:`backward`
        needs. The result may be a reused buffer: valid until the next call."""
        raise NotImplementedError

    def backward(self, rows, G):  # pragma: no cover - interface
        """Per-task gradients on the parameters from per-task gradients ``G [T, R, out_dim]`` on
        the final rows ``rows``, for the last ``forward(train=True)``: returns ``(rows0, G0, dense)``
        with ``G0 [T, len(rows0), d]`` on the rows ``rows0`` of ``E`` and ``dense[name]`` of shape
        ``[T, *param.shape]``."""
        raise NotImplementedError

    def output(self) -> np.ndarray:
        """Final embeddings for evaluation (no training noise)."""
        return self.forward(train=False)

    @property
    def user_emb(self) -> np.ndarray:
        return self.output()[: self.n_users]

    @property
    def item_emb(self) -> np.ndarray:
        return self.output()[self.n_users :]

    def arrays(self) -> dict:
        """Every parameter by name (``E`` and the dense ones), for snapshots and checkpoints."""
        out = {"E": self.E}
        out.update(self.dense_params())
        return out

    def snapshot(self) -> dict:
        """A copy of every parameter (the best epoch's state)."""
        return {k: v.copy() for k, v in self.arrays().items()}

    def restore(self, snap: dict) -> None:
        """Write a :meth:`snapshot` (or a checkpoint's arrays) back into the parameters."""
        for k, v in self.arrays().items():
            if snap[k].shape != v.shape:
                raise ValueError(f"encoder {self.name}: parameter {k} has shape {snap[k].shape}, expected {v.shape}")
            v[...] = snap[k]

    def config(self) -> dict:
        return {}
