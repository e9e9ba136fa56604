"""Checkpoints: a run interrupted and resumed ends bit-identical to an uninterrupted one."""

import json

import numpy as np
import pytest

from pmtnumba.data.split import make_split
from pmtnumba.errors import PmtError
from pmtnumba.training import FitConfig, Trainer

from .conftest import synthetic_dataset


def fit(sp, out, epochs, method="gradvac", resume=False, **kw):
    cfg = FitConfig(dataset="toy", tasks=["bpr", "rating", "social"], method=method, epochs=epochs,
                    batch_size=64, threads=1, patience=50, **kw)
    return Trainer(cfg, split=sp).fit(out_dir=out, resume=resume)


@pytest.mark.parametrize("method", ["gradvac", "rlw", "pmtrec"])
def test_resume_is_bit_identical(tmp_path, method):
    sp = make_split(synthetic_dataset(n_users=80, n_items=50, per_user=10), 1)
    full = fit(sp, tmp_path / "full", 4, method)
    fit(sp, tmp_path / "part", 2, method)
    resumed = fit(sp, tmp_path / "part", 4, method, resume=True)
    assert np.array_equal(full.user_emb, resumed.user_emb)
    assert np.array_equal(full.item_emb, resumed.item_emb)
    assert full.test == resumed.test
    assert [r["epoch"] for r in resumed.curve] == [1, 2, 3, 4]
    with np.load(tmp_path / "part" / "checkpoint.npz") as z:
        meta = json.loads(str(z["meta"]))
    assert meta["epoch"] == 4


def test_resume_refuses_other_settings(tmp_path):
    sp = make_split(synthetic_dataset(n_users=40, n_items=30, per_user=6), 1)
    fit(sp, tmp_path / "r", 1, "ew")
    with pytest.raises(PmtError, match="different settings"):
        fit(sp, tmp_path / "r", 2, "ew", resume=True, lr=0.5)
