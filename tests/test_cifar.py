"""The CIFAR family of He et al. (2015), section 4.2."""

import pytest
import torch

import resnet_course as rc

DEPTHS = [20, 32, 44, 56, 110]
OPTION_A = [269_722, 464_154, 658_586, 853_018, 1_727_962]
# Option B adds two projections (16->32 and 32->64 channels): a 1x1 conv and a BatchNorm each.
OPTION_B_EXTRA = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def count_by_formula(depth: int, num_classes: int = 10) -> int:
    """Option A parameters from the architecture, not from the code."""
    n = (depth - 2) // 6
    conv_bn = lambda cin, cout: cin * cout * 9 + 2 * cout  # noqa: E731
    total = conv_bn(3, 16)
    cin = 16
    for width in (16, 32, 64):
        for _ in range(n):
            total += conv_bn(cin, width) + conv_bn(width, width)
            cin = width
    return total + 64 * num_classes + num_classes


@pytest.mark.parametrize("depth, expected", list(zip(DEPTHS, OPTION_A, strict=True)))
def test_option_a_parameter_counts(depth, expected):
    model = rc.CifarResNet(depth)
    assert n_params(model) == expected == count_by_formula(depth)
    assert n_params(getattr(rc, f"resnet{depth}")()) == expected


@pytest.mark.parametrize("depth, expected", list(zip(DEPTHS, OPTION_A, strict=True)))
def test_option_b_and_plain_parameter_counts(depth, expected):
    assert n_params(rc.CifarResNet(depth, shortcut="B")) == expected + OPTION_B_EXTRA
    # A plain net has exactly the weighted layers of option A (whose shortcuts have no weights).
    assert n_params(getattr(rc, f"plain{depth}")()) == expected


@pytest.mark.parametrize("shortcut", ["A", "B", "none"])
def test_stage_shapes_and_output(shortcut):
    model = rc.CifarResNet(20, shortcut=shortcut)
    shapes = []
    for stage in (model.layer1, model.layer2, model.layer3):
        stage.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
    assert model(torch.randn(4, 3, 32, 32)).shape == (4, 10)
    assert shapes == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]
    assert len(model.layer1) == len(model.layer2) == len(model.layer3) == 3


def test_plain_networks_have_no_shortcuts():
    model = rc.plain56()
    assert not any(isinstance(m, rc.BasicBlock) for m in model.modules())
    assert sum(isinstance(m, rc.PlainBlock) for m in model.modules()) == 27
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) + 1 == 56  # 55 convolutions and the fc layer


def test_option_a_shortcut_subsamples_and_pads_with_zeros():
    shortcut = rc.PadShortcut(16, 32, stride=2)
    x = torch.randn(2, 16, 8, 8)
    y = shortcut(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2])
    assert torch.all(y[:, 16:] == 0)
    assert sum(p.numel() for p in shortcut.parameters()) == 0


def test_option_a_uses_padding_and_option_b_projection_only_where_shapes_change():
    a, b = rc.resnet20(), rc.resnet20(shortcut="B")
    downs_a = [blk.downsample for blk in a.modules() if isinstance(blk, rc.BasicBlock)]
    downs_b = [blk.downsample for blk in b.modules() if isinstance(blk, rc.BasicBlock)]
    assert sum(d is not None for d in downs_a) == sum(d is not None for d in downs_b) == 2
    assert all(isinstance(d, rc.PadShortcut) for d in downs_a if d is not None)
    assert all(isinstance(d[0], torch.nn.Conv2d) for d in downs_b if d is not None)


def test_zero_init_residual_makes_every_block_the_identity():
    model = rc.resnet20(zero_init_residual=True).eval()
    block = model.layer1[1]
    x = torch.rand(2, 16, 32, 32)  # non-negative, like the output of a ReLU
    with torch.no_grad():
        assert torch.allclose(block(x), x)


def test_zero_init_residual_keeps_the_padded_channels_of_option_a_alive():
    # Zero-init on the blocks whose shortcut pads zeros would give relu(0 + 0) = 0 in the padded
    # channels forever (no gradient through a ReLU at 0): 48 of ResNet-20's 64 features dead.
    torch.manual_seed(0)
    model = rc.resnet20(zero_init_residual=True)
    padding = [
        b for b in model.modules() if isinstance(getattr(b, "downsample", None), rc.PadShortcut)
    ]
    assert len(padding) == 2 and all(torch.all(b.bn2.weight == 1) for b in padding)
    assert torch.all(model.layer3[1].bn2.weight == 0)  # the other blocks still start at zero
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    features = {}
    model.fc.register_forward_pre_hook(lambda m, args: features.update(x=args[0]))
    with torch.no_grad():
        model.eval()(torch.randn(64, 3, 32, 32))
    assert (features["x"] != 0).any(0).sum() == 64


def test_num_classes():
    assert rc.resnet56(num_classes=100)(torch.randn(2, 3, 32, 32)).shape == (2, 100)
