"""The seeded 60/20/20 split."""

import numpy as np

from pmtnumba.data.split import TEST, TRAIN, VALID, make_split, split_labels


def test_split_is_a_function_of_seed():
    a = split_labels(10_000, seed=7)
    b = split_labels(10_000, seed=7)
    c = split_labels(10_000, seed=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_split_proportions():
    lab = split_labels(200_000, seed=1)
    frac = np.bincount(lab, minlength=3) / lab.size
    np.testing.assert_allclose(frac, [0.6, 0.2, 0.2], atol=0.005)


def test_split_parts_partition_interactions(tiny_dataset):
    sp = make_split(tiny_dataset, seed=3)
    total = sum(int(part[0][-1]) for part in (sp.train, sp.valid, sp.test))
    assert total == tiny_dataset.n_interactions
    assert sp.train_users.size == int(sp.train[0][-1]) == int((sp.labels == TRAIN).sum())
    assert int(sp.valid[0][-1]) == int((sp.labels == VALID).sum())
    assert int(sp.test[0][-1]) == int((sp.labels == TEST).sum())
