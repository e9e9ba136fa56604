"""The in-memory data set: interactions plus the side relations the auxiliary tasks use.

Row spaces are contiguous: users ``0..n_users-1`` and items ``0..n_items-1``. Original ids are
kept in ``user_raw`` / ``item_raw`` so results can be reported by the ids a user knows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """One data set after id remapping and de-duplication.

    Attributes
    ----------
    name : str
        Short name (``office``, ``videogame``, ... or the file stem of a user's file).
    n_users, n_items : int
        Sizes of the two row spaces.
    users, items : int32 [M]
        The interactions, one row per distinct (user, item) pair.
    ratings : float32 [M] or None
        Explicit ratings of the interactions where the data has them.
    user_raw, item_raw : [n_users], [n_items]
        Original ids (integers or strings) of the contiguous ids.
    social : int32 [L, 2] or None
        User-user links (as given, directed, de-duplicated, no self-loops).
    item_category : int32 [n_items] or None
        One category per item (the most frequent one); -1 where unknown.
    also_viewed, also_bought : int32 [L, 2] or None
        Item-item links (directed as given, de-duplicated, no self-loops).
    source : str
        Where the data came from (a path), for messages and run configs.
    """

    name: str
    n_users: int
    n_items: int
    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray | None = None
    user_raw: np.ndarray | None = None
    item_raw: np.ndarray | None = None
    social: np.ndarray | None = None
    item_category: np.ndarray | None = None
    also_viewed: np.ndarray | None = None
    also_bought: np.ndarray | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def n_interactions(self) -> int:
        return int(self.users.shape[0])

    @property
    def density(self) -> float:
        return self.n_interactions / float(max(1, self.n_users) * max(1, self.n_items))

    def relations(self) -> dict[str, int]:
        """Side relations present, with their sizes (links, or items with a category)."""
        out: dict[str, int] = {}
        if self.social is not None:
            out["social"] = int(self.social.shape[0])
        if self.item_category is not None:
            out["category"] = int(np.unique(self.item_category[self.item_category >= 0]).size)
        if self.also_viewed is not None:
            out["also_viewed"] = int(self.also_viewed.shape[0])
        if self.also_bought is not None:
            out["also_bought"] = int(self.also_bought.shape[0])
        if self.ratings is not None:
            out["ratings"] = int(self.ratings.shape[0])
        return out
