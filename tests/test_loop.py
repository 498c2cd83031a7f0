"""The one training loop: what it records, when, for which sample id; stopping, resuming, sharding, inputs."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score

from utils.data.datasets import DatasetInfo
from utils.data.samples import Samples
from utils.engine.distributed import shard
from utils.engine.loop import is_finished, load_run, train
from utils.engine.recipes import get_recipe
from utils.engine.tasks import SupervisedTask

RECORDED = ("loss", "given_logit", "other_logit", "prob", "correct")


def _samples(n=40, shape=(1, 8, 8), classes=10, seed=0):
    """Random images and labels; ids that are neither positions nor sorted."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, *shape, generator=g)
    labels = torch.randint(0, classes, (n,), generator=g)
    ids = np.random.default_rng(seed).permutation(np.arange(n) * 7 + 1000)
    return Samples(images, labels, ids)


def _task(data, arch="lenet", classes=10, **kwargs):
    return SupervisedTask(DatasetInfo.from_images(data.images, num_classes=classes), arch, **kwargs)


def _direct(task, model, data):
    """Per-sample values computed straight from the definitions, eval mode, one pass."""
    model.eval()
    with torch.no_grad():
        logits = model(task.prepare(data.images)).double()
    model.train()
    y = data.labels
    others = logits.clone()
    others[torch.arange(len(y)), y] = -np.inf
    return {"loss": F.cross_entropy(logits, y, reduction="none"), "given_logit": logits[torch.arange(len(y)), y],
            "other_logit": others.max(1).values, "prob": logits.softmax(1)[torch.arange(len(y)), y],
            "correct": (logits.argmax(1) == y).double()}


def _fresh(task, seed):
    torch.manual_seed(seed)
    return task.make_model()


def test_inloop_records_equal_a_direct_recomputation_per_sample_id():
    data = _samples()
    task = _task(data)  # LeNet: no BatchNorm, no dropout, so train and eval mode compute the same thing
    recipe = get_recipe("paper", lr=1e-30, max_epochs=2, batch_size=8, schedule="constant", patience=None)
    run = train(task, recipe, data, seed=3, progress=False)
    initial = _fresh(task, 3)
    assert all(torch.equal(a, b) for a, b in zip(initial.state_dict().values(), run.model.state_dict().values()))
    expected = _direct(task, initial, data)
    assert sorted(run.records.names) == sorted(RECORDED) and np.array_equal(run.records.sample_ids, data.ids)
    for name in RECORDED:
        assert run.records.steps(name).tolist() == [0, 1]
        assert (run.records.counts(name) == 1).all(), name  # exactly one write per sample per epoch
        for epoch in range(2):
            np.testing.assert_allclose(run.records[name][epoch], expected[name].numpy(), rtol=1e-5, atol=1e-5,
                                       err_msg=name)
    assert 0 < expected["correct"].sum() < len(data)  # the check above compared both outcomes
    # the history's train loss and accuracy are the means of the per-sample records
    np.testing.assert_allclose(run.history["train_loss"], run.records["loss"].mean(1), rtol=1e-5)
    np.testing.assert_allclose(run.history["train_acc"], run.records["correct"].mean(1))


def test_inloop_records_use_the_weights_before_each_update():
    data = _samples()
    task = _task(data)
    recipe = get_recipe("paper", lr=0.05, max_epochs=1, batch_size=8, schedule="constant", patience=None)
    run = train(task, recipe, data, seed=3, progress=False)
    initial = _direct(task, _fresh(task, 3), data)["loss"].numpy()
    same = np.isclose(run.records["loss"][0], initial, rtol=1e-5, atol=1e-6)
    assert same.sum() == 8  # exactly the first batch saw the initial weights; later ones saw updated weights


def test_logs_per_epoch_gives_k_measurement_rows_per_epoch():
    data = _samples(n=48, shape=(1, 12, 12))
    task = _task(data, "cnn", eval_batch_size=20)
    recipe = get_recipe("paper", max_epochs=2, batch_size=8, lr=0.05, patience=None)  # 6 steps per epoch
    run = train(task, recipe, data, seed=0, record=False, measure_on=data, logs_per_epoch=3, progress=False)
    assert run.records.names == []
    m = run.measures
    assert sorted(m.names) == sorted(RECORDED) and np.array_equal(m.sample_ids, data.ids)
    for name in RECORDED:
        assert m.steps(name).tolist() == list(range(6)) and (m.counts(name) == 1).all()
    assert not np.allclose(m["loss"][0], m["loss"][1])  # each log measured other weights
    # the last log comes after the epoch's last step: it is the final model's eval-mode measurement
    expected = _direct(task, run.model, data)
    for name in RECORDED:
        np.testing.assert_allclose(m[name][-1], expected[name].numpy(), rtol=1e-4, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(run.history["measure_loss"].iloc[-1], m["loss"][-1].mean(), rtol=1e-6)
    with pytest.raises(ValueError, match=r"logs_per_epoch \(7\) exceeds the 6 steps of an epoch"):
        train(task, recipe, data, seed=0, record=False, measure_on=data, logs_per_epoch=7, progress=False)
    with pytest.raises(ValueError, match="logs_per_epoch must be a positive integer"):
        train(task, recipe, data, seed=0, logs_per_epoch=0, progress=False)


def test_held_out_accuracy_is_the_final_models_accuracy():
    data, test = _samples(n=48, shape=(1, 12, 12)), _samples(n=50, shape=(1, 12, 12), seed=1)
    task = _task(data, "cnn", eval_batch_size=16)  # several held-out batches, BatchNorm in eval mode
    recipe = get_recipe("paper", max_epochs=3, batch_size=8, lr=0.05, patience=None)
    run = train(task, recipe, data, seed=0, eval_sets={"test": test}, progress=False)
    run.model.eval()
    with torch.no_grad():
        logits = run.model(task.prepare(test.images))
    acc = accuracy_score(test.labels.numpy(), logits.argmax(1).numpy())
    assert run.history["test_acc"].iloc[-1] == pytest.approx(acc, abs=1e-12)
    assert run.history["test_loss"].iloc[-1] == pytest.approx(F.cross_entropy(logits, test.labels).item(), rel=1e-5)
    assert len(run.history) == 3 and run.history["epoch"].tolist() == [1, 2, 3]


def test_early_stop_gives_fewer_rows_everywhere():
    images = torch.zeros(16, 1, 12, 12)
    images[8:] = 1.0
    data = Samples(images, torch.tensor([0] * 8 + [1] * 8), np.arange(16) * 3)
    task = SupervisedTask(DatasetInfo("two", (1, 12, 12), 2, (0.5,), (0.5,)), "cnn")
    recipe = get_recipe("paper", max_epochs=30, batch_size=8, lr=0.05, patience=2)
    run = train(task, recipe, data, seed=0, measure_on=data, progress=False)
    epochs = len(run.history)
    assert epochs < 30 and (run.history["train_acc"].tail(2) == 1.0).all()
    assert (run.history["train_acc"].iloc[:-2] < 1.0).any() or epochs == 2  # stopped at the first chance
    assert run.records.steps("loss").tolist() == list(range(epochs))
    assert run.measures.steps("loss").tolist() == list(range(epochs))


class _InfAt(SupervisedTask):
    """A supervised task whose loss becomes inf at one optimizer step (counted from 0)."""

    def __init__(self, info, at):
        super().__init__(info, "cnn")
        self.at, self.calls = at, 0

    def train_step(self, model, x, y, generator, record):
        loss, values, correct = super().train_step(model, x, y, generator, record)
        self.calls += 1
        return (loss * float("inf") if self.calls - 1 == self.at else loss), values, correct


def test_non_finite_loss_stops_keeping_the_checkpoint_and_the_run_resumes(tmp_path):
    data = _samples(n=24, shape=(1, 12, 12))
    info = DatasetInfo.from_images(data.images, num_classes=10)
    recipe = get_recipe("paper", max_epochs=3, batch_size=8, lr=0.05, patience=None)  # 3 steps per epoch
    with pytest.raises(FloatingPointError) as e:
        train(_InfAt(info, at=4), recipe, data, seed=0, folder=tmp_path, checkpoint_every=1, progress=False)
    assert str(e.value) == (f"The loss became inf at epoch 2, step 2: lower the recipe's lr or check the inputs; what "
                            f"was already saved in {tmp_path} is kept.")
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert saved["epoch"] == 0 and not is_finished(tmp_path)
    # the same settings resume from that checkpoint and end where an uninterrupted run ends
    seen = []
    resumed = train(SupervisedTask(info, "cnn"), recipe, data, seed=0, folder=tmp_path, checkpoint_every=1,
                    progress=False, on_epoch_end=seen.append)
    assert seen == [1, 2]
    full = train(SupervisedTask(info, "cnn"), recipe, data, seed=0, progress=False)
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    for name in RECORDED:
        assert np.array_equal(full.records[name], resumed.records[name]), name
    assert full.history.drop(columns="seconds").equals(resumed.history.drop(columns="seconds"))
    loaded = load_run(tmp_path, SupervisedTask(info, "cnn").make_model())
    assert all(torch.equal(a, b) for a, b in zip(loaded.model.state_dict().values(), full.model.state_dict().values()))
    assert np.array_equal(loaded.records["prob"], full.records["prob"]) and len(loaded.history) == 3
    assert not (tmp_path / "checkpoint.pt").exists()


def test_a_folder_holding_other_settings_is_refused(tmp_path):
    data = _samples(n=16, shape=(1, 12, 12))
    task = _task(data, "cnn")
    recipe = get_recipe("paper", max_epochs=1, batch_size=8)
    train(task, recipe, data, seed=0, folder=tmp_path, progress=False)
    with pytest.raises(ValueError) as e:
        train(task, recipe, data, seed=1, folder=tmp_path, progress=False)
    assert str(e.value) == (f"{tmp_path} holds a run with other settings (seed); pick a new results folder or delete "
                            "that one to start over.")
    with pytest.raises(ValueError, match=r"other settings \(content_sha256\)"):
        train(task, recipe, Samples(data.images, data.labels, data.ids + 1), seed=0, folder=tmp_path, progress=False)
    with pytest.raises(FileNotFoundError, match="No finished run"):
        load_run(tmp_path / "nothing", task.make_model())


def test_a_call_refused_for_its_inputs_leaves_the_folder_free_for_the_corrected_call(tmp_path):
    # Inputs the loop refuses (too many logs per epoch, images of another shape) must be refused before
    # settings.json is written; otherwise the corrected call is refused as "other settings".
    data = _samples(n=16, shape=(1, 12, 12))
    task = _task(data, "cnn")
    recipe = get_recipe("paper", max_epochs=1, batch_size=8)  # 2 steps per epoch
    with pytest.raises(ValueError, match="exceeds the 2 steps"):
        train(task, recipe, data, seed=0, folder=tmp_path / "logs", measure_on=data, logs_per_epoch=3, progress=False)
    train(task, recipe, data, seed=0, folder=tmp_path / "logs", measure_on=data, logs_per_epoch=2, progress=False)
    assert is_finished(tmp_path / "logs")
    wrong = SupervisedTask(DatasetInfo("other", (1, 14, 14), 10, (0.5,), (0.5,)), "cnn")
    with pytest.raises(ValueError, match=r"built for images \[1, 14, 14\], got \[1, 12, 12\]"):
        train(wrong, recipe, data, seed=0, folder=tmp_path / "shape", progress=False)
    train(task, recipe, data, seed=0, folder=tmp_path / "shape", progress=False)
    assert is_finished(tmp_path / "shape")


def test_samples_refuse_bad_inputs_with_one_sentence():
    images = torch.rand(6, 1, 8, 8)
    images[2, 0, 1, 1] = float("nan")
    images[4, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError) as e:
        Samples(images, None, np.arange(6))
    assert str(e.value) == "images hold 2 non-finite values (NaN or inf); clean or drop those samples first."
    ok = torch.rand(6, 1, 8, 8)
    cases = [((ok, None, np.arange(5)), "Got 5 sample ids for 6 images; pass one id per image."),
             ((ok, None, [1, 1, 2, 3, 4, 5]), "sample ids are not unique; give every sample its own id."),
             ((ok[:, 0], None, np.arange(6)), "images must be a non-empty float tensor [N, C, H, W], got "
                                               "torch.float32 [6, 8, 8]; add a channel axis or convert to float "
                                               "pixels in [0, 1]."),
             ((ok, torch.zeros(6), np.arange(6)), "labels must be 6 integers (one per image), got torch.float32 [6]; "
                                                  "map class names to integers first, e.g. with pandas.factorize."),
             ((ok, torch.zeros(5, dtype=torch.long), np.arange(6)), "labels must be 6 integers (one per image), got "
                                                                    "torch.int64 [5]; map class names to integers "
                                                                    "first, e.g. with pandas.factorize."),
             ((ok, None, [0.0, 0.5, 1.0, 2.0, 3.0, 4.0]), "sample ids must be integers, got float64 values (e.g. "
                                                          "[0.0, 0.5]); number your samples, e.g. ids=range(N), and "
                                                          "keep names (file paths) in meta.")]
    for args, message in cases:
        with pytest.raises(ValueError) as e:
            Samples(*args)
        assert str(e.value) == message
    data = Samples(ok, None, np.arange(6) * 2)
    with pytest.raises(ValueError, match="The cnn task trains on labels; give the samples labels."):
        train(_task(data, "cnn"), get_recipe("paper", max_epochs=1), data, seed=0, progress=False)
    sub = Samples(ok, torch.arange(6), np.arange(6) * 2).subset([4, 1])
    assert sub.ids.tolist() == [8, 2] and sub.labels.tolist() == [4, 1] and torch.equal(sub.images, ok[[4, 1]])


def test_shard_gives_every_rank_equal_steps_and_every_sample_once():
    wrong = []
    for n in (1, 2, 3, 5, 10, 17):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
        for world in (1, 2, 3, 4, 5):
            parts = [shard(order, rank, world) for rank in range(world)]
            sizes = {(len(rows), len(real)) for rows, real in parts}
            real_rows = sorted(torch.cat([rows[real[:len(rows)]] for rows, real in parts]).tolist())
            # same number of steps on every rank; padding never counted as real; every sample once
            if sizes != {(-(-n // world),) * 2} or real_rows != sorted(order.tolist()):
                wrong.append((n, world, sorted(sizes)))
    assert not wrong, f"(n, world, {{(rows, real) per rank}}): {wrong}"


def test_a_last_batch_of_one_sample_is_refused_up_front_or_trained():
    # BarlowTwins standardises over the batch (BatchNorm1d, batch statistics): a last batch of one sample
    # (17 samples in batches of 8) cannot be trained on. Today it fails mid-epoch with torch's
    # "Expected more than 1 value per channel"; it should be refused before training, naming batch_size.
    from utils.engine.tasks import BarlowTwinsTask
    images = torch.rand(17, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    task = BarlowTwinsTask(DatasetInfo.from_images(images))
    calls = []
    original = task.train_step
    task.train_step = lambda *a: calls.append(len(a[1])) or original(*a)
    try:
        run = train(task, get_recipe("paper", max_epochs=1, batch_size=8), Samples(images, None, np.arange(17)),
                    seed=0, progress=False)
    except ValueError as e:
        assert "batch_size" in str(e) and calls == [], str(e)
    else:
        assert np.isfinite(run.history["train_loss"]).all() and sum(calls) >= 17


class _Kill(Exception):
    pass


def test_epoch_size_sees_every_sample_once_per_pass_and_resumes(tmp_path):
    data = _samples(n=30, shape=(1, 12, 12))
    task = _task(data, arch="cnn")
    recipe = get_recipe("paper", max_epochs=6, batch_size=4, lr=0.05, patience=None)
    run = train(task, recipe, data, seed=3, epoch_size=10, progress=False)
    seen = ~np.isnan(run.records["loss"])          # [epochs, samples]: which samples each epoch trained on
    assert seen.shape == (6, 30) and (seen.sum(1) == 10).all()
    assert (seen[:3].sum(0) == 1).all() and (seen[3:].sum(0) == 1).all()   # each pass of 3 epochs covers all once
    assert not np.array_equal(seen[:3], seen[3:])                          # a fresh permutation per pass
    assert len(run.history) == 6
    # epoch_size that does not divide N: epoch 4 finishes the first pass and starts the second (a sample may then
    # come twice in that epoch), so the first 4 epochs have trained on every sample
    odd = train(task, recipe, data, seed=3, epoch_size=8, progress=False)
    seen = ~np.isnan(odd.records["loss"])
    assert (seen[:3].sum(0) <= 1).all() and seen[:3].sum() == 24 and seen[:4].any(0).all()
    # killed after epoch 2, resumed: the same model as an uninterrupted run
    def kill(epoch):
        if epoch == 1:
            raise _Kill
    with pytest.raises(_Kill):
        train(task, recipe, data, seed=3, epoch_size=10, folder=tmp_path, checkpoint_every=1, progress=False,
              on_epoch_end=kill)
    resumed = train(task, recipe, data, seed=3, epoch_size=10, folder=tmp_path, checkpoint_every=1, progress=False)
    for a, b in zip(run.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    # the folder remembers the epoch size; the whole data set per epoch is the plain loop
    with pytest.raises(ValueError, match="epoch_size"):
        train(task, recipe, data, seed=3, epoch_size=12, folder=tmp_path, progress=False)
    plain = train(task, recipe, data, seed=3, progress=False)
    same = train(task, recipe, data, seed=3, epoch_size=30, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(plain.model.state_dict().values(), same.model.state_dict().values()))
    for bad in (0, 31, 2.5):
        with pytest.raises(ValueError, match="epoch_size must be an integer in 1..30"):
            train(task, recipe, data, seed=3, epoch_size=bad, progress=False)
