"""Hyper-parameter search (``pmtnumba sweep``): Optuna studies whose trials run on Dask.

- :mod:`.space`     the search space (the paper's grid, a JSON file, command-line lists)
- :mod:`.storage`   where the studies live (journal file by default, or a database URL)
- :mod:`.executor`  the Dask cluster the trials run on (embedded LocalCluster or a scheduler)
- :mod:`.trial`     one trial on a worker (training with pruning on validation Recall@20)
- :mod:`.study`     the driver: asks, submits, tells; resumable
- :mod:`.report`    best configurations re-run on seeds, Table 2, ablation, sensitivity

Optuna and dask.distributed are the optional ``sweep`` extra, imported only when a sweep runs.
"""
