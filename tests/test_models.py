"""Every network of utils.engine.models: the seed's exact layers on 1x28x28, sized from the data elsewhere."""
import hashlib

import pytest
import torch
from torch import nn

from utils.engine.models import (
    CLASSIFIERS,
    Autoencoder,
    BarlowTwins,
    LeNet,
    SmallCNN,
    backbone_features,
    conv_backbone,
    count_parameters,
    make_classifier,
)

MODELS = {"autoencoder": Autoencoder, "cnn": SmallCNN, "lenet": LeNet, "barlow_twins": BarlowTwins}


def _old_autoencoder(latent=10, dropout=0.1):
    """The autoencoder as defined before it was sized from the data (28x28, one channel), layer for layer."""
    conv = lambda cin, cout: nn.Conv2d(cin, cout, kernel_size=3, padding=1)  # noqa: E731
    enc, dec = nn.Module(), nn.Module()
    enc.features = nn.Sequential(nn.Dropout(dropout), conv(1, 8), nn.MaxPool2d(2), nn.ReLU(),
                                 nn.Dropout(dropout), conv(8, 16), nn.MaxPool2d(2), nn.ReLU(),
                                 nn.Dropout(dropout), conv(16, 32), nn.MaxPool2d(2), nn.ReLU())
    enc.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 3 * 3, 128), nn.ReLU(), nn.Linear(128, latent), nn.Sigmoid())
    dec.head = nn.Sequential(nn.Linear(latent, 128), nn.ReLU(), nn.Linear(128, 32 * 7 * 7), nn.ReLU(),
                             nn.Unflatten(1, (32, 7, 7)))
    dec.body = nn.Sequential(conv(32, 16), nn.Upsample(scale_factor=2), nn.ReLU(),
                             conv(16, 8), nn.Upsample(scale_factor=2), nn.ReLU(), conv(8, 1))
    ae = nn.Module()
    ae.encoder, ae.decoder = enc, dec
    return ae


def _state_sha(model):
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.contiguous().numpy().tobytes())
    return h.hexdigest()


def test_seed_autoencoder_has_253707_parameters():
    model = Autoencoder(latent=10)
    assert count_parameters(model) == 253_707
    assert count_parameters(model.encoder) == 44_170
    assert count_parameters(model.decoder) == 209_537


def test_autoencoder_init_is_the_old_definitions_draw_for_draw():
    torch.manual_seed(0)
    old = _old_autoencoder()
    torch.manual_seed(0)
    new = Autoencoder()
    assert list(old.state_dict()) == list(new.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(old.state_dict().values(), new.state_dict().values()))
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    old.eval(), new.eval()
    recon, z = new(x)
    assert torch.equal(z, old.encoder.head(old.encoder.features(x)))
    assert torch.equal(recon, old.decoder.body(old.decoder.head(z)))


@pytest.mark.parametrize("name, sha", [  # state_dict checksums at torch.manual_seed(0), from the code before the move
    ("autoencoder", "7f55c5be6479689d3af3d31ce2592a4953d3cc924a6a0695c53df77cb62c8cab"),
    ("cnn", "2bc3e2f337f481ca873ddcd21f04884264c92f946962f7d8ece8368fe0d1fced"),
    ("lenet", "5930b811430c309847cbdbcbd83eaf2dbe21ce1ff997b0d9d5dd5049a7818e4f"),
    ("barlow_twins", "9a3468e571e9782a8f973e40b6c8f87e00426db85ad003dd2e029a62982f502a"),
])
def test_default_models_initialise_as_before(name, sha):
    torch.manual_seed(0)
    assert _state_sha(MODELS[name]()) == sha


def test_latent_size_is_configurable_and_code_is_sigmoid():
    model = Autoencoder(latent=4).eval()
    recon, z = model(torch.randn(3, 1, 28, 28))
    assert recon.shape == (3, 1, 28, 28) and z.shape == (3, 4)
    assert bool(((z > 0) & (z < 1)).all())


@pytest.mark.parametrize("model, expected", [(SmallCNN, 225_226), (LeNet, 3_274_634), (BarlowTwins, 2_172_980),
                                             (Autoencoder, 253_707)])
def test_parameter_counts(model, expected):
    assert count_parameters(model()) == expected
    assert count_parameters(model(shape=(1, 28, 28))) == expected


def test_backbone_is_shared_and_sized():
    assert count_parameters(conv_backbone()) == 19_008
    assert conv_backbone()(torch.zeros(2, 1, 28, 28)).shape == (2, 1600)
    assert backbone_features((1, 28, 28)) == 1600
    assert conv_backbone(3)(torch.zeros(2, 3, 32, 32)).shape == (2, backbone_features((3, 32, 32))) == (2, 2304)


def test_outputs_and_bad_input():
    x = torch.zeros(3, 1, 28, 28)
    assert SmallCNN()(x).shape == (3, 10) and LeNet()(x).shape == (3, 10)
    assert BarlowTwins().eval()(x).shape == (3, 500)
    with pytest.raises(ValueError, match=r"\[N, 1, 28, 28\]"):
        SmallCNN()(torch.zeros(3, 3, 32, 32))
    with pytest.raises(ValueError, match="Unknown classifier"):
        make_classifier("resnet")


@pytest.mark.parametrize("num_classes", [10, 7])
@pytest.mark.parametrize("name", ["cnn", "lenet", "resnet18"])
def test_classifiers_on_colour_images(name, num_classes):
    torch.manual_seed(0)
    model = make_classifier(name, shape=(3, 32, 32), num_classes=num_classes)
    assert isinstance(model, CLASSIFIERS[name]) and model.shape == (3, 32, 32)
    x = torch.rand(4, 3, 32, 32)
    out = model(x)
    assert out.shape == (4, num_classes)
    nn.functional.cross_entropy(out, torch.arange(4) % num_classes).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()  # channels_last input and weights give the same answer
    cl = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(cl, model(x.contiguous()), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 32, 32), (3, 30, 30), (1, 29, 31), (2, 8, 12)])
def test_autoencoder_on_other_shapes(shape):
    model = Autoencoder(shape=shape, latent=6)
    x = torch.rand(2, *shape)
    recon, z = model(x)
    assert recon.shape == (2, *shape) and z.shape == (2, 6)
    nn.functional.mse_loss(recon, x).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_autoencoder_crops_the_centre():
    model = Autoencoder(shape=(1, 30, 26)).eval()
    z = torch.rand(2, 10)
    full = model.decoder.body(model.decoder.head(z))  # 32 x 28 before the crop
    assert full.shape[-2:] == (32, 28)
    assert torch.equal(model.decoder(z), full[..., 1:31, 1:27])


@pytest.mark.parametrize("num_classes", [10, 7])
def test_barlow_twins_on_colour_images(num_classes):  # num_classes does not apply: the projection size does
    model = BarlowTwins(shape=(3, 32, 32), proj_dim=num_classes * 8)
    x = torch.rand(4, 3, 32, 32)
    assert model.features(x).shape == (4, 2304)
    z = model(x)
    assert z.shape == (4, num_classes * 8)
    z.pow(2).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def one_sentence(excinfo):
    msg = str(excinfo.value)
    return msg.endswith(".") and "\n" not in msg and msg.count(". ") == 0


@pytest.mark.parametrize("name", list(MODELS))
def test_wrong_shape_is_a_clear_error(name):
    model = MODELS[name]()
    with pytest.raises(ValueError) as e:
        model(torch.randn(4, 3, 32, 32))
    assert str(e.value) == (f"{type(model).__name__} was built for images [N, 1, 28, 28], got [4, 3, 32, 32]; "
                            "build it with shape=(3, 32, 32).")
    with pytest.raises(ValueError, match=r"\[N, 1, 28, 28\], got \[1, 28, 28\]; pass a batch") as e:
        model(torch.randn(1, 28, 28))
    assert one_sentence(e)


@pytest.mark.parametrize("model, shape, smallest", [(SmallCNN, (1, 9, 9), 10), (BarlowTwins, (3, 32, 9), 10),
                                                    (LeNet, (1, 3, 28), 4), (Autoencoder, (1, 7, 7), 8)])
def test_too_small_images_are_refused_at_construction(model, shape, smallest):
    with pytest.raises(ValueError, match=f"at least {smallest}x{smallest} pixels") as e:
        model(shape=shape)
    assert one_sentence(e)
    model(shape=(shape[0], smallest, smallest))  # the smallest works


@pytest.mark.parametrize("shape", [10, (28, 28), (1, 0, 28), (1.5, 28, 28), "abc"])
def test_bad_shape_is_a_clear_error(shape):
    with pytest.raises(ValueError, match="shape must be three positive integers") as e:
        SmallCNN(shape=shape)
    assert one_sentence(e)


def test_unknown_classifier_lists_the_choices():
    with pytest.raises(ValueError) as e:
        make_classifier("x")
    assert str(e.value) == "Unknown classifier 'x': choose one of cnn, lenet, resnet18."


def test_resnet18_is_torchvisions_with_a_small_image_stem():
    from torchvision.models import resnet18
    model = make_classifier("resnet18", shape=(1, 28, 28))
    reference = resnet18(weights=None, num_classes=10)
    ours = {k: v.shape for k, v in model.net.state_dict().items()}
    theirs = {k: v.shape for k, v in reference.state_dict().items()}
    assert ours.keys() == theirs.keys()
    assert {k for k in ours if ours[k] != theirs[k]} == {"conv1.weight"}   # 3x3 on one channel instead of 7x7 on 3
    assert model.net.conv1.stride == (1, 1) and isinstance(model.net.maxpool, nn.Identity)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="ResNet18 needs images of at least 8x8"):
        make_classifier("resnet18", shape=(1, 6, 6))
