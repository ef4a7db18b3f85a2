"""Our ImageNet ResNets are torchvision's to the bit: parameters, names, init, outputs, grads.

All five depths are checked for parameters, state_dict keys and seeded initialisation. Outputs and
gradients are compared for ResNet-18 and ResNet-50 only: ResNet-34, -101 and -152 run the same
code (the same blocks, ``_make_layer`` and ``forward``) with other block counts, so once their
modules and weights are shown equal, the two forward paths (BasicBlock, Bottleneck) at a small
and at the ImageNet input size cover every line they run.
"""

import pytest
import torch
import torchvision
from torch import nn

import resnet_course as rc

ARCHS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
PARAMS_1000 = [11_689_512, 21_797_672, 25_557_032, 44_549_160, 60_192_808]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def pair(arch: str, **kwargs) -> tuple[nn.Module, nn.Module]:
    """Ours and torchvision's, each built right after the same seed."""
    torch.manual_seed(0)
    ours = getattr(rc, arch)(**kwargs)
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, arch)(**kwargs)
    return ours, theirs


@pytest.mark.parametrize("arch, expected", list(zip(ARCHS, PARAMS_1000, strict=True)))
def test_parameter_count_1000_classes(arch, expected):
    assert n_params(getattr(rc, arch)()) == expected


@pytest.mark.parametrize("arch", ARCHS)
def test_state_dict_and_initialisation_match_torchvision(arch):
    ours, theirs = pair(arch)
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)  # same keys in the same order
    for key in a:
        assert a[key].shape == b[key].shape, key
        # Same construction order and same init calls: the seeded weights are bit-identical.
        assert torch.equal(a[key], b[key]), key
    # Strict loading both ways.
    ours.load_state_dict(theirs.state_dict(), strict=True)
    theirs.load_state_dict(ours.state_dict(), strict=True)


def test_initialisation_scheme():
    model = rc.resnet50()
    conv = model.layer2[0].conv2
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.05)
    bn = model.layer3[1].bn1
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    assert torch.all(model.layer1[0].bn3.weight == 1)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_zero_init_residual_matches_torchvision(arch):
    ours, theirs = pair(arch, zero_init_residual=True)
    for (k, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    last_bn = [
        m.bn2 if isinstance(m, rc.BasicBlock) else m.bn3
        for m in ours.modules()
        if isinstance(m, rc.BasicBlock | rc.Bottleneck)
    ]
    assert last_bn and all(torch.all(bn.weight == 0) for bn in last_bn)


def assert_same_forward_backward(ours: nn.Module, theirs: nn.Module, x: torch.Tensor) -> None:
    theirs.load_state_dict(ours.state_dict())
    for train in (False, True):
        ours.train(train)
        theirs.train(train)
        out_a, out_b = ours(x), theirs(x)
        assert torch.equal(out_a, out_b), f"outputs differ (train={train})"
        if train:
            out_a.square().mean().backward()
            out_b.square().mean().backward()
            for (name, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
                assert torch.equal(p.grad, q.grad), f"gradient of {name} differs"
            # BatchNorm running statistics were updated identically too.
            for (k, a), b in zip(
                ours.state_dict().items(), theirs.state_dict().values(), strict=True
            ):
                assert torch.equal(a, b), k


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_identical_outputs_and_gradients_32x32_10_classes(arch):
    ours, theirs = pair(arch, num_classes=10)  # layer4 sees 1x1 maps: the smallest case
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(32))
    assert_same_forward_backward(ours, theirs, x)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_identical_outputs_and_gradients_224(arch):
    ours, theirs = pair(arch)  # ImageNet: 224x224 images, 1000 classes, 7x7 maps pooled
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(224))
    assert_same_forward_backward(ours, theirs, x)


@pytest.mark.slow
@pytest.mark.parametrize(
    "groups, width, tv_name, expected",
    [
        (32, 4, "resnext50_32x4d", 25_028_904),
        (1, 128, "wide_resnet50_2", 68_883_240),
    ],
)
def test_resnext_and_wide_resnet_through_groups_and_width(groups, width, tv_name, expected):
    torch.manual_seed(0)
    ours = rc.ResNet(rc.Bottleneck, [3, 4, 6, 3], groups=groups, width_per_group=width)
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, tv_name)()
    assert n_params(ours) == expected
    for (k, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_small_input_stem_keeps_names_and_resolution():
    model = rc.resnet18(num_classes=10, small_input=True)
    tv_keys = torchvision.models.resnet18(num_classes=10).state_dict().keys()
    assert model.state_dict().keys() == tv_keys
    assert model.conv1.weight.shape == (64, 3, 3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    shapes = []
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        stage.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert shapes == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4)]


def test_blocks_shapes_and_projection():
    assert rc.BasicBlock(64, 64)(torch.randn(2, 64, 8, 8)).shape == (2, 64, 8, 8)
    down = nn.Sequential(rc.conv1x1(64, 128, 2), nn.BatchNorm2d(128))
    assert rc.BasicBlock(64, 128, 2, down)(torch.randn(2, 64, 8, 8)).shape == (2, 128, 4, 4)
    down = nn.Sequential(rc.conv1x1(256, 512, 2), nn.BatchNorm2d(512))
    assert rc.Bottleneck(256, 128, 2, down)(torch.randn(2, 256, 8, 8)).shape == (2, 512, 4, 4)
    assert rc.Bottleneck(256, 128, 2, down).conv2.stride == (2, 2)  # v1.5
    assert rc.Bottleneck(256, 128, 2, down).conv1.stride == (1, 1)
    assert (rc.BasicBlock.expansion, rc.Bottleneck.expansion) == (1, 4)


@pytest.mark.parametrize("stride, size, expected", [(1, 32, 32), (2, 32, 16), (2, 7, 4), (1, 7, 7)])
def test_conv_helpers_output_size_and_bias(stride, size, expected):
    c3, c1 = rc.conv3x3(4, 8, stride), rc.conv1x1(4, 8, stride)
    x = torch.randn(1, 4, size, size)
    assert c3(x).shape == (1, 8, expected, expected)
    assert c1(x).shape == (1, 8, expected, expected)
    assert c3.bias is None and c1.bias is None
    assert rc.conv3x3(16, 32).weight.numel() == 16 * 32 * 9
    assert rc.conv1x1(16, 32).weight.numel() == 16 * 32
