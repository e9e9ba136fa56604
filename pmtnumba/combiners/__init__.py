"""Gradient combiners: EW, PMTRec and the task-wise baselines, behind one interface."""

from .base import EW, Combiner, StepContext

COMBINERS = {"ew": EW}


def make_combiner(name: str, **options) -> Combiner:
    """Build a combiner by its CLI name with its hyper-parameters."""
    try:
        cls = COMBINERS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(sorted(COMBINERS))}") from None
    return cls(**options)


__all__ = ["Combiner", "EW", "StepContext", "COMBINERS", "make_combiner"]
