"""Argument checks shared by every layer, kept apart from the algorithms (as cleanlab keeps its validation apart):
each refuses a bad value with one sentence that names the argument and what it got. In the bottom layer so that
any module may use it; it imports numpy only."""
from __future__ import annotations

import numpy as np


def is_integer(value) -> bool:
    """A Python or numpy integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A Python or numpy real number (integer or float), not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check_seed(seed) -> int:
    """``seed`` as an int when it is an integer in 0..2**32-1 (what ``numpy.random.default_rng`` takes alongside a
    stream name), else ValueError with one sentence."""
    if not is_integer(seed) or not 0 <= seed < 2 ** 32:
        raise ValueError(f"seed must be an integer in 0..2**32-1, got {seed!r}.")
    return int(seed)


def check_positive_int(value, name: str) -> int:
    """``value`` as an int when it is an integer >= 1, else ValueError with one sentence naming ``name``."""
    if not is_integer(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)
