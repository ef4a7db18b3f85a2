"""resnet_course.measure: counts checked against formulas, torchvision and the paper."""

import pytest
import torch
import torchvision
from torch import nn

from resnet_course import BasicBlock, Bottleneck, resnet18, resnet20, resnet50
from resnet_course.layers import conv1x1, conv3x3
from resnet_course.measure import assert_same, count_macs, count_params, macs_by_layer


def test_count_params_counts_parameters_not_buffers():
    layer = nn.Sequential(conv3x3(64, 64), nn.BatchNorm2d(64))
    assert count_params(layer) == 64 * 64 * 9 + 2 * 64  # running_mean/var are buffers
    assert count_params(resnet18()) == 11_689_512  # torchvision's documented count


def test_macs_of_one_convolution_follow_the_formula():
    assert count_macs(conv3x3(64, 64), (64, 56, 56)) == 64 * 64 * 9 * 56 * 56
    assert count_macs(conv1x1(64, 128, stride=2), (64, 56, 56)) == 64 * 128 * 28 * 28
    grouped = conv3x3(128, 128, groups=32)
    assert count_macs(grouped, (128, 14, 14)) == 128 * 128 * 9 // 32 * 14 * 14
    assert count_macs(nn.Linear(512, 10), torch.zeros(4, 512)) == 5120  # per image, not per batch


def test_macs_by_layer_names_every_conv_and_linear_in_order():
    block = Bottleneck(256, 64)
    macs = macs_by_layer(block, (256, 56, 56))
    assert list(macs) == ["conv1", "conv2", "conv3"]
    assert macs["conv2"] == 64 * 64 * 9 * 56 * 56


@pytest.mark.parametrize(
    "make, size, paper", [(resnet18, 224, 1.8), (resnet50, 224, 4.1), (resnet20, 32, 0.041)]
)
def test_count_macs_of_whole_networks(make, size, paper):
    # ResNet-18 matches the paper's 1.8 G; ResNet-50 v1.5 is 4.1 G (the paper's v1: 3.8 G);
    # ResNet-20: 40.8 M multiply-adds.
    with torch.device("meta"):
        model = make()
    assert round(count_macs(model, (3, size, size)) / 1e9, 3 if paper < 1 else 1) == paper


def test_count_macs_restores_modes_and_accepts_meta():
    model = resnet18()
    model.train()
    model.layer1.eval()
    count_macs(model, (3, 32, 32))
    assert model.training and not model.layer1.training and model.layer2.training


def test_count_macs_rejects_a_wrong_input_with_the_fix():
    with pytest.raises(TypeError, match=r"input tensor or the shape of one input"):
        count_macs(resnet18(), 224)


def test_assert_same_passes_for_torchvision_and_copies_weights():
    ours, theirs = resnet18(), torchvision.models.resnet18()
    assert_same(ours, theirs, torch.randn(2, 3, 32, 32))
    assert all(
        torch.equal(a, b)
        for a, b in zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True)
    )


def test_assert_same_names_a_missing_key():
    with pytest.raises(AssertionError, match=r"only in ours: \['downsample"):
        projection = nn.Sequential(conv1x1(64, 128, 2), nn.BatchNorm2d(128))
        assert_same(
            BasicBlock(64, 128, 2, projection), BasicBlock(64, 128, 2), torch.randn(2, 64, 8, 8)
        )


def test_assert_same_names_a_shape_difference():
    with pytest.raises(AssertionError, match=r"conv1.weight has shape \(32, 64, 3, 3\) in ours"):
        assert_same(BasicBlock(64, 32), BasicBlock(64, 64), torch.randn(2, 64, 8, 8))


class ReluBeforeAdd(BasicBlock):
    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.relu(self.bn2(self.conv2(out))) + x)


class DifferentInEvalOnly(BasicBlock):
    def forward(self, x):
        out = super().forward(x)
        return out if self.training else out + 1


def test_assert_same_finds_a_different_forward_and_names_the_mode():
    x = torch.randn(2, 64, 8, 8)
    with pytest.raises(AssertionError, match="outputs differ in training mode"):
        assert_same(ReluBeforeAdd(64, 64), BasicBlock(64, 64), x)
    with pytest.raises(AssertionError, match="outputs differ in eval mode"):
        assert_same(DifferentInEvalOnly(64, 64), BasicBlock(64, 64), x)
