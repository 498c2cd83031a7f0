"""Tests for utils.data.samples: the one sample container and its full-content fingerprint."""
import hashlib

import numpy as np
import pandas as pd
import pytest
import torch

from utils.data.samples import Samples


def _data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Samples(torch.rand(n, 1, 8, 8, generator=g), torch.arange(n) % 4, np.arange(n) * 3)


def test_the_fingerprint_is_a_sha256_of_pixels_labels_and_ids_in_order():
    d = _data()
    h = hashlib.sha256()
    h.update(repr(((40, 1, 8, 8), "torch.float32")).encode())
    h.update(d.images.numpy().tobytes())
    h.update(b"labels:" + d.labels.numpy().astype("<i8").tobytes())
    h.update(b"ids:" + d.ids.astype("<i8").tobytes())
    assert d.fingerprint() == {"n_samples": 40, "shape": [1, 8, 8], "content_sha256": h.hexdigest()}
    assert _data().fingerprint() == d.fingerprint()   # same content, same key


@pytest.mark.parametrize("change", ["swap images between ids", "transpose", "one pixel", "one label", "id order",
                                    "unlabeled", "another id"])
def test_every_change_of_content_changes_the_fingerprint(change):
    """The bug this replaces: a sum of hashes of every 4th row and column ignored order, transposition and 3/4 of
    the pixels, so a cache returned another input's scores."""
    d = _data()
    x, y, ids = d.images.clone(), d.labels.clone(), d.ids.copy()
    if change == "swap images between ids":
        x[[0, 1]] = x[[1, 0]]
    elif change == "transpose":
        x = x.transpose(2, 3).contiguous()
    elif change == "one pixel":
        x[5, 0, 3, 3] += 1e-7
    elif change == "one label":
        y[7] = (y[7] + 1) % 4
    elif change == "id order":
        ids[[2, 3]] = ids[[3, 2]]
    elif change == "another id":
        ids[0] = 10_000
    other = Samples(x, None if change == "unlabeled" else y, ids)
    assert other.fingerprint()["content_sha256"] != d.fingerprint()["content_sha256"]


def test_subset_and_by_ids_keep_images_labels_ids_and_meta_aligned():
    d = _data()
    meta = pd.DataFrame({"flag": np.arange(40) % 5 == 0, "source": np.arange(40) + 100},
                        index=pd.Index(d.ids, name="sample_id"))
    d = Samples(d.images, d.labels, d.ids, meta, name="toy", num_classes=4, history=({"type": "x"},))
    sub = d.subset([7, 2, 30])
    assert sub.ids.tolist() == [21, 6, 90] and torch.equal(sub.images, d.images[[7, 2, 30]])
    assert sub.labels.tolist() == [3, 2, 2] and sub.meta["source"].tolist() == [107, 102, 130]
    assert sub.name == "toy" and sub.num_classes == 4 and sub.history == d.history
    again = d.by_ids([90, 21, 6])
    assert again.ids.tolist() == [90, 21, 6] and torch.equal(again.images, d.images[[30, 7, 2]])
    assert d.flag("flag").sum() == 8 and torch.equal(d.flag(), d.flag("flag"))
    shuffled = d.subset(np.random.default_rng(0).permutation(40)).sorted()
    assert np.array_equal(shuffled.ids, d.ids) and torch.equal(shuffled.images, d.images)
    assert shuffled.meta.equals(d.meta)
    with pytest.raises(ValueError, match="1 of the ids are not among the samples"):
        d.by_ids([0, 1])
    with pytest.raises(ValueError, match="meta must be a DataFrame indexed by the sample ids"):
        Samples(d.images, d.labels, d.ids, meta.iloc[::-1])


def test_clean_labels_come_from_meta_when_a_label_was_changed():
    d = _data(n=6)
    assert d.clean_labels is d.labels
    meta = pd.DataFrame({"clean_label": [0, 1, 2, 3, 0, -1]}, index=pd.Index(d.ids, name="sample_id"))
    assert Samples(d.images, d.labels, d.ids, meta).clean_labels.tolist() == [0, 1, 2, 3, 0, -1]
