"""Parameter counts of the SSFT models match the seed's layer definitions (original-study.md §2.3-2.5)."""
import pytest
import torch

from utils.barlow_twins import BarlowTwins
from utils.classifiers import LeNet, SmallCNN, conv_backbone, make_classifier
from utils.models import count_parameters


@pytest.mark.parametrize("model, expected", [(SmallCNN, 225_226), (LeNet, 3_274_634), (BarlowTwins, 2_172_980)])
def test_parameter_counts(model, expected):
    assert count_parameters(model()) == expected


def test_backbone_is_shared_and_sized():
    assert count_parameters(conv_backbone()) == 19_008
    assert conv_backbone()(torch.zeros(2, 1, 28, 28)).shape == (2, 1600)


def test_outputs_and_bad_input():
    x = torch.zeros(3, 1, 28, 28)
    assert SmallCNN()(x).shape == (3, 10) and LeNet()(x).shape == (3, 10)
    assert BarlowTwins().eval()(x).shape == (3, 500)
    with pytest.raises(ValueError, match=r"\[N, 1, 28, 28\]"):
        SmallCNN()(torch.zeros(3, 3, 32, 32))
    with pytest.raises(ValueError, match="Unknown classifier"):
        make_classifier("resnet")
