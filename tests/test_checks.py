"""utils.metrics.checks: what counts as an integer or a number (never a bool), and the modules that use it refuse a
bool where they once took True for 1."""
import numpy as np
import pytest
import torch

from utils.metrics.checks import check_positive_int, is_integer, is_number


@pytest.mark.parametrize("value, integer, number", [
    (3, True, True), (np.int64(3), True, True), (np.uint8(0), True, True), (3.0, False, True),
    (np.float32(0.5), False, True), (True, False, False), (np.bool_(True), False, False), ("3", False, False),
    (None, False, False), (torch.tensor(3), False, False),
])
def test_integer_and_number_by_type(value, integer, number):
    assert is_integer(value) is integer and is_number(value) is number


def test_check_positive_int():
    assert check_positive_int(np.int32(4), "epochs") == 4 and type(check_positive_int(np.int32(4), "epochs")) is int
    for bad in (0, -2, 1.0, True, "1"):
        with pytest.raises(ValueError, match=r"^epochs must be a positive integer, got "):
            check_positive_int(bad, "epochs")


def test_a_bool_is_refused_where_a_count_or_a_number_is_asked():
    from utils.engine.recipes import get_recipe
    from utils.metrics.aggregates import scaled_epochs
    from utils.metrics.ssim import ssim
    from utils.studies.autoencoder import TrainConfig

    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        scaled_epochs(20, True)                       # was 1 epoch
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(ValueError, match="data_range=True must be a positive number"):
        ssim(x, x, data_range=True)                   # was a range of 1
    with pytest.raises(ValueError, match="lr must be a positive finite number"):
        get_recipe("paper", lr=True)                  # was lr 1
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        TrainConfig(epochs=True)                      # was 1 epoch
