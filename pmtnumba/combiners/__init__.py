"""Gradient combiners: EW, PMTRec and the task-wise baselines, behind one interface.

Every combiner maps the step's per-task row gradients ``G`` [T, R, d] (task 0 = main task) to
one [R, d] gradient; build one by its CLI name with :func:`make_combiner`. PMTRec works per row
(:mod:`.pmtrec`); the task-wise baselines treat G as one [T, R*d] matrix (:mod:`.taskwise`), each
in its own module with a pure ``<method>_combine`` function on [T, D] arrays. docs/combiners.md
explains the math of each.
"""

from .aligned_mtl import AlignedMTL, aligned_mtl_combine
from .base import EW, Combiner, CombinerWarning, StepContext
from .cagrad import CAGrad, cagrad_combine
from .graddrop import GradDrop, graddrop_combine
from .gradvac import GradVac, gradvac_combine
from .nash_mtl import NashMTL, nash_mtl_combine
from .pcgrad import PCGrad, pcgrad_combine
from .pmtrec import PMTRec, PMTRecNoBalance, PMTRecNoFocus, pmtrec_combine
from .rlw import RLW, rlw_combine

COMBINERS = {
    "ew": EW,
    "rlw": RLW,
    "graddrop": GradDrop,
    "pcgrad": PCGrad,
    "gradvac": GradVac,
    "cagrad": CAGrad,
    "aligned-mtl": AlignedMTL,
    "nash-mtl": NashMTL,
    "pmtrec": PMTRec,
    "pmtrec-nofocus": PMTRecNoFocus,
    "pmtrec-nobalance": PMTRecNoBalance,
}


def make_combiner(name: str, **options) -> Combiner:
    """Build a combiner by its CLI name with its hyper-parameters."""
    try:
        cls = COMBINERS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(sorted(COMBINERS))}") from None
    return cls(**options)


__all__ = [
    "Combiner",
    "CombinerWarning",
    "StepContext",
    "COMBINERS",
    "make_combiner",
    "EW",
    "RLW",
    "GradDrop",
    "PCGrad",
    "GradVac",
    "CAGrad",
    "AlignedMTL",
    "NashMTL",
    "PMTRec",
    "PMTRecNoFocus",
    "PMTRecNoBalance",
    "rlw_combine",
    "graddrop_combine",
    "pcgrad_combine",
    "gradvac_combine",
    "cagrad_combine",
    "aligned_mtl_combine",
    "nash_mtl_combine",
    "pmtrec_combine",
]
