"""Optimizers."""

from .adam import Adam

__all__ = ["Adam"]
