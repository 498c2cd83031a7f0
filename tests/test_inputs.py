"""Inputs a new user brings stop with one sentence or are scored, never crash (issue: the bad-input probe)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from utils.data.datasets import load_dataset, load_image_folder, read_image
from utils.scores.dataset import ScoringConfig, score_dataset

TINY = ScoringConfig(folds=2, epochs=1, el2n_epoch=0, ssft_epochs=0, ae_epochs=1, ae_ssft_epochs=0, bt_epochs=1,
                     batch_size=32)
ROOT = Path(__file__).resolve().parents[1]


def _one_sentence(err):
    msg = str(err.value)
    assert msg.endswith(".") and "\n" not in msg, msg
    return msg


def test_a_blank_image_is_scored_not_refused():
    x, _, _ = load_dataset("mnist-5k", "test")
    x = x[:80].clone()
    x[5] = 0.0                                   # one all-black image: no direction in pixel space
    scores = score_dataset(x, config=TINY, families=("pixels", "autoencoder", "self-supervised"))
    assert np.isfinite(scores.filter(like="_distance").to_numpy()).all()
    assert scores["px_prototype_distance"].idxmax() == 5    # farthest from every prototype


def test_constant_images_are_scored():
    x = torch.full((40, 1, 12, 12), 0.5)
    x[::2] = 0.25
    scores = score_dataset(x, config=TINY, families=("pixels", "autoencoder"))
    assert len(scores) == 40 and scores["ae_loss_last"].notna().all()


def test_bad_ids_and_settings_are_refused_with_one_sentence():
    x = torch.rand(40, 1, 12, 12)
    for ids in ([0.7 + i for i in range(40)], [i / 2 for i in range(40)]):
        with pytest.raises(ValueError) as e:
            score_dataset(x, ids=ids, config=TINY, families=("pixels",))
        assert _one_sentence(e).startswith("sample ids must be integers, got float64 values")
    with pytest.raises(ValueError) as e:
        score_dataset(x, ids=[f"img{i}.png" for i in range(40)], config=TINY, families=("pixels",))
    assert "sample ids must be integers" in _one_sentence(e) and "meta" in str(e.value)
    score_dataset(x, ids=[float(i) for i in range(40)], config=TINY, families=("pixels",))   # whole floats are fine
    for kwargs, field in ((dict(k=2.5), "k"), (dict(seed=-1), "seed"), (dict(folds=1), "folds")):
        with pytest.raises(ValueError) as e:
            ScoringConfig(**kwargs)
        assert _one_sentence(e).startswith(field)


def test_launch_refuses_a_zero_checkpoint_interval_before_any_work():
    out = subprocess.run([sys.executable, "-m", "utils.engine.launch", "--checkpoint-every", "0", "--out", "x"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "--checkpoint-every must be a positive integer, got 0." in out.stderr
    assert "Traceback" not in out.stderr


def test_a_folder_of_many_files_loads_under_a_low_open_file_limit(tmp_path):
    """The bug this replaces: every file stayed open, so 1,000+ images raised 'Too many open files'."""
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(2500):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / c / f"{i:04d}.png")
    code = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)); "
            "from utils.data.datasets import load_image_folder; "
            f"x, y, names = load_image_folder({str(tmp_path)!r}); print(tuple(x.shape), int(y.sum()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.split() == ["(5000,", "1,", "8,", "8)", "2500"]


def test_a_truncated_file_is_named(tmp_path):
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "ok.png")
    full = (tmp_path / "ok.png").read_bytes()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(tmp_path / "bad.png")
    (tmp_path / "bad.png").write_bytes((tmp_path / "bad.png").read_bytes()[:200])
    with pytest.raises(ValueError) as e:
        load_image_folder(tmp_path)
    msg = _one_sentence(e)
    assert msg.startswith(f"Cannot read the image {tmp_path / 'bad.png'} (") and msg.endswith("fix or remove that file.")
    assert len(full) > 0


def test_16_bit_images_are_scaled_by_their_bit_depth(tmp_path):
    """The bug this replaces: 16-bit PNGs went through an 8-bit conversion that clipped 99.5 % of pixels to 1."""
    values = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    Image.fromarray(values).save(tmp_path / "deep.png")
    x = read_image(tmp_path / "deep.png")
    np.testing.assert_allclose(x, values / 65535.0, atol=1e-6)
    assert (x == 1.0).mean() < 0.05
    Image.fromarray((values // 257).astype(np.uint8)).save(tmp_path / "flat.png")
    np.testing.assert_allclose(read_image(tmp_path / "flat.png"), (values // 257) / 255.0, atol=1e-6)


def test_gray_and_colour_images_in_one_folder_load_as_rgb(tmp_path):
    Image.fromarray(np.full((6, 6), 200, np.uint8)).save(tmp_path / "g.png")
    Image.fromarray(np.zeros((6, 6, 3), np.uint8) + np.uint8([255, 0, 0])).save(tmp_path / "c.png")
    x, labels, names = load_image_folder(tmp_path)
    assert x.shape == (2, 3, 6, 6) and labels is None and names == ["c.png", "g.png"]
    np.testing.assert_allclose(x[1, :, 0, 0], [200 / 255] * 3, atol=1e-6)


def test_cleanvision_checks_flag_blank_and_copied_images():
    from utils.scores.image_checks import image_checks
    x, _, _ = load_dataset("fashion-mnist" if Path("/usr/share/datasets/fashion-mnist").is_dir() else "mnist-5k",
                           "test")
    x = x[:300].clone()
    x[0], x[1], x[3] = 0.0, 1.0, x[2]
    checks = image_checks(x, ids=np.arange(300) * 2)
    assert checks.index.tolist() == list(range(0, 600, 2))
    assert checks.loc[0, "flag_dark"] and checks.loc[2, "flag_light"] and not checks.loc[2, "flag_dark"]
    assert checks.loc[[4, 6], "flag_exact_duplicates"].all() and checks["flag_exact_duplicates"].sum() == 2


def test_the_rarest_class_is_flagged_by_datalabs_imbalance_rule():
    from utils.scores.flags import add_flags
    base = pd.DataFrame({"px_nn_distance": np.linspace(1, 2, 205), "px_nearest_id": np.roll(np.arange(205), 1)})
    balanced = add_flags(base.assign(label=np.arange(205) % 5))
    assert not balanced["flag_class_imbalance"].any()
    tiny = base.assign(label=np.r_[np.zeros(200, int), [1, 1, 2, 2, 2]])    # class 1: 2 of 205 < 0.1 / 3
    out = add_flags(tiny)
    assert out["flag_class_imbalance"].tolist() == [False] * 200 + [True, True, False, False, False]


@pytest.mark.filterwarnings("ignore:Number of distinct clusters")
def test_exact_copies_are_flagged_grouped_and_one_kept_even_when_most_images_are_copies():
    """The bug this replaces: 40 identical images got 0 flags (every pixel NN distance the same float noise, not
    below 0.13 x itself); 30 images each twice got 26 of 60 flagged and 47 kept instead of 30."""
    from utils.scores.flags import clean_keep
    rng = np.random.default_rng(0)
    same = torch.from_numpy(np.repeat(rng.random((1, 1, 28, 28), dtype=np.float32), 40, axis=0))
    s = score_dataset(same, config=TINY, families=("pixels",))
    assert (s["px_nn_distance"] == 0).all() and s["flag_near_duplicate"].all()
    assert (s["duplicate_group"] == 0).all() and clean_keep(s).tolist() == [True] + [False] * 39
    twice = torch.from_numpy(np.vstack([rng.random((30, 1, 28, 28), dtype=np.float32)] * 2))
    s = score_dataset(twice, config=TINY, families=("pixels",))
    assert s["flag_near_duplicate"].all() and s["duplicate_group"].nunique() == 30
    assert (s["duplicate_group"].to_numpy()[:30] == s["duplicate_group"].to_numpy()[30:]).all()
    assert clean_keep(s).tolist() == [True] * 30 + [False] * 30


def _folder_of_sizes(root, sizes_per_class, seed=0):
    rng = np.random.default_rng(seed)
    for c, sizes in sizes_per_class.items():
        (root / c).mkdir()
        for i, (h, w) in enumerate(sizes):
            Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(root / c / f"{i:02d}.png")


def test_a_folder_of_mixed_sizes_is_scored_at_the_most_common_size(tmp_path):
    """The bug this replaces: every real folder (images of several sizes) was refused as a whole."""
    _folder_of_sizes(tmp_path, {"a": [(16, 16)] * 10 + [(24, 40)], "b": [(16, 16)] * 10 + [(9, 12)]})
    x, labels, names, sizes = load_image_folder(tmp_path, with_sizes=True)
    assert x.shape == (22, 1, 16, 16) and names[10] == "a/10.png" and sizes[10].tolist() == [24, 40]
    original = torch.from_numpy(read_image(tmp_path / "a" / "10.png"))[None, None]
    expected = torch.nn.functional.interpolate(original, size=(16, 16), mode="bilinear", antialias=True)
    torch.testing.assert_close(x[10:11], expected.clamp(0, 1))          # stretched, bilinear with antialiasing
    torch.testing.assert_close(x[0, 0], torch.from_numpy(read_image(tmp_path / "a" / "00.png")))   # untouched
    scores = score_dataset(tmp_path, config=TINY, families=("pixels",))
    odd = [10, 21]
    assert scores.loc[odd, ["orig_height", "orig_width"]].to_numpy().tolist() == [[24, 40], [9, 12]]
    assert (scores.drop(index=odd)[["orig_height", "orig_width"]] == 16).all().all()
    assert scores["flag_odd_size"].tolist() == [i in odd for i in range(22)]   # CleanVision sees the original sizes
    from utils.score import load_input
    assert load_input(str(tmp_path), with_sizes=True)[4].tolist() == sizes.tolist()


def test_a_list_of_differently_sized_arrays_is_scored():
    rng = np.random.default_rng(1)
    images = [rng.random((12, 12), dtype=np.float32) for _ in range(20)] + [rng.random((20, 8), dtype=np.float32)]
    scores = score_dataset(images, config=TINY, families=("pixels",))
    assert len(scores) == 21 and scores.loc[20, ["orig_height", "orig_width"]].tolist() == [20, 8]
    same = score_dataset(images[:20], config=TINY, families=("pixels",))
    assert "orig_height" not in same                                 # nothing resized: no size columns
    hwc = [rng.integers(0, 256, (10, 10, 3), dtype=np.uint8) for _ in range(15)] + [rng.random((3, 14, 14))]
    assert len(score_dataset(hwc, config=TINY, families=("pixels",))) == 16


def test_huge_images_are_downscaled_before_any_statistic(tmp_path):
    """The bug this replaces: 16 images of 4000 x 4000 ran out of memory in the pixel statistics."""
    from utils.data.datasets import MAX_SIDE
    ramp = (np.add.outer(np.arange(4000), np.arange(3000)) % 256).astype(np.uint8)   # compresses: a fast file
    for i in range(16):
        Image.fromarray(np.roll(ramp, i, axis=1)).save(tmp_path / f"{i:02d}.png", compress_level=1)
    x, _, _, sizes = load_image_folder(tmp_path, with_sizes=True)
    assert x.shape == (16, 1, MAX_SIDE, 192) and (sizes == [4000, 3000]).all()
    big = torch.rand(16, 1, 600, 300)
    scores = score_dataset(big, config=TINY, families=("pixels",))
    assert (scores["orig_height"] == 600).all() and (scores["orig_width"] == 300).all()


def test_a_symlinked_class_folder_is_followed_and_pgm_ppm_files_are_read(tmp_path):
    """The bugs this replaces: a class folder that is a symlink was silently dropped, and .pgm / .ppm skipped."""
    rng = np.random.default_rng(2)
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / "data" / "a" / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / "elsewhere" / f"{i}.pgm")
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "data" / "a" / "c.ppm")
    (tmp_path / "data" / "b").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere" / "loop").symlink_to(tmp_path / "elsewhere", target_is_directory=True)   # no endless walk
    x, labels, names = load_image_folder(tmp_path / "data")
    assert names == ["a/0.png", "a/1.png", "a/2.png", "a/c.ppm", "b/0.pgm", "b/1.pgm", "b/2.pgm"]
    assert labels.tolist() == [0, 0, 0, 0, 1, 1, 1] and x.shape == (7, 3, 8, 8)
    np.testing.assert_allclose(x[4, 0].numpy(), np.asarray(Image.open(tmp_path / "elsewhere" / "0.pgm")) / 255,
                               atol=1e-6)


def test_an_unreadable_class_folder_is_named_not_dropped(tmp_path, monkeypatch):
    import os

    import utils.data.datasets as datasets
    _folder_of_sizes(tmp_path, {"a": [(8, 8)] * 3, "b": [(8, 8)] * 3})
    real = os.scandir

    def scandir(path):     # what chmod 000 does to a non-root user (the tests may run as root)
        if Path(path).name == "b":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(datasets.os, "scandir", scandir)
    with pytest.raises(ValueError) as e:
        load_image_folder(tmp_path)
    assert _one_sentence(e) == (f"Cannot read {tmp_path / 'b'} (Permission denied) under {tmp_path}; make them "
                                "readable, or move them out of the folder.")


def test_channels_last_rgba_arrays_are_understood_and_ambiguous_shapes_refused():
    """The bug this replaces: [N, 32, 32, 4] was read as 32-channel images of 32 x 4 pixels."""
    rgba = np.random.default_rng(3).integers(0, 256, (24, 32, 32, 4), dtype=np.uint8)
    a = score_dataset(rgba, config=TINY, families=("pixels",))
    b = score_dataset(torch.from_numpy(rgba).permute(0, 3, 1, 2) / 255.0, config=TINY, families=("pixels",))
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ValueError) as e:
        score_dataset(np.zeros((24, 3, 32, 3), np.float32), config=TINY, families=("pixels",))
    assert "ambiguous" in _one_sentence(e)


def test_ids_beyond_int64_are_refused_not_wrapped():
    """The bug this replaces: uint64 ids >= 2**63 became negative numbers."""
    x = torch.rand(40, 1, 8, 8)
    with pytest.raises(ValueError) as e:
        score_dataset(x, ids=np.arange(40, dtype=np.uint64) + np.uint64(2 ** 63), config=TINY, families=("pixels",))
    assert _one_sentence(e).startswith("sample id 9223372036854775808 does not fit a 64-bit signed integer")
    big = np.arange(40, dtype=np.uint64) + np.uint64(2 ** 63 - 41)      # the largest that fit are kept exactly
    assert score_dataset(x, ids=big, config=TINY, families=("pixels",)).index.tolist() == big.tolist()


def test_a_negative_stride_view_and_a_tensor_with_grad_are_scored():
    """The bugs this replaces: a negative-stride numpy view and a tensor with requires_grad crashed."""
    x = torch.rand(40, 1, 8, 8)
    base = score_dataset(x.flip(0), config=TINY, families=("pixels",))
    pd.testing.assert_frame_equal(score_dataset(x.numpy()[::-1], config=TINY, families=("pixels",)), base)
    pd.testing.assert_frame_equal(score_dataset(x.flip(0).requires_grad_(), config=TINY, families=("pixels",)), base)


def test_a_seed_beyond_32_bits_is_refused_up_front():
    """The bug this replaces: seed=2**32 crashed in scikit-learn's KMeans after other steps had run."""
    with pytest.raises(ValueError) as e:
        ScoringConfig(seed=2 ** 32)
    assert _one_sentence(e).startswith("seed must be below 2**32")


def test_labels_of_one_class_other_than_0_are_refused_up_front():
    """The bug this replaces: all labels 3 gave num_classes 4, passed the check and failed after the K-fold pass."""
    with pytest.raises(ValueError) as e:
        score_dataset(torch.rand(40, 1, 16, 16), np.full(40, 3), config=TINY, families=("pixels", "supervised"))
    assert _one_sentence(e).startswith("Every label is class 3")


def test_an_image_over_the_decompression_bomb_limit_is_named(tmp_path, monkeypatch):
    from PIL import Image as PILImage
    _folder_of_sizes(tmp_path, {"a": [(8, 8)] * 3, "b": [(64, 64)]})
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)          # 64 x 64 = 4096 > 2 x 1000: PIL refuses it
    with pytest.raises(ValueError) as e:
        load_image_folder(tmp_path)
    assert _one_sentence(e).startswith(f"The image {tmp_path / 'b' / '00.png'} is over PIL's decompression-bomb limit")


def test_a_truncated_or_empty_cache_file_is_recomputed_and_named(tmp_path):
    """The bug this replaces: a truncated cached Parquet file or an empty cached JSON (a write killed by an older
    version, a full disk) crashed every later call on that folder."""
    from utils.engine import cache
    x = torch.rand(40, 1, 8, 8)
    first = score_dataset(x, config=TINY, families=("pixels",), folder=tmp_path)
    table = tmp_path / "scores_pixels.parquet"
    table.write_bytes(table.read_bytes()[:100])
    with pytest.warns(UserWarning, match=f"{table} is empty or cut short .*treating it as absent and recomputing"):
        again = score_dataset(x, config=TINY, families=("pixels",), folder=tmp_path)
    assert "pixels" in again.attrs["fresh"]
    pd.testing.assert_frame_equal(again, first)
    (tmp_path / "scores_image_checks.json").write_text("")
    with pytest.warns(UserWarning, match="scores_image_checks.json is empty or cut short"):
        again = score_dataset(x, config=TINY, families=("pixels",), folder=tmp_path)
    assert again.attrs["fresh"] == ["image_checks"]
    pd.testing.assert_frame_equal(again, first)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "settings.json").write_text('{"a": ')
    with pytest.warns(UserWarning, match="settings.json is empty or cut short"):
        cache.check_settings(tmp_path / "run", {"a": 1})
    assert cache.saved_settings(tmp_path / "run") == {"a": 1}


def test_one_family_as_a_string_and_a_config_dict_are_understood():
    """The bugs this replaces: families="pixels" was split into letters; config={...} gave an AttributeError."""
    x = torch.rand(40, 1, 8, 8)
    base = score_dataset(x, config=TINY, families=("pixels",))
    pd.testing.assert_frame_equal(score_dataset(x, config=TINY, families="pixels"), base)
    pd.testing.assert_frame_equal(score_dataset(x, config=TINY.to_dict(), families=("pixels",)), base)
    with pytest.raises(ValueError) as e:
        score_dataset(x, config={"epochz": 1}, families=("pixels",))
    assert _one_sentence(e).startswith("config names a field ScoringConfig does not have")


def test_16_bit_arrays_are_scaled_by_65535():
    """The bug this replaces: uint16 arrays were refused with 'divide 8-bit images by 255'."""
    deep = np.random.default_rng(4).integers(0, 65536, (40, 1, 8, 8)).astype(np.uint16)
    pd.testing.assert_frame_equal(score_dataset(deep, config=TINY, families=("pixels",)),
                                  score_dataset(torch.from_numpy(deep / 65535.0).float(), config=TINY,
                                                families=("pixels",)))


def test_the_same_samples_in_another_order_reuse_the_cache(tmp_path):
    """The bug this replaces: the data description was computed in input order, so its float64 sums (and the
    cache key) changed with the row order and the same images and ids were refused as 'other settings'."""
    x = torch.rand(3000, 3, 32, 32, generator=torch.Generator().manual_seed(5)) ** 3   # float64 sums round
    ids = np.arange(3000) * 3
    first = score_dataset(x, ids=ids, config=TINY, families=("pixels",), folder=tmp_path)
    perm = np.random.default_rng(6).permutation(3000)
    again = score_dataset(x[torch.from_numpy(perm)], ids=ids[perm], config=TINY, families=("pixels",),
                          folder=tmp_path)
    assert again.attrs["fresh"] == [] and again.index.tolist() == ids[perm].tolist()
    pd.testing.assert_frame_equal(again.loc[ids], first)


def test_a_bad_out_folder_is_refused_with_one_sentence_before_any_work(tmp_path, capsys):
    """The bugs this replaces: --out that is a file (or under one) printed an OS traceback after the scoring, and
    --out inside the image folder made the next run read its own report figures as images."""
    from utils.score import main
    (tmp_path / "imgs").mkdir()
    _folder_of_sizes(tmp_path / "imgs", {"a": [(8, 8)] * 6, "b": [(8, 8)] * 6})
    (tmp_path / "file.txt").write_text("x")
    cases = [(tmp_path / "file.txt", f"--out {tmp_path / 'file.txt'} is a file, not a folder; pass a folder"),
             (tmp_path / "file.txt" / "sub", f"--out {tmp_path / 'file.txt' / 'sub'} cannot be created ("),
             (tmp_path / "imgs" / "report", f"--out {tmp_path / 'imgs' / 'report'} is inside the image folder")]
    for out, start in cases:
        assert main([str(tmp_path / "imgs"), "--out", str(out), "--quiet", "--families", "pixels",
                     "--set", "folds=2"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {start}") and err.endswith(".") and "\n" not in err, err
    assert not (tmp_path / "imgs" / "report").exists()


def test_integer_arrays_of_0_and_1_are_still_scored_as_pixels():
    binary = np.random.default_rng(7).integers(0, 2, (40, 1, 8, 8))          # int64 ink masks
    pd.testing.assert_frame_equal(score_dataset(binary, config=TINY, families=("pixels",)),
                                  score_dataset(binary.astype(np.float32), config=TINY, families=("pixels",)))


def test_a_list_of_rgb_and_rgba_arrays_names_the_odd_ones():
    rng = np.random.default_rng(8)
    images = [rng.random((3, 10, 10)) for _ in range(20)] + [rng.random((10, 10, 4))]
    with pytest.raises(ValueError) as e:
        score_dataset(images, config=TINY, families=("pixels",))
    assert "(images [20] have 4)" in _one_sentence(e)


def test_a_folder_from_python_keeps_files_and_class_names_and_string_labels_are_class_names(tmp_path):
    """score_dataset(folder) puts each row's file and class name in the table (as the CLI does), and labels given
    as class names score as their sorted-name indices with the names kept."""
    from utils.scores.dataset import ScoringConfig, score_dataset
    rng = np.random.default_rng(0)
    for c in ("cat", "ant"):
        (tmp_path / "f" / c).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / "f" / c / f"{i:02d}.png")
    config = ScoringConfig(folds=2, epochs=0, ssft_epochs=0, ae_epochs=0, ae_ssft_epochs=0, bt_epochs=0)
    s = score_dataset(tmp_path / "f", config=config, families=("pixels",))
    assert s["file"].tolist()[:2] == ["ant/00.png", "ant/01.png"] and s["file"].iloc[-1] == "cat/11.png"
    assert s["class_name"].tolist() == ["ant"] * 12 + ["cat"] * 12 and s["label"].tolist() == [0] * 12 + [1] * 12
    images = np.stack([np.asarray(Image.open(tmp_path / "f" / f)) for f in s["file"]])
    names = np.array(["zebra", "ant", "zebra", "mole"] * 6)
    t = score_dataset(images, names, config=config, families=("pixels",))
    assert t["class_name"].tolist() == names.tolist()
    assert t["label"].tolist() == [{"ant": 0, "mole": 1, "zebra": 2}[n] for n in names]
    assert "file" not in t and "direction" in t.attrs
    u = score_dataset(images, t["label"].to_numpy(), config=config, families=("pixels",))
    pd.testing.assert_frame_equal(t.drop(columns="class_name"), u)


def test_negative_stride_labels_and_a_label_column_are_scored():
    """The bug this replaces: labels given as a negative-stride numpy view were refused with torch's message."""
    x, y = torch.rand(40, 1, 8, 8), np.arange(40) % 4
    base = score_dataset(x, y, config=TINY, families=("pixels",))
    reversed_ = score_dataset(x.numpy()[::-1], y[::-1], ids=np.arange(40)[::-1], config=TINY, families=("pixels",))
    pd.testing.assert_frame_equal(reversed_.sort_index(), base)
    pd.testing.assert_frame_equal(score_dataset(x, y[:, None], config=TINY, families=("pixels",)), base)


def test_images_that_are_not_real_pixel_numbers_are_refused_with_one_sentence():
    """The bugs this replaces: images=None crashed with torch's TypeError; complex images were scored silently."""
    for bad in (None, torch.rand(40, 1, 8, 8, dtype=torch.complex64), np.zeros((40, 1, 8, 8), np.complex64)):
        with pytest.raises(ValueError) as e:
            score_dataset(bad, config=TINY, families=("pixels",))
        assert _one_sentence(e).startswith(("images must be real pixel values", "images are complex"))


def test_the_image_count_is_checked_against_the_setting_that_needs_it():
    """The bugs this replaces: folds=20 on 40 images refused pixel-only scoring (which has no folds) as "too few
    images" without naming folds; 8 images passed the check and crashed in k-means (clusters=10)."""
    x, y = torch.rand(40, 1, 8, 8), np.arange(40) % 4
    assert len(score_dataset(x, y, config=ScoringConfig(folds=20), families=("pixels",))) == 40
    with pytest.raises(ValueError) as e:
        score_dataset(x, y, config=ScoringConfig(folds=20, epochs=1, el2n_epoch=0), families=("supervised",))
    assert _one_sentence(e).startswith("40 images are too few for folds=20 (4 images per fold)")
    with pytest.raises(ValueError) as e:
        score_dataset(x[:8], config=ScoringConfig(folds=2), families=("pixels",))
    assert _one_sentence(e).startswith("8 images are too few for clusters=10")


def test_one_class_labels_give_label_free_scores_and_say_how_when_a_classifier_is_asked_for():
    """The bugs this replaces: labels all 0 refused even pixel-only scoring (all 3 did not), and the refusal advised
    labels=None, which a folder or the command line cannot pass."""
    x = torch.rand(40, 1, 8, 8)
    zero = score_dataset(x, np.zeros(40, np.int64), config=TINY, families=("pixels",))
    assert (zero["label"] == 0).all() and len(zero) == 40
    with pytest.raises(ValueError) as e:
        score_dataset(x, np.zeros(40, np.int64), config=TINY, families=("supervised",))
    assert "the images in the folder itself" in _one_sentence(e)


def test_a_cache_folder_that_is_a_file_and_features_with_nan_are_named(tmp_path):
    """The bugs this replaces: a cache folder that is a file crashed with FileExistsError; features holding NaN were
    refused with a sentence about their shape."""
    x = torch.rand(40, 1, 8, 8)
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError) as e:
        score_dataset(x, config=TINY, families=("pixels",), folder=tmp_path / "f")
    assert _one_sentence(e) == (f"The cache folder {tmp_path / 'f'} is a file; pass a folder (it is created when "
                                "missing).")
    z = np.zeros((40, 3))
    z[7, 1] = np.nan
    with pytest.raises(ValueError) as e:
        score_dataset(x, config=TINY, families=("self-supervised",), features=z)
    assert _one_sentence(e).startswith("features hold 1 non-finite values (NaN or inf), in rows [7]")


def test_float_and_32_bit_tiffs_out_of_range_or_with_nan_are_named(tmp_path):
    """The bug this replaces: a 0..255 float TIFF, a float TIFF holding NaN and a 32-bit integer TIFF over 65535 were
    refused by the pixel-range check without naming the file."""
    digit = np.asarray(load_dataset("mnist-5k", "test")[0][0, 0] * 255, dtype=np.float32)
    nan = digit / 255
    nan[3, 3] = np.nan
    cases = {"f255.tif": (Image.fromarray(digit, mode="F"), "holds floats 0..255, but float images are read as stored"),
             "nan.tif": (Image.fromarray(nan, mode="F"), "holds 1 non-finite pixels (NaN or inf)"),
             "i32.tif": (Image.fromarray(digit.astype(np.int32) * 1000, mode="I"), "holds integers 0..255000")}
    for name, (im, what) in cases.items():
        im.save(tmp_path / name)
        with pytest.raises(ValueError) as e:
            read_image(tmp_path / name)
        assert _one_sentence(e).startswith(f"The image {tmp_path / name} {what}")
    Image.fromarray(digit / 255, mode="F").save(tmp_path / "ok.tif")
    assert np.array_equal(read_image(tmp_path / "ok.tif"), digit / 255)      # floats in [0, 1]: read as stored


def test_the_probe_classifies_outcomes_and_a_subset_of_its_cases_finds_nothing_wrong():
    """benchmarks/probe_inputs.py (the bad-input probe of the issue): its classification of outcomes, and a fast
    subset of its cases (the whole probe takes about a minute: python -m benchmarks.probe_inputs)."""
    import io

    from benchmarks import probe_inputs as P

    def crash(tmp):
        raise KeyError("stat_mean")

    def two_lines(tmp):
        raise ValueError("first line.\nsecond line.")

    made_up = [P.Case("scored though bad", lambda tmp: "40 rows", "refuse"), P.Case("crash", crash),
               P.Case("unclear", two_lines, "refuse"),
               P.Case("unnamed", lambda tmp: P.tiny(seed=-1), "refuse", "x.png"),
               P.Case("refused, expected a result", lambda tmp: P.tiny(seed=-1)),
               P.Case("wrong result", lambda tmp: P.need(False, "3 rows for 40 images"))]
    table = P.probe(made_up, out=io.StringIO())
    assert table["outcome"].tolist() == ["silent", "crash", "crash", "crash", "refused (wrong)", "silent"]
    keys = ("uint16 array", "negative-stride", "requires_grad", "NaN pixel", "uint64 ids", "float labels",
            "seed=2**32", "families='supervised'", "folds=20 on 40 images (pixels", "features with NaN",
            "0..255 float TIFF", "mostly exact copies", "--labels CSV empty", "--keep-score of a family",
            "--out is a file")
    cases = [c for c in P.CASES if c.name.startswith(keys) or any(k in c.name for k in keys)]
    assert len(cases) == len(keys)
    out = io.StringIO()
    table = P.probe(cases, out=out)
    assert table["outcome"].isin(["ok", "refused"]).all(), out.getvalue()
    assert (table["outcome"] == "refused").tolist() == [c.expect == "refuse" for c in cases]
    assert f"{len(cases)} cases: " in out.getvalue()
