"""Chunked full-ranking evaluation and top-K metrics (SPEC section 6).

- :func:`evaluate` - metrics of user/item embeddings on a held-out split, all items ranked,
  seen items masked, users processed in memory-bounded chunks (module :mod:`.ranking`).
- :func:`topk_for_users` - recommendations (top-K item ids) for given users.
- :func:`metrics_from_scores` - metrics of a score matrix you computed yourself.
- :func:`metrics_from_topk` - metrics of ranked lists you computed yourself (module
  :mod:`.metrics`, which also documents the metric definitions).
- :func:`topk_from_scores` - masked, deterministic top-K of score rows (module :mod:`.topk`,
  with the Numba kernel).
- :func:`csr_from_pairs` - the per-user item-set CSR used as ``heldout`` and ``exclude``.
"""

from .metrics import METRICS, metrics_from_scores, metrics_from_topk, per_user_metrics
from .ranking import auto_chunk_size, csr_from_pairs, evaluate, topk_for_users
from .topk import csr_union, topk_from_scores

__all__ = [
    "METRICS",
    "auto_chunk_size",
    "csr_from_pairs",
    "csr_union",
    "evaluate",
    "metrics_from_scores",
    "metrics_from_topk",
    "per_user_metrics",
    "topk_for_users",
    "topk_from_scores",
]
