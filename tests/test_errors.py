"""A learner's mistake gets an error that names the problem and the fix."""

import pytest
import torch

import resnet_course as rc


@pytest.mark.parametrize(
    "layers",
    [[2, 2, 2], [2, 2, 2, 0], [2, 2, 2, -1], "2222", [2.0, 2, 2, 2], [True, 2, 2, 2], 4, None],
)
def test_layers_must_be_four_positive_ints(layers):
    with pytest.raises(ValueError, match=r"layers must be four positive integers.*\[2, 2, 2, 2\]"):
        rc.ResNet(rc.BasicBlock, layers)


def test_block_must_be_a_class():
    with pytest.raises(TypeError, match="block class"):
        rc.ResNet(rc.BasicBlock(64, 64), [2, 2, 2, 2])
    with pytest.raises(TypeError, match="block class"):
        rc.ResNet([2, 2, 2, 2], rc.BasicBlock)


@pytest.mark.parametrize("num_classes", [0, -3, 2.5])
def test_num_classes_must_be_positive(num_classes):
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        rc.resnet18(num_classes=num_classes)
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        rc.resnet20(num_classes=num_classes)


@pytest.mark.parametrize("depth", [18, 51, 2, 0, 21.0])
def test_cifar_depth_must_be_6n_plus_2(depth):
    with pytest.raises(ValueError, match=r"depth must be 6n \+ 2.*20, 32, 44, 56, 110"):
        rc.CifarResNet(depth)


@pytest.mark.parametrize("shortcut", ["C", "a", None, "projection"])
def test_unknown_shortcut_option(shortcut):
    with pytest.raises(ValueError, match="shortcut must be 'A'.*'B'.*'none'"):
        rc.CifarResNet(20, shortcut=shortcut)


def test_basic_block_rejects_groups():
    with pytest.raises(ValueError, match="use Bottleneck"):
        rc.BasicBlock(64, 64, groups=32)


@pytest.mark.parametrize(
    "model", [rc.resnet18(num_classes=10), rc.resnet20()], ids=["resnet18", "resnet20"]
)
class TestForwardInput:
    def test_single_image_without_batch_dimension(self, model):
        with pytest.raises(ValueError, match=r"\(N, 3, H, W\).*\(3, 32, 32\).*unsqueeze\(0\)"):
            model(torch.randn(3, 32, 32))

    def test_wrong_rank(self, model):
        with pytest.raises(ValueError, match=r"\(N, 3, H, W\).*2 dimensions.*\(8, 3072\)"):
            model(torch.randn(8, 3072))

    def test_grayscale(self, model):
        with pytest.raises(
            ValueError, match=r"\(N, 3, H, W\).*got 1 channels.*\(8, 1, 28, 28\).*expand"
        ):
            model(torch.randn(8, 1, 28, 28))

    def test_channels_last_layout(self, model):
        with pytest.raises(
            ValueError, match=r"got 32 channels.*\(8, 32, 32, 3\).*permute\(0, 3, 1, 2\)"
        ):
            model(torch.randn(8, 32, 32, 3))
