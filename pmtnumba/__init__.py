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

__version__ = "0.1.0"
