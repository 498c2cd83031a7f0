"""K-fold out-of-sample probabilities (utils.engine.protocols.kfold_probs) and confident learning (utils.scores.label_quality)."""
import numpy as np
import pandas as pd
import pytest
import torch
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores, get_normalized_margin_for_each_label
from sklearn.metrics import roc_auc_score

import utils.engine.loop
import utils.engine.protocols
from utils.data.datasets import DatasetInfo
from utils.data.mixing import flip_labels
from utils.data.samples import Samples
from utils.engine.protocols import kfold_probs
from utils.engine.recipes import get_recipe
from utils.engine.tasks import make_task
from utils.scores.label_quality import LABEL_FILTERS, label_quality

TINY = get_recipe("paper", max_epochs=2, batch_size=8, lr=0.05, patience=None)
SHAPE = (1, 12, 12)  # the smallest images the CNN takes are 10x10


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: one thread is as fast, and two stall for seconds when other jobs hold the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _data(n=30, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, *SHAPE, generator=g)
    labels = torch.arange(n) % classes
    ids = (np.arange(n) * 7 + 1000)[torch.randperm(n, generator=g).numpy()]  # ids that are not positions
    return Samples(images, labels, ids)


def _cnn(data, classes=3):
    return make_task("cnn", DatasetInfo.from_images(data.images, num_classes=classes))


def _spy(monkeypatch):
    """Wrap the protocol's ``train``: log each run's training ids and every eval-mode input its model sees."""
    calls = []
    real = utils.engine.protocols.train

    def train(task, recipe, data, **kwargs):
        run = real(task, recipe, data, **kwargs)
        call = {"trained": set(data.ids.tolist()), "seen": []}
        run.model.register_forward_hook(lambda m, inp, out: None if m.training else call["seen"].append(inp[0].cpu()))
        calls.append(call)
        return run

    monkeypatch.setattr(utils.engine.protocols, "train", train)
    return calls


def _ids_of(inputs, task, data):
    """Sample ids of eval-mode model inputs, matched to the prepared images (every image is distinct)."""
    x = torch.cat(inputs).reshape(sum(len(i) for i in inputs), -1)
    ref = task.prepare(data.images).reshape(len(data), -1)
    dist = torch.cdist(x.double(), ref.double())
    assert bool((dist.min(1).values < 1e-4).all())
    return data.ids[dist.argmin(1).numpy()].tolist()


def test_kfold_covers_every_id_once_with_a_model_that_never_trained_on_it(monkeypatch):
    data = _data()
    task = _cnn(data)
    calls = _spy(monkeypatch)
    probs = kfold_probs(task, TINY, data, folds=3, seed=4)
    assert probs.index.name == "sample_id" and probs.index.tolist() == sorted(data.ids.tolist())
    assert list(probs.columns) == ["p0", "p1", "p2"]
    assert probs.attrs["folds"] == 3 and len(set(probs.attrs["fold_seeds"])) == 3
    assert len(calls) == 3
    predicted = []
    everything = set(data.ids.tolist())
    label_of = dict(zip(data.ids.tolist(), data.labels.tolist()))
    for call in calls:
        held = _ids_of(call["seen"], task, data)
        assert not set(held) & call["trained"]                 # out-of-sample: never trained on what it predicts
        assert set(held) | call["trained"] == everything       # trained on all the other folds
        assert np.ptp(np.bincount([label_of[i] for i in held], minlength=3)) <= 1   # stratified by label
        predicted += held
    assert sorted(predicted) == sorted(everything)             # every id exactly once


def test_kfold_is_order_free_and_deterministic(monkeypatch):
    data = _data()
    task = _cnn(data)
    calls = _spy(monkeypatch)
    first = kfold_probs(task, TINY, data, folds=3, seed=1)
    rows = np.random.default_rng(0).permutation(len(data))
    shuffled = kfold_probs(task, TINY, data.subset(rows), folds=3, seed=1)
    again = kfold_probs(task, TINY, data, folds=3, seed=1)
    other = kfold_probs(task, TINY, data, folds=3, seed=2)
    folds = [[frozenset(c["trained"]) for c in calls[i:i + 3]] for i in (0, 3, 6, 9)]
    assert folds[0] == folds[1] == folds[2] and folds[3] != folds[0]
    pd.testing.assert_frame_equal(first, shuffled, check_exact=False, atol=1e-6)
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first.to_numpy(), other.to_numpy())


def test_kfold_caches_each_fold_and_refuses_other_settings(tmp_path, monkeypatch):
    data = _data()
    task = _cnn(data)
    first = kfold_probs(task, TINY, data, folds=3, seed=0, folder=tmp_path)
    assert all((tmp_path / f"fold{k}" / utils.engine.loop.MODEL).is_file() for k in range(3))

    def no_saving(run):
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr(utils.engine.loop, "save_run", no_saving)
    pd.testing.assert_frame_equal(kfold_probs(task, TINY, data, folds=3, seed=0, folder=tmp_path), first)
    with pytest.raises(ValueError, match="other settings"):
        kfold_probs(task, TINY, data, folds=3, seed=1, folder=tmp_path)
    relabeled = Samples(data.images, (data.labels + 1) % 3, data.ids)   # same ids, other labels
    with pytest.raises(ValueError, match="other settings"):
        kfold_probs(task, TINY, relabeled, folds=3, seed=0, folder=tmp_path)


def test_kfold_input_checks(tmp_path):
    data = _data()
    with pytest.raises(ValueError, match="classifier task"):
        kfold_probs(make_task("autoencoder", DatasetInfo.from_images(data.images)), TINY, data)
    with pytest.raises(ValueError, match="folds must be"):
        kfold_probs(_cnn(data), TINY, data, folds=1)
    with pytest.raises(ValueError, match="labels must lie in 0..1"):
        kfold_probs(_cnn(data, classes=2), TINY, data, folder=tmp_path / "x")
    with pytest.raises(ValueError, match="labels"):
        kfold_probs(_cnn(data), TINY, Samples(data.images, None, data.ids))
    assert not (tmp_path / "x").exists()   # a refused call claims no folder


def _synthetic(n=300, c=4, seed=0):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c)) + 3 * np.eye(c)[true]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    given = true.copy()
    flip = rng.choice(n, n // 10, replace=False)
    given[flip] = (true[flip] + rng.integers(1, c, len(flip))) % c
    ids = rng.permutation(n) * 3 + 11
    probs = pd.DataFrame(p, index=pd.Index(ids, name="sample_id"), columns=[f"p{k}" for k in range(c)])
    return probs, pd.Series(given, index=ids), p, given


def test_label_quality_matches_cleanlab_and_ignores_sample_order():
    probs, labels, p, given = _synthetic()
    lq = label_quality(probs, labels.sample(frac=1, random_state=0))   # labels in another order
    assert lq.index.equals(probs.index)
    assert list(lq.columns) == ["cl_label_quality", "cl_normalized_margin", "flag_label_issue", "cl_predicted_label"]
    assert lq["cl_predicted_label"].tolist() == p.argmax(1).tolist()
    np.testing.assert_allclose(lq["cl_label_quality"], get_label_quality_scores(given, p), rtol=1e-12)
    np.testing.assert_allclose(lq["cl_normalized_margin"], get_normalized_margin_for_each_label(given, p), rtol=1e-12)
    assert lq["flag_label_issue"].dtype == bool
    assert lq["flag_label_issue"].to_numpy().tolist() == find_label_issues(given, p).tolist()
    for rule in LABEL_FILTERS:   # every filter_by setting is cleanlab's own
        flags = label_quality(probs, labels, filter_by=rule)["flag_label_issue"].to_numpy()
        assert flags.tolist() == find_label_issues(given, p, filter_by=rule).tolist(), rule
    assert lq.attrs["n_issues"] == int(lq["flag_label_issue"].sum()) > 0
    rows = np.random.default_rng(1).permutation(len(probs))
    shuffled = label_quality(probs.iloc[rows], labels)
    pd.testing.assert_frame_equal(shuffled.loc[lq.index], lq, check_exact=False, rtol=1e-12)


def test_label_quality_input_checks():
    probs, labels, _, _ = _synthetic(n=40)
    with pytest.raises(ValueError, match="do not sum to 1"):
        label_quality(probs * 0.9, labels)
    with pytest.raises(ValueError, match="not logits"):
        label_quality(probs * 5 - 2, labels)
    with pytest.raises(ValueError, match=r"lie in 0\.\.3"):
        label_quality(probs, labels + 4)
    with pytest.raises(ValueError, match="other sample ids"):
        label_quality(probs, labels.iloc[1:])
    with pytest.raises(ValueError, match="p0..p"):
        label_quality(probs.assign(fold=0), labels)
    with pytest.raises(TypeError, match="Series"):
        label_quality(probs, labels.to_numpy())
    with pytest.raises(ValueError, match="filter_by must be one of"):
        label_quality(probs, labels, filter_by="strict")


def test_end_to_end_flipped_mnist_digits_are_found(mnist5k):
    images, labels = mnist5k
    rows = np.sort(np.random.default_rng(0).choice(len(labels), 400, replace=False))  # mnist-5k is sorted by class
    noisy, flipped = flip_labels(labels[rows], 0.1, seed=0, num_classes=10)
    data = Samples(images[rows], noisy, rows)
    task = make_task("cnn", DatasetInfo.from_images(images, num_classes=10))
    recipe = get_recipe("paper", max_epochs=3, batch_size=32, lr=0.05, patience=None)
    probs = kfold_probs(task, recipe, data, folds=3, seed=0)
    lq = label_quality(probs, pd.Series(noisy.numpy(), index=rows))
    is_flipped = pd.Series(flipped.numpy(), index=rows).reindex(lq.index)
    assert roc_auc_score(is_flipped, -lq["cl_label_quality"]) > 0.8
    assert is_flipped[lq["flag_label_issue"]].mean() > 0.5   # most flagged samples are flipped ones


def test_predicted_label_is_computed_in_one_place():
    """The suggested class of relabel.csv (the ``suggested`` step) and label_quality's cl_predicted_label are one
    argmax: known answers, a tie going to the smaller class, rows in any order."""
    from types import SimpleNamespace

    from utils.scores.families import suggested_labels
    from utils.scores.label_quality import label_quality, predicted_labels

    probs = pd.DataFrame([[0.1, 0.7, 0.2], [0.4, 0.2, 0.4], [0.05, 0.15, 0.8]], columns=["p0", "p1", "p2"],
                         index=pd.Index([12, 5, 9], name="sample_id"))
    got = predicted_labels(probs)
    assert got["cl_predicted_label"].to_dict() == {12: 1, 5: 0, 9: 2}
    assert got["cl_predicted_prob"].to_dict() == {12: 0.7, 5: 0.4, 9: 0.8}
    data = SimpleNamespace(ids=np.array([5, 9, 12]))
    suggested = suggested_labels(data, SimpleNamespace(probs=probs))
    assert suggested["cl_predicted_label"].to_dict() == {5: 0, 9: 2, 12: 1}
    labels = pd.Series([0, 0, 0], index=[9, 12, 5])
    assert label_quality(probs, labels)["cl_predicted_label"].to_dict() == {12: 1, 5: 0, 9: 2}
