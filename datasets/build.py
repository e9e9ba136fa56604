#!/usr/bin/env python
"""Convert the raw public data sets into the compact files shipped in ``datasets/``.

Usage (from anywhere)::

    python datasets/build.py [--raw ../shared/data] [--out datasets] [--only NAME ...] [--markdown]

``--raw`` defaults to ``<repo>/../shared/data`` and ``--out`` to ``<repo>/datasets`` (both
resolved from this script's location, so they hold wherever it is run from; paths given on the
command line are taken relative to the current directory). One ``<name>.npz`` (``np.savez_compressed``, no pickled
objects) is written per data set; see ``datasets/README.md`` for the keys.

Every raw file is checked against the figures recorded in its ``SOURCES.md`` (row counts, id
ranges, distinct users/items/links, ...): a changed raw file stops the build with a message
naming the figure. A sha256 that differs from the recorded one is reported as a warning.

The id remapping and de-duplication rule is :func:`pmtnumba.data.io.remap_interactions`, the
same code that loads a user's own CSV, so it exists once.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pmtnumba.data.io import (  # noqa: E402
    SHIPPED,
    clean_links,
    dataset_from_arrays,
    lookup_ids,
    majority_category,
    remap_interactions,
    save_npz,
    summarize,
)

# sha256 of the raw files, as recorded in each folder's SOURCES.md
SHA256 = {
    "epinions/rating.mat": "4fe1dd12896dbfc3d2b3e696c749947382d9725add4545cb6c44ee11c8e22159",
    "epinions/trust.mat": "0da70b3fa1818bdbe11986553bedf7e85ba71b25c813da77a841d7399d93c348",
    "epinions/catalog_epinion.txt": "a8e966db2d1e55882f81e9730552550f52f6e99215abd8a76c11af0fe5a4614c",
    "ciao/rating.mat": "aa793568686285a93286ba9e56954fcce347370ad2e58c785760362ab12d2c2c",
    "ciao/rating_with_timestamp.mat": "488e9aa5f60e6a52a972795b6402f922fc0d9d273152f4d124a5c5bdefb86a71",
    "ciao/trustnetwork.mat": "0a8963ed22e6b534ce8d14e478f54ce0af6f5a3440a67ed5a35e62486580ce3a",
    "ciao/catalog_ciao.txt": "fc29d8cdbbb210ac5ce789537dc83481e694b5eb9f2c3a69c4948a182dd03783",
    "office/office_ratings_joined.tsv": "a1cd1350dfbbf582034a97f9a09db63fd670bab0f8e1489207a67f09cc1453fa",
    "office/office_item_links_long.tsv": "7510bd55c949460f628ab6f3003e117f7ed8930730486d447dc169c372ad841e",
    "office/item_meta.csv": "dbefb00348f251c56d77687c1b3c369fbb35c3a48cb9fd6de25eca54f19d0c97",
    "videogame/train.csv": "8d4dfd087341675b14c24e9596eb1ab23eb2fbafe98be97d3686354ede28b273",
    "videogame/item_meta.csv": "46a3fe4ba691b5209fa93303ff7ccc1d6ae47544d264af414e3d2e4355f432be",
    "grocery/train.csv": "75847958fbcfec35dd0a20bda43432c22a5d7e5b5fe571fef0b25ff580b475f4",
    "grocery/item_meta.csv": "35a7d55fb7024b3cf7937cbc424762bc1cb5ef1f41d49f5955011effcebf144c",
    "lastfm/data1.txt": "c82af3228cbbda2f55a39244de09ed93292894f1d0d9f1908ebb57e27598fded",
    "lastfm/test1.txt": "de4417c0e6123284ce59a0934bcf5288ec1ec8774a18a1eef453c9952dfa48f9",
    "lastfm/trustnetwork.txt": "5b5bd7cbe4d22f3cd333dbfc7ec4b995cb2bdb28d95b0e9c5fc5607079f7b69e",
    "filmtrust/ratings.txt": "241167424e24d588e8871d68641e94ead98d5b3a4f0db01ef3181a74ad35e7a1",
    "filmtrust/trust.txt": "64573a033add72b988a0fb140fdbc0ad3464cb9821f940007aff6fda44b09603",
    "gowalla/s_adj_mat.npz": "6ab3ab7aa1278da3717054c60258d88d2d2d78914fa62db2b13da9321e397cab",
    "gowalla/test.txt": "099a2a73924e4b754dc6efd730d764f492321b53c38eb93298850c83acf57be3",
    "gowalla/user_list.txt": "5344c4d0deef610e1f148f23ad216a0db03b36f88834cd39a06786a672c5f5a1",
    "gowalla/item_list.txt": "6b186f92890cc3f0c15a6dae5d6285f125a302bb8c5ea0cd9a16cf9c16347139",
}

SOURCE = {
    "epinion": "Tang et al. Epinions; github.com/yushundong/Graph-Mining-Fairness-Data @ 86a17feb5bcfe325c662284d7ac6450cea322755 (epinions/epinions.zip: rating.mat) and @ 2bd4b5cd9a09d87e93c8efc490773cbfa0a7984e (dataset/Epinion&Ciao/trust.mat)",
    "ciao": "Tang et al. Ciao; github.com/yushundong/Graph-Mining-Fairness-Data @ 2bd4b5cd9a09d87e93c8efc490773cbfa0a7984e (dataset/Epinion&Ciao/ciao/rating_with_timestamp.mat) and @ 86a17feb5bcfe325c662284d7ac6450cea322755 (ciao/ciao.zip: rating.mat, trustnetwork.mat)",
    "office": "Amazon 2014 Office Products 5-core; github.com/ysh-1998/LRD @ ccbd8299c71bb0d26488d67b622706caf9139e21 data/Office (links, categories) joined with CSRec Office.inter ratings",
    "videogame": "Amazon 2014 Video Games 5-core minus each user's last two; github.com/tuandung2812/Group-3---Seq_Rec @ fff1be333c3e2531a524e4310354941db971543c data/Video_Games",
    "grocery": "Amazon 2014 Grocery and Gourmet Food 5-core minus each user's last two; github.com/THUwangcy/ReChorus @ 42ac0c6f2486556f42631380db9d00ad3ecf894b data/Grocery_and_Gourmet_Food",
    "lastfm": "HetRec 2011 lastfm-2k (LightGCN processing); github.com/gusye1234/LightGCN-PyTorch @ 947ca2b3b1d2d3545b114145710cb06c4e57b3d2 data/lastfm",
    "filmtrust": "FilmTrust (Guo et al. IJCAI'13); github.com/yushundong/Graph-Mining-Fairness-Data @ 86a17feb5bcfe325c662284d7ac6450cea322755 filmtrust/",
    "gowalla": "Gowalla check-ins (Cho et al. KDD'11, SNAP loc-gowalla), 10-core split of NGCF (Wang et al. SIGIR'19) and LightGCN (He et al. SIGIR'20); github.com/gusye1234/LightGCN-PyTorch @ 947ca2b3b1d2d3545b114145710cb06c4e57b3d2 data/gowalla (s_adj_mat.npz = train, test.txt)",
}


class BuildError(Exception):
    pass


def expect(name: str, what: str, got, want) -> None:
    """Fail the build when a raw-data figure differs from the one recorded in SOURCES.md."""
    if got != want:
        raise BuildError(f"{name}: raw data changed? {what}: got {got!r}, SOURCES.md says {want!r}")


class Raw:
    """The raw folder, with sha256 bookkeeping of every file read."""

    def __init__(self, root: Path):
        self.root = root
        self.used: dict[str, str] = {}

    def path(self, rel: str) -> Path:
        p = self.root / rel
        if not p.is_file():
            raise BuildError(f"missing raw file {p}")
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        self.used[rel] = digest
        want = SHA256.get(rel)
        if want is not None and want != digest:
            print(f"  WARNING: {rel}: sha256 {digest} differs from SOURCES.md ({want})", file=sys.stderr)
        return p

    def provenance(self) -> str:
        """Every raw file read, with its sha256, in reading order."""
        return "; ".join(f"{r} sha256={d}" for r, d in self.used.items())


def _loadmat(path: Path, key: str) -> np.ndarray:
    import scipy.io

    return np.asarray(scipy.io.loadmat(str(path))[key])


def _read_tsv(path: Path, **kw):
    import pandas as pd

    return pd.read_csv(path, sep="\t", **kw)


def _n_undirected(a: np.ndarray, b: np.ndarray) -> int:
    lo, hi = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
    return int(np.unique(lo * (int(hi.max()) + 1) + hi).size)


def _meta_links(meta, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Explode a column of Python-style lists "[1, 2]" into (head, tail) raw item ids."""
    heads, tails = [], []
    for head, cell in zip(meta["item_id"].to_numpy(), meta[column].astype(str).to_numpy()):
        body = cell.strip().strip("[]").strip()
        if body:
            t = np.array([int(x) for x in body.split(",")], dtype=np.int64)
            heads.append(np.full(t.shape[0], head, dtype=np.int64))
            tails.append(t)
    if not heads:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(heads), np.concatenate(tails)


def _check_amazon_links(name, head, tail, directed, items_with, undirected, n_meta):
    expect(name, "directed links", int(head.shape[0]), directed)
    if items_with is not None:
        expect(name, "items with >= 1 link", int(np.unique(head).size), items_with)
    if undirected is not None:
        expect(name, "undirected pairs", _n_undirected(head, tail), undirected)
    expect(name, "self-loops", int((head == tail).sum()), 0)
    expect(name, "link targets within 1..n", bool(tail.min() >= 1 and tail.max() <= n_meta), True)


def _base(name, rm) -> dict:
    out = {
        "name": np.array(name),
        "n_users": np.int64(rm.n_users),
        "n_items": np.int64(rm.n_items),
        "users": rm.users,
        "items": rm.items,
        "user_raw": rm.user_raw.astype(np.int64),
        "item_raw": rm.item_raw.astype(np.int64),
    }
    if rm.ratings is not None:
        out["ratings"] = rm.ratings.astype(np.float32)
    if rm.times is not None:
        out["times"] = rm.times.astype(np.int64)
    out["origin"] = np.array(SOURCE[name])
    out["duplicates_dropped"] = np.int64(rm.n_duplicates)
    return out


NOTES: list[str] = []  # what the cleaning of each link relation dropped, printed with the summary


def _links(kind: str, raw_ids: np.ndarray, n: int, src_raw, dst_raw) -> np.ndarray:
    """Map raw link ends to contiguous ids and clean them; note what was dropped and why."""
    s = lookup_ids(raw_ids, np.asarray(src_raw))
    d = lookup_ids(raw_ids, np.asarray(dst_raw))
    rows = int(s.shape[0])
    known = (s >= 0) & (d >= 0)
    loops = int((known & (s == d)).sum())
    links = clean_links(s, d, n)
    dup = rows - int((~known).sum()) - loops - int(links.shape[0])
    NOTES.append(f"{kind} {links.shape[0]:,} of {rows:,} rows ({int((~known).sum()):,} touch ids without "
                 f"interactions, {loops:,} self-loops, {dup:,} duplicates)")
    return links


def _social(rm, src_raw, dst_raw):
    return _links("social", rm.user_raw, rm.n_users, src_raw, dst_raw)


def _item_links(rm, head_raw, tail_raw, kind):
    return _links(kind, rm.item_raw, rm.n_items, head_raw, tail_raw)


def _catalog(path: Path, used: np.ndarray) -> np.ndarray:
    names = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if line:
            k, _, v = line.partition(" ")
            names[int(k)] = v.strip()
    return np.array([names.get(int(c), "") for c in used])


# ----------------------------------------------------------------------------------------------
# one builder per data set; each returns the .npz arrays
# ----------------------------------------------------------------------------------------------


def build_epinion(raw: Raw) -> dict:
    n = "epinion"
    r = _loadmat(raw.path("epinions/rating.mat"), "rating")
    expect(n, "rating.mat shape", r.shape, (922_267, 4))
    expect(n, "rating.mat dtype", str(r.dtype), "int32")
    expect(n, "distinct users", int(np.unique(r[:, 0]).size), 22_164)
    expect(n, "max user id", int(r[:, 0].max()), 22_166)
    expect(n, "distinct items", int(np.unique(r[:, 1]).size), 296_277)
    expect(n, "max item id", int(r[:, 1].max()), 296_277)
    expect(n, "categories", int(np.unique(r[:, 2]).size), 27)
    expect(n, "rating histogram 1..5", np.bincount(r[:, 3], minlength=6)[1:].tolist(),
           [52_967, 68_807, 119_763, 290_952, 389_778])
    pair = r[:, 0].astype(np.int64) * 300_000 + r[:, 1]
    expect(n, "distinct (user, item) pairs", int(np.unique(pair).size), 912_441)
    ic = np.unique(r[:, 1].astype(np.int64) * 100 + r[:, 2])
    expect(n, "items with >1 category", int((np.bincount(ic // 100) > 1).sum()), 577)

    t = _loadmat(raw.path("epinions/trust.mat"), "trust")
    expect(n, "trust.mat shape", t.shape, (355_813, 2))
    tk = t[:, 0].astype(np.int64) * 100_000 + t[:, 1]
    expect(n, "distinct trust pairs", int(np.unique(tk).size), 355_217)
    expect(n, "trust self-loops", int((t[:, 0] == t[:, 1]).sum()), 224)
    expect(n, "users in trust.mat", int(np.unique(t).size), 18_089)

    rm = remap_interactions(r[:, 0], r[:, 1], ratings=r[:, 3])  # no times: last row in file wins
    out = _base(n, rm)
    cat, used = majority_category(lookup_ids(rm.item_raw, r[:, 1]), r[:, 2], rm.n_items)
    out["item_category"] = cat
    out["category_raw"] = used
    out["category_name"] = _catalog(raw.path("epinions/catalog_epinion.txt"), used)
    out["social"] = _social(rm, t[:, 0], t[:, 1])
    return out


def build_ciao(raw: Raw) -> dict:
    n = "ciao"
    r = _loadmat(raw.path("ciao/rating_with_timestamp.mat"), "rating")
    expect(n, "rating_with_timestamp.mat shape", r.shape, (284_086, 6))
    expect(n, "distinct users", int(np.unique(r[:, 0]).size), 7_375)
    expect(n, "distinct items", int(np.unique(r[:, 1]).size), 105_114)
    expect(n, "max item id", int(r[:, 1].max()), 106_797)
    expect(n, "categories", int(np.unique(r[:, 2]).size), 28)
    expect(n, "rating range", (int(r[:, 3].min()), int(r[:, 3].max())), (0, 5))
    expect(n, "helpfulness range", (int(r[:, 4].min()), int(r[:, 4].max())), (1, 7))
    day = lambda s: time.strftime("%Y-%m-%d", time.gmtime(int(s)))  # noqa: E731
    expect(n, "time range", (day(r[:, 5].min()), day(r[:, 5].max())), ("2000-05-30", "2011-04-12"))
    r5 = _loadmat(raw.path("ciao/rating.mat"), "rating")
    expect(n, "rating.mat shape", r5.shape, (284_086, 5))
    a = r[:, :5][np.lexsort(r[:, :5].T[::-1])]
    b = r5[np.lexsort(r5.T[::-1])]
    expect(n, "rating.mat equals rating_with_timestamp.mat without time", bool(np.array_equal(a, b)), True)

    t = _loadmat(raw.path("ciao/trustnetwork.mat"), "trustnetwork")
    expect(n, "trustnetwork.mat shape", t.shape, (111_781, 2))
    expect(n, "trusters", int(np.unique(t[:, 0]).size), 6_792)
    expect(n, "trustees", int(np.unique(t[:, 1]).size), 7_297)
    expect(n, "trust ids within 1..7375", bool(t.min() >= 1 and t.max() <= 7_375), True)

    rm = remap_interactions(r[:, 0], r[:, 1], ratings=r[:, 3], times=r[:, 5])
    out = _base(n, rm)
    cat, used = majority_category(lookup_ids(rm.item_raw, r[:, 1]), r[:, 2], rm.n_items)
    out["item_category"] = cat
    out["category_raw"] = used
    out["category_name"] = _catalog(raw.path("ciao/catalog_ciao.txt"), used)
    out["social"] = _social(rm, t[:, 0], t[:, 1])
    return out


def build_office(raw: Raw) -> dict:
    n = "office"
    df = _read_tsv(raw.path("office/office_ratings_joined.tsv"))
    expect(n, "columns", list(df.columns)[:6], ["user_id", "item_id", "asin", "rating", "time", "split"])
    expect(n, "rows", len(df), 53_258)
    expect(n, "users", int(df.user_id.nunique()), 4_905)
    expect(n, "items", int(df.item_id.nunique()), 2_420)
    expect(n, "duplicate pairs", int(df.duplicated(["user_id", "item_id"]).sum()), 0)
    expect(n, "rating histogram 1..5", np.bincount(df.rating.to_numpy(), minlength=6)[1:].tolist(),
           [1_130, 1_726, 5_060, 15_015, 30_327])
    expect(n, "split sizes", df.split.value_counts().to_dict(), {"train": 43_448, "dev": 4_905, "test": 4_905})
    asin_per_item = df.groupby("item_id").asin.nunique()
    expect(n, "one ASIN per item id", int(asin_per_item.max()), 1)

    meta = _read_tsv(raw.path("office/item_meta.csv"))
    n_meta = len(meta)
    expect(n, "item_meta items", n_meta, 2_420)
    expect(n, "item_meta categories", int(meta.i_category.nunique()), 40)
    bh, bt = _meta_links(meta, "r_complement")
    vh, vt = _meta_links(meta, "r_substitute")
    _check_amazon_links(n + " also_bought", bh, bt, 38_071, 2_012, 31_779, n_meta)
    _check_amazon_links(n + " also_viewed", vh, vt, 18_345, 1_590, 14_140, n_meta)
    long = _read_tsv(raw.path("office/office_item_links_long.tsv"))
    expect(n, "office_item_links_long.tsv rows", len(long), 56_416)
    for rel, h, tl in (("also_bought", bh, bt), ("also_viewed", vh, vt)):
        sub = long[long.relation == rel]
        k1 = np.sort(sub.head_item_id.to_numpy(np.int64) * 10_000 + sub.tail_item_id.to_numpy(np.int64))
        k2 = np.sort(h * 10_000 + tl)
        expect(n, f"{rel}: long TSV equals item_meta lists", bool(np.array_equal(k1, k2)), True)

    rm = remap_interactions(df.user_id.to_numpy(), df.item_id.to_numpy(), ratings=df.rating.to_numpy(),
                            times=df.time.to_numpy())
    out = _base(n, rm)
    first = df.drop_duplicates("item_id").set_index("item_id").asin
    out["item_asin"] = first.loc[rm.item_raw].to_numpy(dtype=str)
    cat, used = majority_category(lookup_ids(rm.item_raw, meta.item_id.to_numpy()), meta.i_category.to_numpy(),
                                  rm.n_items)
    out["item_category"], out["category_raw"] = cat, used
    out["also_bought"] = _item_links(rm, bh, bt, "also_bought")
    out["also_viewed"] = _item_links(rm, vh, vt, "also_viewed")
    return out


def _amazon_implicit(raw: Raw, n: str, folder: str, rows, users, items, max_item, min_per_user,
                     n_meta_want, n_cat, bought, viewed) -> dict:
    df = _read_tsv(raw.path(f"{folder}/train.csv"))
    expect(n, "columns", list(df.columns), ["user_id", "item_id", "time"])
    expect(n, "rows", len(df), rows)
    expect(n, "users", int(df.user_id.nunique()), users)
    expect(n, "items", int(df.item_id.nunique()), items)
    expect(n, "max item id", int(df.item_id.max()), max_item)
    expect(n, "duplicate pairs", int(df.duplicated(["user_id", "item_id"]).sum()), 0)
    if min_per_user is not None:
        expect(n, f">= {min_per_user} rows per user", bool(df.groupby("user_id").size().min() >= min_per_user), True)
    meta = _read_tsv(raw.path(f"{folder}/item_meta.csv"))
    n_meta = len(meta)
    expect(n, "item_meta items", n_meta, n_meta_want)
    if n_cat is not None:
        expect(n, "item_meta categories", int(meta.i_category.nunique()), n_cat)
    bh, bt = _meta_links(meta, "r_complement")
    vh, vt = _meta_links(meta, "r_substitute")
    _check_amazon_links(n + " also_bought", bh, bt, *bought, n_meta)
    _check_amazon_links(n + " also_viewed", vh, vt, *viewed, n_meta)
    rm = remap_interactions(df.user_id.to_numpy(), df.item_id.to_numpy(), times=df.time.to_numpy())
    out = _base(n, rm)
    cat, used = majority_category(lookup_ids(rm.item_raw, meta.item_id.to_numpy()), meta.i_category.to_numpy(),
                                  rm.n_items)
    out["item_category"], out["category_raw"] = cat, used
    out["also_bought"] = _item_links(rm, bh, bt, "also_bought")
    out["also_viewed"] = _item_links(rm, vh, vt, "also_viewed")
    return out


def build_videogame(raw: Raw) -> dict:
    return _amazon_implicit(raw, "videogame", "videogame", rows=183_174, users=24_303, items=10_639,
                            max_item=10_671, min_per_user=3, n_meta_want=10_672, n_cat=73,
                            bought=(491_061, 9_824, 371_175), viewed=(10_554, 701, 10_367))


def build_grocery(raw: Raw) -> dict:
    return _amazon_implicit(raw, "grocery", "grocery", rows=121_892, users=14_681, items=8_687,
                            max_item=8_713, min_per_user=None, n_meta_want=8_713, n_cat=None,
                            bought=(248_444, None, None), viewed=(124_933, None, None))


def build_lastfm(raw: Raw) -> dict:
    n = "lastfm"
    kw = dict(header=None, names=["user", "artist", "count"], dtype={"user": np.int64, "artist": np.int64})
    a = _read_tsv(raw.path("lastfm/data1.txt"), **kw)
    b = _read_tsv(raw.path("lastfm/test1.txt"), **kw)
    expect(n, "data1.txt rows", len(a), 42_135)
    expect(n, "test1.txt rows", len(b), 10_533)
    import pandas as pd

    df = pd.concat([a, b], ignore_index=True)  # file order: train then test
    expect(n, "distinct pairs", int((~df.duplicated(["user", "artist"])).sum()), 52_668)
    expect(n, "users with interactions", int(df.user.nunique()), 1_880)
    expect(n, "max user id", int(df.user.max()), 1_892)
    expect(n, "artists", int(df.artist.nunique()), 4_489)
    counts = df["count"].to_numpy(np.float64)
    expect(n, "listen counts are positive integers", bool(np.all(counts >= 1) and np.all(counts == np.round(counts))),
           True)
    t = _read_tsv(raw.path("lastfm/trustnetwork.txt"), header=None, names=["a", "b"])
    expect(n, "trustnetwork rows", len(t), 25_434)
    fwd = set(zip(t.a.tolist(), t.b.tolist()))
    expect(n, "trustnetwork symmetric", all((y, x) in fwd for x, y in fwd), True)
    expect(n, "friendships", _n_undirected(t.a.to_numpy(), t.b.to_numpy()), 12_717)
    expect(n, "users in trustnetwork", int(np.unique(t.to_numpy()).size), 1_892)

    rm = remap_interactions(df.user.to_numpy(), df.artist.to_numpy())
    out = _base(n, rm)
    out["listen_count"] = counts[rm.keep].astype(np.int64)  # NOT ratings
    out["social"] = _social(rm, t.a.to_numpy(), t.b.to_numpy())
    return out


def build_filmtrust(raw: Raw) -> dict:
    n = "filmtrust"
    import pandas as pd

    df = pd.read_csv(raw.path("filmtrust/ratings.txt"), sep=" ", header=None, names=["user", "item", "rating"])
    expect(n, "rows", len(df), 35_497)
    expect(n, "users", int(df.user.nunique()), 1_508)
    expect(n, "items", int(df.item.nunique()), 2_071)
    vals = np.unique(df.rating.to_numpy())
    expect(n, "rating values", vals.tolist(), [0.5 * k for k in range(1, 9)])
    t = pd.read_csv(raw.path("filmtrust/trust.txt"), sep=" ", header=None, names=["a", "b", "v"])
    expect(n, "trust rows", len(t), 1_853)
    expect(n, "trust values", np.unique(t.v).tolist(), [1])

    rm = remap_interactions(df.user.to_numpy(), df.item.to_numpy(), ratings=df.rating.to_numpy())
    out = _base(n, rm)
    out["social"] = _social(rm, t.a.to_numpy(), t.b.to_numpy())
    return out


def _id_list(path: Path) -> np.ndarray:
    """``org_id remap_id`` lines (after a header) -> the original id of each remapped id."""
    a = np.loadtxt(path, skiprows=1, dtype=np.int64, ndmin=2)
    order = np.argsort(a[:, 1])
    return a[order, 0], a[order, 1]


def build_gowalla(raw: Raw) -> dict:
    """The NGCF/LightGCN Gowalla split, kept as given: train (the upper-right block of the training
    adjacency) and test, ids as remapped by the authors (user u, item j of ``test.txt``), the
    split in ``split`` (0 train, 2 test; no validation part)."""
    import scipy.sparse

    n = "gowalla"
    n_users, n_items = 29_858, 40_981
    adj = scipy.sparse.load_npz(raw.path("gowalla/s_adj_mat.npz")).tocsr()
    expect(n, "adjacency shape", adj.shape, (n_users + n_items, n_users + n_items))
    expect(n, "adjacency symmetric", (adj != adj.T).nnz, 0)
    expect(n, "user-user / item-item blocks empty", (adj[:n_users, :n_users].nnz, adj[n_users:, n_users:].nnz), (0, 0))
    block = adj[:n_users, n_users:].tocoo()
    expect(n, "adjacency values", np.unique(block.data).tolist(), [1.0])
    tr_u, tr_i = block.row.astype(np.int64), block.col.astype(np.int64)
    te_u, te_i = [], []
    with open(raw.path("gowalla/test.txt")) as fh:
        for lineno, line in enumerate(fh, 1):
            f = line.split()
            if len(f) < 2:
                raise BuildError(f"gowalla/test.txt: line {lineno}: expected a user id and item ids")
            te_u.append(np.full(len(f) - 1, int(f[0]), np.int64))
            te_i.append(np.array(f[1:], dtype=np.int64))
    te_u, te_i = np.concatenate(te_u), np.concatenate(te_i)
    expect(n, "training interactions", int(tr_u.size), 810_128)
    expect(n, "test interactions", int(te_u.size), 217_242)
    users = np.concatenate([tr_u, te_u])
    items = np.concatenate([tr_i, te_i])
    labels = np.concatenate([np.zeros(tr_u.size, np.int8), np.full(te_u.size, 2, np.int8)])
    rm = remap_interactions(users, items)
    expect(n, "users, items", (rm.n_users, rm.n_items), (n_users, n_items))
    expect(n, "ids kept as given (0..n-1)", (bool(np.array_equal(rm.user_raw, np.arange(n_users))),
                                              bool(np.array_equal(rm.item_raw, np.arange(n_items)))), (True, True))
    expect(n, "pairs in both train and test", rm.n_duplicates, 0)
    split = labels[rm.keep]
    expect(n, "test users and items all in train",
           (int(np.setdiff1d(rm.users[split == 2], rm.users[split == 0]).size),
            int(np.setdiff1d(rm.items[split == 2], rm.items[split == 0]).size)), (0, 0))
    out = _base(n, rm)
    out["split"] = split.astype(np.int8)
    out["user_raw"] = rm.user_raw.astype(np.int32)
    out["item_raw"] = rm.item_raw.astype(np.int32)
    for kind, rel, count in (("user", "gowalla/user_list.txt", n_users), ("item", "gowalla/item_list.txt", n_items)):
        org, remap = _id_list(raw.path(rel))
        expect(n, f"{kind}_list remap ids", bool(np.array_equal(remap, np.arange(count))), True)
        out[f"{kind}_org_id"] = org.astype(np.int32 if org.max() < 2**31 else np.int64)  # original Gowalla ids
    return out


BUILDERS = {
    "epinion": build_epinion,
    "office": build_office,
    "videogame": build_videogame,
    "ciao": build_ciao,
    "lastfm": build_lastfm,
    "filmtrust": build_filmtrust,
    "grocery": build_grocery,
    "gowalla": build_gowalla,
}
assert tuple(BUILDERS) == SHIPPED


def _fmt(v) -> str:
    return "-" if v is None else f"{v:,}"


def summary_line(s: dict, arrays: dict, path: Path, notes=()) -> str:
    parts = [
        f"{s['name']}: {s['users']:,} users x {s['items']:,} items, {s['interactions']:,} interactions "
        f"({int(arrays['duplicates_dropped']):,} duplicate rows dropped)",
        f"density {100 * s['density']:.4f}%",
        f"ratings {'yes' if s['ratings'] else 'no'}",
    ]
    if s["social"] is not None:
        parts.append(f"social {s['social']:,}")
    if s["categories"] is not None:
        parts.append(f"categories {s['categories']} on {s['items_with_category']:,} items")
    if s["also_bought"] is not None:
        parts.append(f"also_bought {s['also_bought']:,}")
    if s["also_viewed"] is not None:
        parts.append(f"also_viewed {s['also_viewed']:,}")
    if s.get("fixed_split"):
        parts.append(f"fixed split {s['fixed_split']}")
    line = ", ".join(parts) + f" -> {path.name} ({path.stat().st_size / 2**20:.2f} MiB)"
    if notes:
        line += "; links kept: " + "; ".join(notes)
    return line


def markdown_table(rows: list[tuple[dict, dict, Path]]) -> str:
    head = ("| data set | users | items | interactions | density | ratings | social | categories "
            "(items with one) | also_bought | also_viewed | duplicates dropped | file |")
    out = [head, "|" + "---|" * 12]
    for s, arrays, path in rows:
        cats = "-" if s["categories"] is None else f"{s['categories']} ({s['items_with_category']:,})"
        out.append(
            f"| `{s['name']}` | {s['users']:,} | {s['items']:,} | {s['interactions']:,} | "
            f"{100 * s['density']:.4f}% | {'yes' if s['ratings'] else 'no'} | {_fmt(s['social'])} | {cats} | "
            f"{_fmt(s['also_bought'])} | {_fmt(s['also_viewed'])} | {int(arrays['duplicates_dropped']):,} | "
            f"{path.stat().st_size / 2**20:.2f} MiB |"
        )
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--raw", default=None, help="raw data folder (default <repo>/../shared/data)")
    ap.add_argument("--out", default=None, help="output folder (default <repo>/datasets)")
    ap.add_argument("--only", nargs="+", choices=SHIPPED, metavar="NAME", help=f"subset of {', '.join(SHIPPED)}")
    ap.add_argument("--markdown", action="store_true", help="also print the statistics as a Markdown table")
    args = ap.parse_args(argv)

    def resolve(p, default):
        if p is None:
            return default
        return Path(p)

    raw_dir = resolve(args.raw, REPO.parent / "shared" / "data").resolve()
    out_dir = resolve(args.out, REPO / "datasets").resolve()
    if not raw_dir.is_dir():
        print(f"error: raw data folder {raw_dir} does not exist (use --raw)", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.only or SHIPPED:
        raw = Raw(raw_dir)
        NOTES.clear()
        t0 = time.perf_counter()
        try:
            arrays = BUILDERS[name](raw)
        except BuildError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        arrays["provenance"] = np.array(raw.provenance())
        path = out_dir / f"{name}.npz"
        save_npz(arrays, path)
        with np.load(path, allow_pickle=False) as z:  # round trip through the loader's validation
            ds = dataset_from_arrays({k: z[k] for k in z.files}, path)
        s = summarize(ds)
        print(summary_line(s, arrays, path, NOTES) + f" [{time.perf_counter() - t0:.1f}s]", flush=True)
        rows.append((s, arrays, path))
    if args.markdown:
        print()
        print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
