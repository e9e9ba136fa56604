"""Matrix factorisation: the encoder is the embedding table itself.

Users are rows ``0..U-1`` and items rows ``U..U+I-1`` of one ``[U+I, d]`` float32 table, so
every task kernel and the optimizer work on a single row space. A task's gradient with respect
to the encoder's output row is the gradient with respect to that parameter row.
"""

from __future__ import annotations

import numpy as np


def xavier_uniform(rows: int, dim: int, rng: np.random.Generator, dtype=np.float32, out=None) -> np.ndarray:
    """Xavier/Glorot uniform init of one table: U(-b, b) with ``b = sqrt(6 / (rows + dim))``
    (torch.nn.init.xavier_uniform_ on a ``[rows, dim]`` weight).

    The float64 draws are made in blocks of about 8 MiB and cast into ``out`` (or a new array), so
    a large table costs no float64 copy of itself; the values are those of one draw of the whole
    table (the generator's stream is the same cut in blocks)."""
    bound = np.sqrt(6.0 / (rows + dim))
    if out is None:
        out = np.empty((rows, dim), dtype)
    block = max(1, (1 << 20) // max(1, dim))
    for start in range(0, rows, block):
        stop = min(rows, start + block)
        out[start:stop] = rng.uniform(-bound, bound, size=(stop - start, dim))
    return out


class MF:
    """The MF encoder: parameters ``E`` [U+I, d]; output embeddings are ``E`` itself."""

    name = "mf"

    def __init__(self, n_users: int, n_items: int, dim: int, seed: int):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xE4B]))
        self.n_users = n_users
        self.n_items = n_items
        self.E = np.empty((n_users + n_items, dim), np.float32)
        xavier_uniform(n_users, dim, rng, out=self.E[:n_users])
        xavier_uniform(n_items, dim, rng, out=self.E[n_users:])

    @property
    def user_emb(self) -> np.ndarray:
        return self.E[: self.n_users]

    @property
    def item_emb(self) -> np.ndarray:
        return self.E[self.n_users :]
