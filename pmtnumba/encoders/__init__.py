"""Encoders mapping parameters to user/item embeddings (MF now; LightGCN and NGCF later)."""

from .mf import MF, xavier_uniform

__all__ = ["MF", "xavier_uniform"]
