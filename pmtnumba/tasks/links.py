"""Link-prediction tasks: ``social``, ``category``, ``coview`` and ``cobuy`` (SPEC section 2).

All four are the pairwise ranking loss of the shared triplet kernel
(:func:`pmtnumba.tasks.triplet.triplet_slots`, pure form :func:`pmtnumba.tasks.triplet.triplet_loss_grad`)

    l = mean over the step's triplets (a, b, c) of  -log sigma(x_ab - x_ac)

fed with different link structures:

=========== ====================== ============================================================
task        anchor a / rows        positive b / negative c
=========== ====================== ============================================================
``social``  user (rows 0..U-1)     a friend of a / a user that is neither a nor a friend of a
``category``item (rows U..U+I-1)   another item of a's category / an item of another category
``coview``  item                   an item also-viewed with a / an item neither a nor linked
``cobuy``   item                   an item also-bought with a / an item neither a nor linked
=========== ====================== ============================================================

Link structures (built once per run from the whole data set; side information is not split):

* social links are made symmetric with self-loops dropped, as SPEC section 1 says;
* ``also_viewed`` / ``also_bought`` are *also* made symmetric (self-loops dropped). Our choice:
  "viewed together" and "bought together" are co-occurrence relations with no natural direction,
  the tasks predict "whether two items are co-viewed / co-bought", and the symmetric graph lets
  every item that occurs in a link act as an anchor (a directed graph would leave items that
  only appear as a target without positives);
* the category "graph" is implicit: two items are linked when they share a known category.
  Negatives are drawn among items with a *known* other category (an unknown category, -1, is not
  evidence of a different category); items with unknown category are never anchors.

Sampling, ``ctx.aux_sampling``:

* ``"anchored"`` (default): the triplets hang off the batch. For each interaction of the batch
  (so a user or item that occurs several times in the batch anchors several triplets, as in BPR),
  its user (``social``) or item (the item tasks) is the anchor; the positive is uniform among the
  anchor's links and the negative uniform among the valid negatives. Anchors without a positive
  or a negative are skipped: they write no slots.
* ``"independent"``: each task draws its own batch of the same size, each sample a link
  ``(anchor, positive)`` uniform over all links (both orientations of an undirected link; for
  ``category`` all ordered pairs of distinct same-category items), then a negative as above.

Draws use the task's stream key (:mod:`pmtnumba.data.link_samplers`), so they are the same for
any thread count. The loss is the mean over the triplets actually formed.
"""

from __future__ import annotations

import numpy as np

from ..data.link_samplers import (
    category_structure,
    sample_category_anchored,
    sample_category_independent,
    sample_link_anchored,
    sample_link_independent,
    symmetric_link_csr,
)
from .base import Batch, TaskContext
from .triplet import TripletTask

MAX_TRIES = 64
_SAMPLING = ("anchored", "independent")


def _require(ctx: TaskContext, attr: str, task: str):
    """The data set's relation ``attr``, or a ValueError naming the data set."""
    ds = ctx.dataset
    value = None if ds is None else getattr(ds, attr, None)
    if value is None:
        name = getattr(ds, "name", "?") if ds is not None else "(none given)"
        raise ValueError(f"task {task!r} needs the {attr!r} relation, but data set {name!r} has none")
    return value


def _check_sampling(ctx: TaskContext):
    if ctx.aux_sampling not in _SAMPLING:
        raise ValueError(f"aux_sampling must be one of {', '.join(_SAMPLING)}, got {ctx.aux_sampling!r}")


class _TripletTask(TripletTask):
    """Link tasks: :class:`~pmtnumba.tasks.triplet.TripletTask` plus the compaction of skipped samples."""

    @staticmethod
    def _compact(anchor, pos, neg, offset):
        keep = pos >= 0
        return anchor[keep] + offset, pos[keep] + offset, neg[keep] + offset


class LinkTask(_TripletTask):
    """A link-prediction task on a symmetric CSR of links (``social``, ``coview``, ``cobuy``).

    Subclasses set ``relation`` (the Dataset attribute), ``side`` (``"user"`` or ``"item"``).
    Option ``max_tries`` (default 64): rejection draws before the exact fallback for negatives.
    """

    relation = ""
    side = "item"

    def __init__(self, ctx: TaskContext, stream: int, max_tries: int = MAX_TRIES):
        super().__init__(ctx, stream)
        _check_sampling(ctx)
        pairs = _require(ctx, self.relation, self.name)
        self.n_local = ctx.n_users if self.side == "user" else ctx.n_items
        self.offset = 0 if self.side == "user" else ctx.n_users
        self.indptr, self.indices = symmetric_link_csr(pairs, self.n_local)
        self.max_tries = int(max_tries)
        if self.max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {max_tries}")

    @property
    def n_links(self) -> int:
        """Directed links in the symmetric CSR (twice the undirected links)."""
        return int(self.indptr[-1])

    def triplets(self, batch: Batch, key):
        n = batch.size
        if self.ctx.aux_sampling == "anchored":
            anchor = np.ascontiguousarray(batch.users if self.side == "user" else batch.items, dtype=np.int64)
            pos = np.empty(n, np.int64)
            neg = np.empty(n, np.int64)
            sample_link_anchored(anchor, self.indptr, self.indices, self.n_local, key, self.max_tries, pos, neg)
        else:
            if self.n_links == 0 or n == 0:
                e = np.empty(0, np.int64)
                return e, e, e
            anchor = np.empty(n, np.int64)
            pos = np.empty(n, np.int64)
            neg = np.empty(n, np.int64)
            sample_link_independent(self.indptr, self.indices, self.n_local, key, self.max_tries, anchor, pos, neg)
        return self._compact(anchor, pos, neg, self.offset)

    def config(self) -> dict:
        return {"max_tries": self.max_tries, "sampling": self.ctx.aux_sampling}


class SocialTask(LinkTask):
    """``social``: -log sigma(x_uv - x_uw), v a friend of user u, w a user neither u nor a friend."""

    name = "social"
    relation = "social"
    side = "user"


class CoViewTask(LinkTask):
    """``coview``: -log sigma(x_ij - x_ik), j also-viewed with item i, k neither i nor linked."""

    name = "coview"
    relation = "also_viewed"
    side = "item"


class CoBuyTask(LinkTask):
    """``cobuy``: -log sigma(x_ij - x_ik), j also-bought with item i, k neither i nor linked."""

    name = "cobuy"
    relation = "also_bought"
    side = "item"


class CategoryTask(_TripletTask):
    """``category``: -log sigma(x_ij - x_ik), j another item of item i's category, k an item of a
    different (known) category. Items whose category is unknown or has no other item are skipped."""

    name = "category"

    def __init__(self, ctx: TaskContext, stream: int):
        super().__init__(ctx, stream)
        _check_sampling(ctx)
        cat = _require(ctx, "item_category", self.name)
        self.item_cat = np.ascontiguousarray(cat, dtype=np.int64)
        self.cat_indptr, self.cat_items, self.item_pos, self.pair_cum = category_structure(cat, ctx.n_items)
        self.offset = ctx.n_users

    def triplets(self, batch: Batch, key):
        n = batch.size
        pos = np.empty(n, np.int64)
        neg = np.empty(n, np.int64)
        if self.ctx.aux_sampling == "anchored":
            anchor = np.ascontiguousarray(batch.items, dtype=np.int64)
            if self.cat_items.size == 0:
                e = np.empty(0, np.int64)
                return e, e, e
            sample_category_anchored(anchor, self.item_cat, self.cat_indptr, self.cat_items, self.item_pos, key,
                                     pos, neg)
        else:
            if self.pair_cum.size == 0 or self.pair_cum[-1] == 0 or n == 0:
                e = np.empty(0, np.int64)
                return e, e, e
            anchor = np.empty(n, np.int64)
            sample_category_independent(self.item_cat, self.cat_indptr, self.cat_items, self.pair_cum, key,
                                        anchor, pos, neg)
        return self._compact(anchor, pos, neg, self.offset)

    def config(self) -> dict:
        return {"sampling": self.ctx.aux_sampling}
