"""Training: configuration, the multi-task step, the loop with early stopping, run I/O."""

from .config import FitConfig
from .loop import FitResult, Reporter, Trainer

__all__ = ["FitConfig", "FitResult", "Reporter", "Trainer"]
