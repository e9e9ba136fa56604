"""Loading the shipped data sets and a user's own files (pmtnumba.data.io)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pmtnumba.data import SHIPPED, Dataset, load_dataset, remap_interactions, summary_table
from pmtnumba.data.io import clean_links, data_dir, majority_category, save_npz
from pmtnumba.errors import DataError

# documented figures of the shipped files (datasets/README.md)
DOCUMENTED = {
    "office": dict(users=4_905, items=2_420, interactions=53_258, also_bought=38_071, also_viewed=18_345,
                   categories=40, ratings=True),
    "videogame": dict(users=24_303, items=10_639, interactions=183_174, also_bought=488_929, also_viewed=10_503,
                      categories=72, ratings=False),
    "epinion": dict(users=22_164, items=296_277, interactions=912_441, social=354_897, categories=27, ratings=True),
    "ciao": dict(users=7_375, items=105_114, interactions=282_650, social=111_781, categories=28, ratings=True),
    "lastfm": dict(users=1_880, items=4_489, interactions=52_668, social=25_226, ratings=False),
    "filmtrust": dict(users=1_508, items=2_071, interactions=35_494, social=1_632, ratings=True),
    "grocery": dict(users=14_681, items=8_687, interactions=121_892, also_bought=247_070, also_viewed=124_197,
                    categories=56, ratings=False),
    "gowalla": dict(users=29_858, items=40_981, interactions=1_027_370, ratings=False),  # 810,128 train + 217,242 test
}


@pytest.fixture(scope="module")
def shipped():
    return {name: load_dataset(name) for name in SHIPPED}


# ---------------------------------------------------------------------------------------------
# shipped files
# ---------------------------------------------------------------------------------------------


def test_shipped_files_load_without_pickle():
    folder = data_dir(name="office")
    for name in SHIPPED:
        with np.load(folder / f"{name}.npz", allow_pickle=False) as z:
            assert str(z["name"]) == name
            for k in z.files:
                assert z[k].dtype != object


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_invariants(shipped, name):
    ds = shipped[name]
    assert isinstance(ds, Dataset) and ds.name == name
    assert ds.users.dtype == np.int32 and ds.items.dtype == np.int32
    assert ds.users.shape == ds.items.shape
    assert ds.users.min() == 0 and ds.users.max() == ds.n_users - 1
    assert ds.items.min() == 0 and ds.items.max() == ds.n_items - 1
    # every contiguous id has an interaction
    assert np.unique(ds.users).size == ds.n_users and np.unique(ds.items).size == ds.n_items
    key = ds.users.astype(np.int64) * ds.n_items + ds.items
    assert np.unique(key).size == key.size, "duplicate (user, item) pairs"
    assert ds.user_raw.shape == (ds.n_users,) and ds.item_raw.shape == (ds.n_items,)
    assert np.all(np.diff(ds.user_raw) > 0) and np.all(np.diff(ds.item_raw) > 0)
    if ds.ratings is not None:
        assert ds.ratings.dtype == np.float32 and ds.ratings.shape == ds.users.shape
        assert np.all(np.isfinite(ds.ratings))
    if "times" in ds.extra:
        assert ds.extra["times"].dtype == np.int64 and ds.extra["times"].shape == ds.users.shape
    for rel, n in (("social", ds.n_users), ("also_bought", ds.n_items), ("also_viewed", ds.n_items)):
        links = getattr(ds, rel)
        if links is None:
            continue
        assert links.dtype == np.int32 and links.ndim == 2 and links.shape[1] == 2
        assert links.min() >= 0 and links.max() < n
        assert not np.any(links[:, 0] == links[:, 1]), f"{rel} self-loop"
        k = links[:, 0].astype(np.int64) * n + links[:, 1]
        assert np.unique(k).size == k.size, f"{rel} duplicates"
    if ds.item_category is not None:
        c = ds.item_category
        assert c.dtype == np.int32 and c.shape == (ds.n_items,) and c.min() >= -1
        used = np.unique(c[c >= 0])
        assert np.array_equal(used, np.arange(used.size)), "category ids not contiguous"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_counts_match_documentation(shipped, name):
    ds = shipped[name]
    want = DOCUMENTED[name]
    rel = ds.relations()
    assert ds.n_users == want["users"]
    assert ds.n_items == want["items"]
    assert ds.n_interactions == want["interactions"]
    assert (ds.ratings is not None) == want["ratings"]
    for k in ("social", "also_bought", "also_viewed"):
        assert rel.get(k) == want.get(k), k
    assert rel.get("category") == want.get("categories")


def test_office_videogame_side_information(shipped):
    office = shipped["office"]
    assert sorted(np.unique(office.ratings).tolist()) == [1, 2, 3, 4, 5]
    assert office.extra["item_asin"].shape == (office.n_items,)
    assert (office.item_category >= 0).all()
    vg = shipped["videogame"]
    assert np.unique(vg.also_viewed[:, 0]).size <= 701  # the sparse co-view relation
    assert "ratings" not in vg.relations()
    assert "listen_count" in shipped["lastfm"].extra and shipped["lastfm"].ratings is None


def test_summary_table(shipped):
    rows = summary_table(("office", "filmtrust"))
    assert [r["name"] for r in rows] == ["office", "filmtrust"]
    o = rows[0]
    assert (o["users"], o["items"], o["interactions"]) == (4_905, 2_420, 53_258)
    assert o["also_bought"] == 38_071 and o["social"] is None and o["ratings"] is True
    assert o["density"] == pytest.approx(53_258 / (4_905 * 2_420))
    assert rows[1]["social"] == 1_632 and rows[1]["categories"] is None


def test_data_dir_resolution(tmp_path, monkeypatch):
    src = data_dir(name="filmtrust") / "filmtrust.npz"
    shutil.copy(src, tmp_path / "filmtrust.npz")
    assert load_dataset("filmtrust", data_dir=tmp_path).source == str(tmp_path / "filmtrust.npz")
    monkeypatch.setenv("PMTNUMBA_DATA", str(tmp_path))
    assert data_dir(name="filmtrust") == tmp_path
    with pytest.raises(DataError, match="office.npz"):
        load_dataset("office", data_dir=tmp_path)  # an explicit folder is used alone
    with pytest.raises(DataError, match="unknown data set"):
        load_dataset("movielens")


# ---------------------------------------------------------------------------------------------
# corrupt .npz files
# ---------------------------------------------------------------------------------------------


def _small(tmp_path):
    return load_dataset(data_dir(name="filmtrust") / "filmtrust.npz")


def test_npz_round_trip(tmp_path):
    ds = _small(tmp_path)
    out = tmp_path / "copy.npz"
    save_npz(ds, out)
    back = load_dataset(out)
    assert back.name == "filmtrust" and back.n_interactions == ds.n_interactions
    assert np.array_equal(back.social, ds.social) and np.array_equal(back.ratings, ds.ratings)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing_key", "bad_range", "bad_dtype", "pickled"])
def test_corrupt_npz_raises_dataerror(tmp_path, damage):
    ds = _small(tmp_path)
    path = tmp_path / "broken.npz"
    good = data_dir(name="filmtrust") / "filmtrust.npz"
    if damage == "garbage":
        path.write_bytes(b"this is not a zip file")
    elif damage == "truncated":
        path.write_bytes(good.read_bytes()[:300])
    else:
        with np.load(good, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        if damage == "missing_key":
            del arrays["items"]
        elif damage == "bad_range":
            arrays["users"] = arrays["users"].copy()
            arrays["users"][0] = ds.n_users + 5
        elif damage == "bad_dtype":
            arrays["social"] = arrays["social"].astype(np.float64)
        if damage == "pickled":
            np.savez(path, name=np.array("x"), users=np.array([{"a": 1}], dtype=object))
        else:
            np.savez(path, **arrays)
    with pytest.raises(DataError, match="broken.npz"):
        load_dataset(path)


# ---------------------------------------------------------------------------------------------
# a user's own files
# ---------------------------------------------------------------------------------------------


def test_user_csv_string_ids_and_latest_duplicate(tmp_path):
    p = tmp_path / "mine.csv"
    p.write_text("userId,itemId,rating,timestamp\nbob,x,4,10\nann,y,3,5\nbob,x,2,3\nann,x,5,1\n")
    ds = load_dataset(p)
    assert ds.name == "mine" and ds.n_users == 2 and ds.n_items == 2 and ds.n_interactions == 3
    assert ds.user_raw.tolist() == ["ann", "bob"] and ds.item_raw.tolist() == ["x", "y"]
    got = {(ds.user_raw[u], ds.item_raw[i]): float(r) for u, i, r in zip(ds.users, ds.items, ds.ratings)}
    assert got == {("bob", "x"): 4.0, ("ann", "y"): 3.0, ("ann", "x"): 5.0}  # time 10 beats time 3
    assert ds.extra["duplicates_dropped"] == 1


def test_user_file_zero_padded_ids_stay_strings(tmp_path):
    p = tmp_path / "pad.csv"
    p.write_text("user,item\n007,1\n7,1\n")
    ds = load_dataset(p)
    assert ds.n_users == 2 and ds.user_raw.tolist() == ["007", "7"]
    assert ds.item_raw.tolist() == [1]


def test_user_tsv_int_ids_last_in_file_wins(tmp_path):
    p = tmp_path / "mine.tsv"
    p.write_text("user_id\titem_id\trating\n10\t7\t1\n3\t7\t2\n10\t7\t5\n\n3\t9\t4\n")
    ds = load_dataset(p)
    assert ds.user_raw.dtype.kind == "i" and ds.user_raw.tolist() == [3, 10]
    assert ds.item_raw.tolist() == [7, 9]
    assert ds.users.dtype == np.int32 and ds.ratings.dtype == np.float32
    got = {(int(ds.user_raw[u]), int(ds.item_raw[i])): float(r) for u, i, r in zip(ds.users, ds.items, ds.ratings)}
    assert got == {(10, 7): 5.0, (3, 7): 2.0, (3, 9): 4.0}


@pytest.mark.parametrize(
    "text",
    [
        "user;item\n1;2\n2;3\n",
        "user item\n1 2\n2   3\n",
        "user,artist\r\n1,2\r\n2,3\r\n",
        "User_ID\tItem_ID\tTime\n1\t2\t2014-01-01\n2\t3\t2014-01-02\n",
    ],
)
def test_user_file_delimiters(tmp_path, text):
    p = tmp_path / "f.txt"
    p.write_text(text)
    ds = load_dataset(p)
    assert ds.n_users == 2 and ds.n_items == 2 and ds.ratings is None


def test_user_file_social_side_file(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("user,item\na,1\nb,2\nc,1\n")
    s = tmp_path / "s.tsv"
    s.write_text("truster\ttrustee\na\tb\nb\ta\na\ta\na\tb\nz\ta\n")
    ds = load_dataset(p, social=s)
    assert ds.social.tolist() == [[0, 1], [1, 0]]


@pytest.mark.parametrize(
    "name,text,pattern",
    [
        ("empty.csv", "", r"empty\.csv: empty file"),
        ("blankonly.csv", "\n\n", r"blankonly\.csv: empty file"),
        ("header.csv", "user,item\n", r"header\.csv: no interactions"),
        ("nouser.csv", "customer,item\n1,2\n", r"nouser\.csv: line 1: no user column"),
        ("noitem.csv", "user,thing\n1,2\n", r"noitem\.csv: line 1: no item column"),
        ("rating.csv", "user,item,rating\n1,2,3\n1,3,4\n2,2,five\n", r"rating\.csv: line 4: rating 'five'"),
        ("blanks.tsv", "user\titem\trating\n\n1\t2\t3\n\n1\t3\tx\n", r"blanks\.tsv: line 5: rating 'x'"),
        ("norating.csv", "user,item,rating\n1,2,3\n1,3\n", r"norating\.csv: line 3: missing rating"),
        ("fields.csv", "user,item\n1,2\n1,2,3,4\n", r"fields\.csv: line 3: expected 2 fields, saw 4"),
        ("noitemval.csv", "user;item\n1;2\n1;\n", r"noitemval\.csv: line 3: missing item id"),
        ("time.csv", "user,item,time\n1,2,5\n1,3,soon\n", r"time\.csv: line 3: time 'soon'"),
        ("inf.csv", "user,item,rating\n1,2,inf\n", r"inf\.csv: line 2: rating 'inf'"),
        ("mixed.csv", "user,item,time\n1,2,2014-01-01\n1,3,77\n", r"mixed\.csv: line 3: time '77' is a number"),
    ],
)
def test_malformed_user_files(tmp_path, name, text, pattern):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(DataError, match=pattern):
        load_dataset(p)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(DataError, match=r"nothere\.csv: no such file"):
        load_dataset(tmp_path / "nothere.csv")
    with pytest.raises(DataError, match="not a regular file"):
        load_dataset(tmp_path)
    b = tmp_path / "bin.csv"
    b.write_bytes(b"\x00\xff\xfe\x80user,item\n")
    with pytest.raises(DataError, match=r"bin\.csv"):
        load_dataset(b)


# ---------------------------------------------------------------------------------------------
# the shared helpers
# ---------------------------------------------------------------------------------------------


def test_remap_interactions_rules():
    rm = remap_interactions(
        np.array([5, 2, 5, 2, 9]), np.array([1, 1, 1, 3, 1]),
        ratings=np.array([1, 2, 3, 4, 5]), times=np.array([7, 0, 7, 1, 2]),
    )
    # (5,1) twice at the same time: the later line (rating 3) wins
    assert rm.user_raw.tolist() == [2, 5, 9] and rm.item_raw.tolist() == [1, 3]
    assert list(zip(rm.users.tolist(), rm.items.tolist(), rm.ratings.tolist())) == [
        (0, 0, 2.0), (0, 1, 4.0), (1, 0, 3.0), (2, 0, 5.0)]
    assert rm.n_duplicates == 1 and rm.keep.tolist() == [1, 3, 2, 4]
    # later time beats later line
    rm = remap_interactions(np.array([1, 1]), np.array([1, 1]), ratings=np.array([1, 2]), times=np.array([9, 3]))
    assert rm.ratings.tolist() == [1.0]


def test_clean_links_and_majority_category():
    links = clean_links(np.array([0, 1, 1, 2, -1, 0]), np.array([1, 0, 1, 0, 2, 1]))
    assert links.tolist() == [[0, 1], [1, 0], [2, 0]] and links.dtype == np.int32
    cat, used = majority_category(np.array([0, 0, 0, 1, 1, 2, -1]), np.array([7, 3, 7, 5, 3, 9, 1]), 4)
    assert used.tolist() == [3, 7, 9]
    assert cat.tolist() == [1, 0, 2, -1]  # item 1 ties 3/5 -> 3; item 3 unknown


def test_written_npz_is_a_plain_zip(tmp_path):
    out = tmp_path / "x.npz"
    save_npz(_small(tmp_path), out)
    with zipfile.ZipFile(out) as zf:
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())


def _raw_data_dir() -> Path | None:
    """The raw data the shipped .npz files are built from (``../shared/data`` next to the repo).

    Looked for, in order: ``$PMTNUMBA_RAW_DATA``; ``../shared/data`` next to this checkout; and,
    for a clone (CI runs ``.ci/run`` in a fresh clone of main in a temporary folder), next to the
    local repository it was cloned from (``git remote get-url origin``). It is absent on machines
    without the project's shared folder (the raw files are large and not redistributed with the
    repo); only there does the test skip.
    """
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    candidates = [os.environ.get("PMTNUMBA_RAW_DATA"), repo.parent / "shared" / "data"]
    try:
        origin = subprocess.run(["git", "-C", str(repo), "remote", "get-url", "origin"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        if origin and Path(origin.removeprefix("file://")).is_dir():
            candidates.append(Path(origin.removeprefix("file://")).resolve().parent / "shared" / "data")
    except (OSError, subprocess.SubprocessError):
        pass
    for c in candidates:
        if c and (Path(c) / "filmtrust" / "ratings.txt").is_file():
            return Path(c)
    return None


RAW = _raw_data_dir()


@pytest.mark.skipif(RAW is None, reason="raw data (../shared/data) not on this machine; set PMTNUMBA_RAW_DATA")
def test_build_is_reproducible(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("build", Path(__file__).resolve().parents[1] / "datasets" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    assert build.main(["--raw", str(RAW), "--out", str(tmp_path), "--only", "filmtrust", "office"]) == 0
    out = capsys.readouterr().out
    assert "filmtrust: 1,508 users x 2,071 items, 35,494 interactions" in out
    for name in ("filmtrust", "office"):
        shipped = data_dir(name=name) / f"{name}.npz"
        assert (tmp_path / f"{name}.npz").read_bytes() == shipped.read_bytes(), f"{name}.npz differs from a rebuild"
