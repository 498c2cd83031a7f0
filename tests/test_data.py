import gzip
import json

import numpy as np
import pytest
import torch

from utils.data.datasets import DATASET_INFO, DatasetInfo, DatasetNotFoundError, dataset_info, load_dataset, read_idx


def test_mnist5k_is_embedded_and_split_4000_1000(mnist5k):
    images, labels = mnist5k
    test_images, test_labels, info = load_dataset("mnist-5k", "test")
    assert info == dataset_info("mnist-5k") and info.shape == (1, 28, 28) and info.num_classes == 10
    assert images.shape == (4000, 1, 28, 28) and images.dtype == torch.float32
    assert labels.dtype == torch.int64 and test_images.shape == (1000, 1, 28, 28)
    assert float(images.min()) == 0.0 and float(images.max()) == 1.0
    assert torch.bincount(test_labels).tolist() == [100] * 10
    # train and test are disjoint
    flat = {tuple(x) for x in (images.flatten(1) * 255).round().to(torch.uint8).tolist()[:500]}
    assert not any(tuple(x) in flat for x in (test_images.flatten(1) * 255).round().to(torch.uint8).tolist())


def test_mnist_test_split_loads_without_train_files(shared_data_root):
    images, labels, info = load_dataset("mnist", "test", root=shared_data_root)
    assert info.name == "mnist" and info.shape == tuple(images.shape[1:])
    assert images.shape == (10000, 1, 28, 28) and labels.shape == (10000,)
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]  # the official first test labels
    with pytest.raises(DatasetNotFoundError, match="train-images-idx3-ubyte"):
        load_dataset("mnist", "train", root=shared_data_root)


def test_mnist5k_shares_no_image_with_the_mnist_test_split(shared_data_root, mnist5k):
    test_images, _, _ = load_dataset("mnist", "test", root=shared_data_root)
    as_bytes = lambda x: {r.tobytes() for r in (x.flatten(1) * 255).round().to(torch.uint8).numpy()}  # noqa: E731
    assert not as_bytes(test_images) & as_bytes(torch.cat([mnist5k[0], load_dataset("mnist-5k", "test")[0]]))


def test_data_root_env_var(shared_data_root, monkeypatch):
    monkeypatch.setenv("DATA_ROOT", str(shared_data_root))
    assert load_dataset("mnist", "test")[0].shape[0] == 10000


def test_fashion_mnist_from_debian_package(tmp_path):
    from utils.data.datasets import DEBIAN_FASHION_MNIST
    if not DEBIAN_FASHION_MNIST.is_dir():
        pytest.skip("apt-get install dataset-fashion-mnist to run this test")
    images, labels, info = load_dataset("fashion-mnist", "test", root=tmp_path)
    assert info == dataset_info("fashion-mnist")
    assert images.shape == (10000, 1, 28, 28) and int(labels.max()) == 9


def test_idx_reader_roundtrip(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = b"\x00\x00\x08\x03" + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(tmp_path / "x-idx3-ubyte.gz", "wb") as f:
        f.write(header + arr.tobytes())
    assert np.array_equal(read_idx(tmp_path / "x-idx3-ubyte.gz"), arr)


def test_unknown_dataset_and_split_are_clear_errors():
    with pytest.raises(ValueError, match="Unknown dataset 'mnsit'.*mnist-5k"):
        load_dataset("mnsit")
    with pytest.raises(ValueError, match="Unknown split"):
        load_dataset("mnist-5k", "validation")


def test_missing_files_name_where_we_looked_and_how_to_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("mnist", "test", root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in msg and "DATA_ROOT" in msg and "download=True" in msg


def one_sentence(excinfo):
    msg = str(excinfo.value)
    return msg.endswith(".") and "\n" not in msg and ". " not in msg


def test_published_constants():
    assert dataset_info("mnist").mean == (0.1307,) and dataset_info("mnist").std == (0.3081,)
    assert dataset_info("mnist-5k").mean == (0.1307,) and dataset_info("mnist-5k").std == (0.3081,)
    assert dataset_info("fashion-mnist").mean == (0.2860,) and dataset_info("fashion-mnist").std == (0.3530,)
    cifar = dataset_info("cifar10")
    assert cifar.mean == (0.4914, 0.4822, 0.4465) and cifar.std == (0.2470, 0.2435, 0.2616)
    assert cifar.shape == (3, 32, 32) and dataset_info("mnist").shape == (1, 28, 28)
    assert set(DATASET_INFO) == {"mnist", "mnist-5k", "fashion-mnist", "cifar10"}
    assert all(info.num_classes == 10 and info.name == name for name, info in DATASET_INFO.items())
    with pytest.raises(ValueError, match="Unknown dataset 'svhn'") as e:
        dataset_info("svhn")
    assert one_sentence(e)


def test_from_images_is_the_per_channel_numpy_mean_and_std():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(50, 3, 6, 5, generator=g) * torch.tensor([1.0, 0.5, 0.2]).view(1, 3, 1, 1)
    info = DatasetInfo.from_images(x, torch.tensor([0, 4] * 25), name="toy")
    xn = x.numpy().astype(np.float64)
    np.testing.assert_allclose(info.mean, xn.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(info.std, xn.std(axis=(0, 2, 3)), rtol=1e-12)
    assert info.shape == (3, 6, 5) and info.num_classes == 5 and info.name == "toy"
    assert DatasetInfo.from_images(x, torch.zeros(50, dtype=torch.long), num_classes=7).num_classes == 7
    assert DatasetInfo.from_images(x.numpy()).num_classes == 0  # numpy input, no labels: unknown


def test_from_images_on_mnist5k_is_close_to_the_published_constants(mnist5k):
    info = DatasetInfo.from_images(*mnist5k)
    assert info.num_classes == 10 and info.shape == (1, 28, 28)
    assert info.mean[0] == pytest.approx(0.1307, abs=0.01) and info.std[0] == pytest.approx(0.3081, abs=0.01)


def test_standardize_and_to_pixels_round_trip_on_colour():
    info = dataset_info("cifar10")
    x = torch.rand(4, 3, 8, 8, dtype=torch.float64)
    z = info.standardize(x)
    assert z.dtype == torch.float64 and z.shape == x.shape
    for c in range(3):
        torch.testing.assert_close(z[:, c], (x[:, c] - info.mean[c]) / info.std[c])
    torch.testing.assert_close(info.to_pixels(z), x)
    assert info.standardize(x.float()).dtype == torch.float32
    assert info.to_pixels(torch.full((1, 3, 2, 2), 100.0)).max() == 1.0  # clamped to [0, 1]
    assert info.to_pixels(torch.full((1, 3, 2, 2), -100.0)).min() == 0.0
    with pytest.raises(ValueError, match="3 channel") as e:
        info.standardize(torch.rand(2, 1, 8, 8))
    assert one_sentence(e)


def test_dict_round_trip_through_json():
    info = dataset_info("cifar10")
    d = json.loads(json.dumps(info.to_dict()))
    assert d["shape"] == [3, 32, 32] and DatasetInfo.from_dict(d) == info
    with pytest.raises(ValueError, match="needs exactly the keys") as e:
        DatasetInfo.from_dict({**d, "extra": 1})
    assert one_sentence(e)


@pytest.mark.parametrize("kwargs, match", [
    (dict(shape=(28, 28)), "shape must be three positive integers"),
    (dict(shape=(1, 0, 28)), "shape must be three positive integers"),
    (dict(shape=(1, 28.5, 28)), "shape must be three positive integers"),
    (dict(mean=(0.1, 0.2)), "one value per channel"),
    (dict(std=()), "one value per channel"),
    (dict(std=(0.0,)), "std finite and positive"),
    (dict(std=(-1.0,)), "std finite and positive"),
    (dict(mean=(float("nan"),)), "mean must be finite"),
    (dict(num_classes=-1), "num_classes must be a non-negative integer"),
    (dict(num_classes=None), "num_classes must be a non-negative integer"),
])
def test_dataset_info_validation_is_one_clear_sentence(kwargs, match):
    args = dict(name="x", shape=(1, 28, 28), num_classes=10, mean=(0.5,), std=(0.25,))
    with pytest.raises(ValueError, match=match) as e:
        DatasetInfo(**{**args, **kwargs})
    assert one_sentence(e)


def test_from_images_refuses_bad_images():
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]") as e:
        DatasetInfo.from_images(torch.rand(4, 28, 28))
    assert one_sentence(e)
