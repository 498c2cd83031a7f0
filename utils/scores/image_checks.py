"""The image checks Datalab users expect, through CleanVision (cleanlab's library for image datasets): dark, light,
low-information, blurry, odd size, odd aspect ratio and exact-duplicate images, each with CleanVision's own
documented thresholds (not tuned here).

:func:`image_checks` hands the images to ``cleanvision.Imagelab`` as 8-bit PIL images (the way CleanVision reads
files) and returns, per sample id, its ``flag_<check>`` columns and ``<check>_score`` columns (CleanVision's
scores: low = more of an issue). Its grayscale check is left out (a grayscale dataset is not an issue), and its
hash-based near-duplicates too (the pixel and embedding distances of :mod:`utils.scores.geometry` are the
toolkit's near-duplicate scores). CleanVision's thresholds were chosen on natural photographs: on MNIST-like digits
its low-information check fires on most images, which the report states as it is.

CleanVision's progress bars (tqdm, which its API cannot turn off: ``verbose=False`` only stops them staying on
screen) are shown only with ``progress=True``, and whatever it prints goes to stderr, never to stdout.
"""
from __future__ import annotations

import contextlib
import sys

import numpy as np
import pandas as pd

CHECKS = ("dark", "light", "low_information", "blurry", "odd_size", "odd_aspect_ratio", "exact_duplicates")


@contextlib.contextmanager
def cleanvision_output(progress: bool):
    """CleanVision's printed text on stderr, and its tqdm bars (its issue managers' module-level ``tqdm``) disabled
    unless ``progress``."""
    import functools
    import importlib

    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.redirect_stdout(sys.stderr))
        if not progress:
            for name in ("image_property_issue_manager", "duplicate_issue_manager"):
                module = importlib.import_module(f"cleanvision.issue_managers.{name}")
                bar = getattr(module, "tqdm", None)
                if bar is not None:
                    stack.callback(setattr, module, "tqdm", bar)
                    module.tqdm = functools.partial(bar, disable=True)
        yield


def image_checks(images, ids=None, sizes=None, progress: bool = False) -> pd.DataFrame:
    """CleanVision's checks of ``images`` ``[N, C, H, W]`` in [0, 1] (C = 1 or 3), one row per sample id.

    ``sizes``: the original ``(height, width)`` ``[N, 2]`` of images resized to one size before scoring; the
    odd-size and odd-aspect-ratio checks are then CleanVision's on images of those sizes (the others on the pixels
    scored). ``progress``: CleanVision's own progress bars (off by default)."""
    import logging

    import torch
    from cleanvision import Imagelab
    from PIL import Image

    x = np.asarray(images.detach().cpu() if isinstance(images, torch.Tensor) else images)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"image checks need images [N, 1 or 3, H, W], got shape {list(x.shape)}.")
    pixels = np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)

    class Dataset(torch.utils.data.Dataset):   # what Imagelab(torchvision_dataset=...) reads: (PIL image, target)
        def __len__(self):
            return len(pixels)

        def __getitem__(self, i):
            im = pixels[i, 0] if pixels.shape[1] == 1 else pixels[i].transpose(1, 2, 0)
            return Image.fromarray(im), 0

    logging.getLogger("cleanvision").setLevel(logging.ERROR)
    with cleanvision_output(progress):
        lab = Imagelab(torchvision_dataset=Dataset(), verbose=False)
        lab.find_issues({c: {} for c in CHECKS}, n_jobs=1, verbose=False)
    issues = lab.issues.reset_index(drop=True)
    if sizes is not None:
        sizes = np.asarray(sizes, dtype=np.int64).reshape(len(x), 2)

        class Sizes(torch.utils.data.Dataset):   # blank images of the original sizes: CleanVision reads .size only
            def __len__(self):
                return len(sizes)

            def __getitem__(self, i):
                return Image.new("L", (int(sizes[i, 1]), int(sizes[i, 0]))), 0

        shape_checks = ("odd_size", "odd_aspect_ratio")
        with cleanvision_output(progress):
            lab = Imagelab(torchvision_dataset=Sizes(), verbose=False)
            lab.find_issues({c: {} for c in shape_checks}, n_jobs=1, verbose=False)
        original = lab.issues.reset_index(drop=True)
        for c in shape_checks:
            issues[f"is_{c}_issue"], issues[f"{c}_score"] = original[f"is_{c}_issue"], original[f"{c}_score"]
    out = pd.DataFrame({**{f"flag_{c}": issues[f"is_{c}_issue"].to_numpy(bool) for c in CHECKS},
                        **{f"{c}_score": issues[f"{c}_score"].to_numpy(float) for c in CHECKS}})
    out.index = pd.Index(np.arange(len(x)) if ids is None else np.asarray(ids), name="sample_id")
    return out
