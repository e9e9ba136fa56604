"""Data sets, splits, CSR structures and samplers.

:func:`load_dataset` loads a shipped data set (``datasets/<name>.npz``, names in
:data:`SHIPPED`) or a user's own CSV/TSV into a :class:`Dataset`; :func:`summary_table` gives a
Table-1 style summary computed from the files.
"""

from pmtnumba.data.dataset import Dataset
from pmtnumba.data.io import SHIPPED, data_dir, load_dataset, remap_interactions, summary_table

__all__ = ["Dataset", "SHIPPED", "data_dir", "load_dataset", "remap_interactions", "summary_table"]
