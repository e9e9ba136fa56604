"""pmtnumba: personalized multi-task training (PMTRec) of recommender embeddings.

NumPy/Numba engine with hand-derived gradients. The package is organised by what things are:

- :mod:`pmtnumba.data`        data sets, splits, CSR structures and samplers
- :mod:`pmtnumba.tasks`       task losses with their analytic row gradients
- :mod:`pmtnumba.encoders`    embedding encoders (MF)
- :mod:`pmtnumba.combiners`   gradient combiners (EW, PMTRec, task-wise baselines)
- :mod:`pmtnumba.optim`       hand-written (sparse) Adam
- :mod:`pmtnumba.evaluation`  chunked full-ranking evaluation and metrics
- :mod:`pmtnumba.training`    the training loop, early stopping and run I/O
"""

import os as _os

# Numba's OpenMP threading layer spin-waits between parallel regions by default. On a shared
# 2-core machine a busy neighbour then makes a 2-thread epoch many times slower than 1 thread
# (measured: 0.87 s vs 0.14 s per videogame BPR epoch under load; 0.05 s with PASSIVE). The
# engine launches many short parallel kernels per step, so waiting threads sleep instead. Set
# OMP_WAIT_POLICY=ACTIVE yourself (before importing pmtnumba) to restore spinning.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
