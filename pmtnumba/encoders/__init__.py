"""Encoders mapping parameters to the final user/item embeddings the tasks see: MF (the table
itself), LightGCN and NGCF (propagation over the training graph, backward passes by hand).
:func:`make_encoder` builds one by its CLI name."""

from .base import Encoder
from .lightgcn import LightGCN, lightgcn_propagate
from .mf import MF, init_table, xavier_uniform
from .ngcf import NGCF
from .propagate import NormAdjacency

ENCODERS = ("mf", "lightgcn", "ngcf")


def make_encoder(name: str, n_users: int, n_items: int, dim: int, seed: int, train_users=None, train_items=None,
                 layers: int = 3, dropout: float = 0.1) -> Encoder:
    """Build an encoder by name; the graph encoders need the training pairs (their graph)."""
    if name == "mf":
        return MF(n_users, n_items, dim, seed)
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose from {', '.join(ENCODERS)}")
    adj = NormAdjacency(train_users, train_items, n_users, n_items)
    if name == "lightgcn":
        return LightGCN(adj, dim, seed, layers)
    return NGCF(adj, dim, seed, layers, dropout)


__all__ = ["Encoder", "MF", "LightGCN", "NGCF", "NormAdjacency", "ENCODERS", "make_encoder", "init_table",
           "xavier_uniform", "lightgcn_propagate"]
