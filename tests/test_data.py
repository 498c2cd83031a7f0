import gzip

import numpy as np
import pytest
import torch

from utils.data import DatasetNotFoundError, load_dataset, read_idx


def test_mnist5k_is_embedded_and_split_4000_1000(mnist5k):
    images, labels = mnist5k
    test_images, test_labels = load_dataset("mnist-5k", "test")
    assert images.shape == (4000, 1, 28, 28) and images.dtype == torch.float32
    assert labels.dtype == torch.int64 and test_images.shape == (1000, 1, 28, 28)
    assert float(images.min()) == 0.0 and float(images.max()) == 1.0
    assert torch.bincount(test_labels).tolist() == [100] * 10
    # train and test are disjoint
    flat = {tuple(x) for x in (images.flatten(1) * 255).round().to(torch.uint8).tolist()[:500]}
    assert not any(tuple(x) in flat for x in (test_images.flatten(1) * 255).round().to(torch.uint8).tolist())


def test_mnist_test_split_loads_without_train_files(shared_data_root):
    images, labels = load_dataset("mnist", "test", root=shared_data_root)
    assert images.shape == (10000, 1, 28, 28) and labels.shape == (10000,)
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]  # the official first test labels
    with pytest.raises(DatasetNotFoundError, match="train-images-idx3-ubyte"):
        load_dataset("mnist", "train", root=shared_data_root)


def test_mnist5k_shares_no_image_with_the_mnist_test_split(shared_data_root, mnist5k):
    test_images, _ = load_dataset("mnist", "test", root=shared_data_root)
    as_bytes = lambda x: {r.tobytes() for r in (x.flatten(1) * 255).round().to(torch.uint8).numpy()}  # noqa: E731
    assert not as_bytes(test_images) & as_bytes(torch.cat([mnist5k[0], load_dataset("mnist-5k", "test")[0]]))


def test_data_root_env_var(shared_data_root, monkeypatch):
    monkeypatch.setenv("DATA_ROOT", str(shared_data_root))
    assert load_dataset("mnist", "test")[0].shape[0] == 10000


def test_fashion_mnist_from_debian_package(tmp_path):
    from utils.data import DEBIAN_FASHION_MNIST
    if not DEBIAN_FASHION_MNIST.is_dir():
        pytest.skip("apt-get install dataset-fashion-mnist to run this test")
    images, labels = load_dataset("fashion-mnist", "test", root=tmp_path)
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
