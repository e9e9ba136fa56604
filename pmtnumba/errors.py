"""Errors that the command line reports as one clear line (no traceback)."""


class PmtError(Exception):
    """A user-facing error: bad input file, bad argument, diverged training."""


class DataError(PmtError):
    """A data file is missing or malformed; the message names the file and line."""


class TrainingDiverged(PmtError):
    """A loss or gradient became NaN or Inf; the message names the task and epoch."""


class RunFileError(PmtError):
    """A file of a run directory (config, metrics, embeddings, checkpoint...) is missing, damaged
    or does not belong to the run; the message names the file and what is wrong."""
