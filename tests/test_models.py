import pytest
import torch

from utils.models import Autoencoder, count_parameters


def test_seed_autoencoder_has_253707_parameters():
    model = Autoencoder(latent=10)
    assert count_parameters(model) == 253_707
    assert count_parameters(model.encoder) == 44_170
    assert count_parameters(model.decoder) == 209_537


def test_latent_size_is_configurable_and_code_is_sigmoid():
    model = Autoencoder(latent=4).eval()
    recon, z = model(torch.randn(3, 1, 28, 28))
    assert recon.shape == (3, 1, 28, 28) and z.shape == (3, 4)
    assert bool(((z > 0) & (z < 1)).all())


def test_wrong_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\[N, 1, 28, 28\]"):
        Autoencoder()(torch.randn(2, 3, 32, 32))
