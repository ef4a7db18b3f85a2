"""Tests of ``resnet_course.check``: correct models pass, and each classic bug is named.

Every broken model below is a correct one with a single thing changed, so the test shows the bug
in a few lines. Most use the small CIFAR ResNet-20 (fast); the bugs that only make sense for the
ImageNet ResNets use those, mostly with the 32x32 stem (``small_input``) to keep the suite quick.
"""

import re

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import resnet_course as rc
from resnet_course import BasicBlock, Bottleneck, ResNet, conv1x1, conv3x3
from resnet_course.check import (
    Report,
    check_block,
    check_conv_helpers,
    check_make_layer,
    check_model,
)


def assert_fails(report: Report, *keywords: str) -> None:
    """The report failed and its problems mention every keyword (case-insensitive)."""
    text = " ".join(report.problems).lower()
    assert not report.passed, str(report)
    for word in keywords:
        assert word.lower() in text, f"{word!r} not in:\n{report}"


# --- A learner's correct ResNet with its own names: one block class, `shortcut`, `stages` -----


class Block(nn.Module):
    """A correct BasicBlock written differently from torchvision (projection built inside)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.a = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm_a = nn.BatchNorm2d(cout)
        self.b = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm_b = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm_a(self.a(x)))
        out = self.norm_b(self.b(out))
        return F.relu(out + self.shortcut(x))


class Net(nn.Module):
    """A correct ResNet: ImageNet ResNet-18 by default, the CIFAR ResNet-20 with ``cifar=True``."""

    def __init__(self, block: type[nn.Module] = Block, cifar: bool = False, num_classes: int = 0):
        super().__init__()
        widths, counts = ((16, 32, 64), (3, 3, 3)) if cifar else ((64, 128, 256, 512), (2,) * 4)
        if cifar:
            self.stem = nn.Sequential(conv3x3(3, 16), nn.BatchNorm2d(16), nn.ReLU())
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                nn.MaxPool2d(3, 2, 1),
            )  # fmt: skip
        stages, cin = [], widths[0]
        for i, (width, n) in enumerate(zip(widths, counts, strict=True)):
            first = block(cin, width, 2 if i else 1)
            stages.append(nn.Sequential(first, *[block(width, width) for _ in range(n - 1)]))
            cin = width
        self.stages = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(widths[-1], num_classes or (10 if cifar else 1000))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.classifier(torch.flatten(self.pool(x), 1))


class PadBlock(Block):
    """Option A written like many CIFAR repositories: subsample, pad channels on both sides."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(cin, cout, stride)
        self.shortcut = nn.Sequential()
        self.pad = (cout - cin) // 2 if cout != cin else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm_a(self.a(x)))
        out = self.norm_b(self.b(out))
        shortcut = x
        if self.pad:
            shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + shortcut)


# --- Correct models pass ------------------------------------------------------------------------


ARCHS = ["resnet18", "resnet34", "resnet50", "resnet20", "resnet32", "resnet44", "resnet56"]


@pytest.mark.parametrize("arch", [*ARCHS, "resnet110"])
def test_package_models_pass(arch: str) -> None:
    report = check_model(getattr(rc, arch)(), arch)
    assert report.passed, str(report)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet101", "resnet152"])
def test_deep_package_models_pass(arch: str) -> None:
    report = check_model(getattr(rc, arch)(), arch)
    assert report.passed, str(report)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_torchvision_models_pass(arch: str) -> None:
    report = check_model(getattr(torchvision.models, arch)(), arch)
    assert report.passed, str(report)
    assert not report.notes


def test_own_names_and_one_block_class_pass() -> None:
    assert check_model(Net(), "resnet18").passed
    assert check_model(Net(cifar=True), "resnet20").passed


def test_small_input_stem_and_num_classes() -> None:
    assert check_model(rc.resnet18(small_input=True), "resnet18", small_input=True).passed
    assert check_model(rc.resnet34(num_classes=7, small_input=True), "resnet34", 7, True).passed
    assert_fails(check_model(rc.resnet18(small_input=True), "resnet18"), "stem")


def test_cifar_options_a_and_b_pass_with_a_note() -> None:
    for model, option in [
        (rc.resnet20(), "A"),
        (rc.resnet20(shortcut="B"), "B"),
        (Net(PadBlock, True), "A"),
    ]:
        report = check_model(model, "resnet20")
        assert report.passed, str(report)
        assert f"Option {option}" in " ".join(report.notes)


def test_plain_network_fails() -> None:
    assert_fails(check_model(rc.plain20(), "resnet20"), "no residual connection")


class BottleneckV1(Bottleneck):
    """The paper's v1 Bottleneck: the stride on the first 1x1 conv instead of the 3x3."""

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64):
        super().__init__(inplanes, planes, stride, downsample, groups, base_width)
        self.conv1 = conv1x1(inplanes, planes, stride)
        self.conv2 = conv3x3(planes, planes)


def test_v1_bottleneck_passes_with_a_note() -> None:
    report = check_model(
        ResNet(BottleneckV1, [3, 4, 6, 3], small_input=True), "resnet50", small_input=True
    )
    assert report.passed, str(report)
    assert "v1" in report.notes[0] and "layer2.0" in report.notes[0]
    report = check_block(BottleneckV1)
    assert report.passed, str(report)
    assert "v1" in report.notes[0]


def test_mode_and_weights_are_left_alone() -> None:
    model = rc.resnet20().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert check_model(model, "resnet20").passed  # a model in train mode is judged the same
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# --- Broken models: each fails with a message that names the bug -------------------------------


def test_fixed_size_pool() -> None:
    model = rc.resnet18()
    model.avgpool = nn.AvgPool2d(7)  # global only for 224x224 inputs
    assert_fails(check_model(model, "resnet18"), "fixed-size pool", "224x224", "AdaptiveAvgPool2d")
    model = rc.resnet20()
    model.avgpool = nn.AvgPool2d(8)
    assert_fails(check_model(model, "resnet20"), "fixed-size pool", "32x32")


class NoPoolNet(ResNet):
    """fc on the flattened 512x1x1 map of a 32x32 input: a hard-coded fc size, no pooling."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.view(x.size(0), -1))


def test_hard_coded_fc_size() -> None:
    model = NoPoolNet(BasicBlock, [2, 2, 2, 2], small_input=True)
    model.fc = nn.Linear(512 * 4 * 4, 1000)
    assert_fails(check_model(model, "resnet18", small_input=True), "head", "Works only at 32x32")


def test_wrong_fc_input_size() -> None:
    model = rc.resnet50(small_input=True)
    model.fc = nn.Linear(512, 1000)  # forgot * block.expansion
    assert_fails(
        check_model(model, "resnet50", small_input=True), "expects 512 input features", "2,048"
    )


class ReluBeforeAdd(Block):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm_a(self.a(x)))
        out = F.relu(self.norm_b(self.b(out)))  # bug: ReLU before the addition
        return F.relu(out + self.shortcut(x))


class ReluOnShortcut(Block):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm_a(self.a(x)))
        out = self.norm_b(self.b(out))
        return F.relu(out + F.relu(self.shortcut(x)))  # bug: ReLU on the shortcut


class NoReluAfterAdd(Block):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm_a(self.a(x)))
        return self.norm_b(self.b(out)) + self.shortcut(x)  # bug: no ReLU after the addition


class ProjectionEverywhere(Block):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(cin, cout, stride)
        self.shortcut = nn.Sequential(  # bug: a projection even where the shape is unchanged
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
        )


class SharedBatchNorm(Block):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm_a(self.a(x)))
        out = self.norm_a(self.b(out))  # bug: the first BatchNorm again
        return F.relu(out + self.shortcut(x))


class BatchNormTwice(Block):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm_a(self.a(x)))
        out = self.norm_b(self.norm_b(self.b(out)))  # bug: two BatchNorms in a row
        return F.relu(out + self.shortcut(x))


class ConvBias(Block):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(cin, cout, stride)
        self.a = nn.Conv2d(cin, cout, 3, stride, 1)  # bug: bias=True (the default) before BN
        self.b = nn.Conv2d(cout, cout, 3, 1, 1)


class UnusedConv(Block):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(cin, cout, stride)
        self.c = conv3x3(cout, cout)  # bug: created, never called


class ScaledResidual(Block):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm_a(self.a(x)))
        out = self.norm_b(self.b(out)) * 0.5  # not in the architecture
        return F.relu(out + self.shortcut(x))


@pytest.mark.parametrize(
    ("block", "keywords"),
    [
        (ReluBeforeAdd, ["ReLU before the addition"]),
        (ReluOnShortcut, ["ReLU on the shortcut"]),
        (NoReluAfterAdd, ["No ReLU after the addition"]),
        (
            ProjectionEverywhere,
            ["Projection shortcut where the shape does not change", "stages.0.1"],
        ),
        (SharedBatchNorm, ["same BatchNorm module is applied twice", "norm_a"]),
        (BatchNormTwice, ["BatchNorm applied twice in a row"]),
        (ConvBias, ["bias before BatchNorm", "bias=False"]),
        (UnusedConv, ["never used", "stages.0.0.c"]),
        (ScaledResidual, ["Extra multiplication after `norm_b`"]),
    ],
)
def test_broken_blocks_in_a_model(block: type[nn.Module], keywords: list[str]) -> None:
    assert_fails(check_model(Net(block, cifar=True), "resnet20"), *keywords)


class ReluBeforeAddBlock(BasicBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))  # bug: ReLU before the addition
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def test_broken_block_checked_alone() -> None:
    assert_fails(
        check_block(ReluBeforeAddBlock), "ReLU before the addition in every configuration tried"
    )


def test_parameter_count_is_folded_into_the_summary() -> None:
    report = check_model(Net(ProjectionEverywhere, cifar=True), "resnet20")
    assert len(report.problems) == 1, str(report)  # the projections explain the extra parameters
    assert "(the reference has 272,474)" in report.summary


def test_wrong_blocks_per_stage() -> None:
    model = ResNet(BasicBlock, [2, 2, 2, 2], small_input=True)  # ResNet-18 checked as ResNet-34
    assert_fails(
        check_model(model, "resnet34", small_input=True), "blocks per stage", "[3, 4, 6, 3]"
    )


def test_wrong_kind_of_block() -> None:
    report = check_model(rc.resnet34(small_input=True), "resnet50", small_input=True)
    assert_fails(report, "Wrong kind of block", "Bottlenecks")


class Bottleneck2(Bottleneck):
    expansion = 2  # bug: the Bottleneck expands by 4


class ExpansionOne(Bottleneck):
    expansion = 1  # bug: conv3 still outputs planes * 4, but _make_layer believes 1


def test_wrong_expansion() -> None:
    model = ResNet(Bottleneck2, [3, 4, 6, 3], small_input=True)
    report = check_model(model, "resnet50", small_input=True)
    assert_fails(  # one mistake, seen in every stage: one problem
        report, "`layer1`, `layer2`, `layer3` and `layer4` output 128, 256, 512 and 1024 channels",
        "expected 256, 512, 1024 and 2048", "expansion",
    )  # fmt: skip
    assert len(report.problems) == 1, str(report)
    model = ResNet(ExpansionOne, [3, 4, 6, 3], small_input=True)
    model.layer1[0].conv3 = conv1x1(64, 256)
    model.layer1[0].bn3 = nn.BatchNorm2d(256)
    report = check_model(model, "resnet50", small_input=True)
    assert_fails(
        report, "`layer1.0` changes the shape, but its shortcut is the identity", "256x32x32"
    )
    assert_fails(check_block(ExpansionOne, "bottleneck"), "expansion` is 1, expected 4")


def test_wrong_output_shape() -> None:
    assert_fails(
        check_model(rc.resnet20(num_classes=100), "resnet20"), "Output shape (2, 100)", "(2, 10)"
    )


class NotWritten(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(512, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("forward is not written yet")


class Unflattened(nn.Module):
    """Feeds the feature map to the fc layer: torch raises inside the recorded op."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(512, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_a_crash_quotes_the_learners_line_not_the_checkers() -> None:
    """The checker's own frames (the recorder runs every torch op) are never quoted."""
    assert_fails(check_model(Unflattened(), "resnet18"), "(in `forward`: `return self.fc(x)`)")
    assert_fails(
        check_model(NotWritten(), "resnet18"),
        '(in `forward`: `raise NotImplementedError("forward is not written yet")`)',
    )


class NoDownsample(ResNet):
    """A _make_layer that never creates a projection shortcut."""

    def _make_layer(self, block, planes, blocks, stride=1):
        layers = [block(self.inplanes, planes, stride)]
        self.inplanes = planes * block.expansion
        return nn.Sequential(*layers, *[block(self.inplanes, planes) for _ in range(1, blocks)])


class StaleInplanes(ResNet):
    """A _make_layer that forgets to update ``self.inplanes``."""

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = nn.Sequential(conv1x1(self.inplanes, planes, stride), nn.BatchNorm2d(planes))
        first = block(self.inplanes, planes, stride, downsample if stride != 1 else None)
        return nn.Sequential(first, *[block(self.inplanes, planes) for _ in range(1, blocks)])


def test_forward_that_raises_gets_a_report() -> None:
    assert_fails(
        check_model(NotWritten(), "resnet18"), "NotImplementedError", "forward is not written yet"
    )
    report = check_model(
        NoDownsample(BasicBlock, [2, 2, 2, 2], small_input=True), "resnet18", small_input=True
    )
    assert_fails(
        report,
        "`layer2.0` changes the shape, but its shortcut is the identity",
        "128x16x16",
        "64x32x32",
        "projection",
    )
    report = check_model(
        StaleInplanes(BasicBlock, [2, 2, 2, 2], small_input=True), "resnet18", small_input=True
    )
    assert_fails(report, "`layer2.1.conv1` expects 64 input channels but receives 128", "inplanes")


class Squeezed(ResNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).squeeze())  # bug: squeezes the batch dimension of 1


def test_batch_of_one_image() -> None:
    report = check_model(
        Squeezed(BasicBlock, [2, 2, 2, 2], small_input=True), "resnet18", small_input=True
    )
    assert_fails(report, "single image", "flatten")


def test_extra_operation_between_stages() -> None:
    model = rc.resnet20()
    model.layer2 = nn.Sequential(nn.Dropout(0.2), *model.layer2)
    assert_fails(
        check_model(model, "resnet20"),
        "Extra operations between blocks",
        "dropout",
        "before `layer2.1`",
    )


def test_one_block_repeated_and_a_softmax_head() -> None:
    model = rc.resnet20()
    model.layer2 = nn.Sequential(model.layer2[0], *[model.layer2[1]] * 2)  # one module, twice
    assert_fails(check_model(model, "resnet20"), "share their weights", "`layer2.1` used 2 times")
    model = rc.resnet20()
    model.fc = nn.Sequential(model.fc, nn.Softmax(dim=1))
    assert_fails(check_model(model, "resnet20"), "softmax", "logits")


def test_random_state_is_left_alone() -> None:
    model, stage = rc.resnet20(), rc.resnet18().layer2
    torch.manual_seed(0)
    check_model(model, "resnet20")
    check_block(BasicBlock)
    check_make_layer(stage, BasicBlock, 64, 128, blocks=2, stride=2)
    check_conv_helpers(conv3x3, conv1x1)
    after = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(3))  # a notebook's later cells draw the same numbers


def test_option_a_on_an_imagenet_resnet() -> None:
    report = check_model(Net(PadBlock), "resnet18")
    assert_fails(report, "Zero-padding shortcut (option A)")


def test_not_a_model() -> None:
    assert_fails(check_model(ResNet, "resnet18"), "create the model first")
    with pytest.raises(ValueError, match="unknown arch"):
        check_model(rc.resnet18(), "resnet19")


# --- check_block --------------------------------------------------------------------------------


TORCHVISION_BLOCKS = [torchvision.models.resnet.BasicBlock, torchvision.models.resnet.Bottleneck]


@pytest.mark.parametrize("block", [BasicBlock, Bottleneck, *TORCHVISION_BLOCKS])
def test_correct_blocks_pass(block: type[nn.Module]) -> None:
    report = check_block(block)
    assert report.passed, str(report)


class OwnNamesBlock(nn.Module):
    """A correct BasicBlock with its own names and registration order."""

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample=None, *_, **__
    ) -> None:
        super().__init__()
        self.shortcut = downsample or nn.Identity()
        self.second = nn.Sequential(conv3x3(planes, planes), nn.BatchNorm2d(planes))
        self.first = nn.Sequential(
            conv3x3(inplanes, planes, stride), nn.BatchNorm2d(planes), nn.ReLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.shortcut(x) + self.second(self.first(x)))


class IgnoresDownsample(BasicBlock):
    """Builds its own projection instead of using the ``downsample`` it is given."""

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample=None, *_, **__
    ) -> None:
        super().__init__(inplanes, planes, stride, None)
        if stride != 1 or inplanes != planes:
            self.mine = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))
            self.downsample = self.mine


class NoShortcutBlock(BasicBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


class ThreeArgBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()


class TrainModeOnly(BasicBlock):
    """Correct in eval mode; in train mode it skips the second BatchNorm."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.conv2(out)
        out = out if self.training else self.bn2(out)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def test_check_block_judges_behaviour() -> None:
    assert check_block(OwnNamesBlock).passed
    assert_fails(check_block(IgnoresDownsample), "`downsample` you were given is never used")
    assert_fails(check_block(NoShortcutBlock), "No residual connection")
    assert_fails(
        check_block(ThreeArgBlock),
        "Could not build",
        "(inplanes, planes, stride=1, downsample=None)",
    )
    assert_fails(check_block(TrainModeOnly), "differs", "train mode")
    assert_fails(check_block(BasicBlock(64, 64)), "class itself")
    assert_fails(check_block(nn.Conv2d), "expansion")


# --- check_make_layer and check_conv_helpers ----------------------------------------------------


def test_check_make_layer() -> None:
    stage = rc.resnet50().layer2
    assert check_make_layer(stage, Bottleneck, 256, 128, blocks=4, stride=2).passed
    assert_fails(
        check_make_layer(stage, Bottleneck, 256, 128, blocks=3, stride=2),
        "has 4 blocks, expected 3",
    )
    stale = nn.Sequential(
        BasicBlock(64, 128, 2, nn.Sequential(conv1x1(64, 128, 2), nn.BatchNorm2d(128))),
        BasicBlock(64, 128),  # bug: inplanes not updated to 128
    )
    assert_fails(check_make_layer(stale, BasicBlock, 64, 128, blocks=2, stride=2), "inplanes")


def test_check_conv_helpers() -> None:
    assert check_conv_helpers(conv3x3, conv1x1).passed
    no_padding = lambda i, o, stride=1: nn.Conv2d(i, o, 3, stride, bias=False)  # noqa: E731
    assert_fails(check_conv_helpers(no_padding, conv1x1), "padding=1", "expected 32x8x8")
    with_bias = lambda i, o, stride=1: nn.Conv2d(i, o, 1, stride)  # noqa: E731
    assert_fails(check_conv_helpers(conv3x3, with_bias), "`conv1x1` gives the conv a bias")
    no_stride = lambda i, o, stride=1: conv3x3(i, o)  # noqa: E731
    assert_fails(check_conv_helpers(no_stride, conv1x1), "conv3x3(16, 32, 2)", "expected 32x4x4")


# --- The report itself --------------------------------------------------------------------------


def test_report_reads_well_and_is_deterministic() -> None:
    good = check_model(rc.resnet20(), "resnet20")
    bad = check_model(Net(ReluOnShortcut, cifar=True), "resnet20")
    assert bool(good) and not bool(bad)
    assert str(good).startswith("check_model: resnet20, 10 classes: passed")
    assert "FAILED, 1 problem" in str(bad) and "1. ReLU on the shortcut" in str(bad)
    assert bad._repr_markdown_().startswith("❌") and good._repr_markdown_().startswith("✅")
    assert repr(bad) == str(bad) == str(check_model(Net(ReluOnShortcut, cifar=True), "resnet20"))
    assert "0x" not in str(bad) + str(check_model(NotWritten(), "resnet18"))


def test_a_checker_limit_is_a_note_not_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> dict:
        raise KeyError("simulated")

    monkeypatch.setattr("resnet_course.check.record._op_info", broken)
    report = check_model(rc.resnet20(), "resnet20")
    assert report.passed, str(report)
    assert "could not follow every operation" in " ".join(report.notes)


# --- The commonest mistakes: the first problem names the mistake, nothing false follows ---------
#
# A block check speaks of the block only (never of a stem, a head or stages), folds what a mistake
# causes (a crash, a parameter count) into the problem that names it, and reports one mistake at
# most twice.

NOT_IN_A_BLOCK = ["stem", "head", "stage", "``"]


def assert_first(report: Report, *words: str, absent: tuple[str, ...] = ()) -> None:
    """The first problem contains every word; no problem contains any ``absent`` word."""
    assert not report.passed, str(report)
    first, text = report.problems[0].lower(), " ".join(report.problems).lower()
    for word in words:
        assert word.lower() in first, f"{word!r} not in the first problem:\n{report}"
    for word in absent:
        assert word.lower() not in text, f"{word!r} wrongly in:\n{report}"


class ForgetsDownsample(BasicBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x  # bug: the downsample it was given is never called
        return self.relu(out)


class NoExpansionConv3(Bottleneck):
    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample=None, *_, **__
    ) -> None:
        super().__init__(inplanes, planes, stride, downsample)
        self.conv3, self.bn3 = conv1x1(planes, planes), nn.BatchNorm2d(planes)  # bug: not * 4


class Bn3AfterAddition(Bottleneck):
    """A widely read blog's ResNet-50: ``bn3`` applied again after the addition."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(self.bn3(out))  # bug: bn3 again


class InplaceReluOnIdentity(BasicBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.relu(x)  # bug: nn.ReLU(inplace=True) overwrites x itself
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class BiasBlock(BasicBlock):
    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample=None, *_, **__
    ) -> None:
        super().__init__(inplanes, planes, stride, downsample)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1)  # bug: bias=True (the default)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1)


class StrideOnConv2(BasicBlock):
    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample=None, *_, **__
    ) -> None:
        super().__init__(inplanes, planes, stride, downsample)
        self.conv1, self.conv2 = conv3x3(inplanes, planes), conv3x3(planes, planes, stride)


class IgnoresStride(BasicBlock):
    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample=None, *_, **__
    ) -> None:
        super().__init__(inplanes, planes, stride, downsample)
        self.conv1 = conv3x3(inplanes, planes)  # bug: stride forgotten


class NoBn2(BasicBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.conv2(out) + identity)  # bug: bn2 never called


class Kernel5(BasicBlock):
    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample=None, *_, **__
    ) -> None:
        super().__init__(inplanes, planes, stride, downsample)
        self.conv1 = nn.Conv2d(inplanes, planes, 5, stride, 2, bias=False)  # bug: 5x5


class NoPadding(BasicBlock):
    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample=None, *_, **__
    ) -> None:
        super().__init__(inplanes, planes, stride, downsample)
        self.conv2 = nn.Conv2d(planes, planes, 3, bias=False)  # bug: padding 0


class NoFinalRelu(BasicBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out)) + identity  # bug: no ReLU after the addition


class NoMiddleRelu(BasicBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn1(self.conv1(x))  # bug: no ReLU
        return self.relu(self.bn2(self.conv2(out)) + identity)


class AddBeforeBn2(BasicBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out) + identity))  # bug: adds before bn2


class SharedBn1(BasicBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn1(self.conv2(out)) + identity)  # bug: bn1 instead of bn2


class DownsampleOnOut(BasicBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        identity = x if self.downsample is None else self.downsample(out)  # bug: out, not x
        return self.relu(out + identity)


class IdentityAfterConv1(BasicBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))  # bug: x overwritten before identity = x
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.bn2(self.conv2(x)) + identity)


class SigmoidBlock(BasicBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = torch.sigmoid(self.bn1(self.conv1(x)))  # bug: not a ReLU
        return self.relu(self.bn2(self.conv2(out)) + identity)


BLOCK_MISTAKES = [
    (ForgetsDownsample, ["the `downsample` you were given is never used"], ["_make_layer"]),
    (NoExpansionConv3, ["`conv3` outputs the wrong number", "planes * expansion"], ["projection"]),
    (Bn3AfterAddition, ["`bn3` is applied a second time, after the addition"], ["No ReLU"]),
    (InplaceReluOnIdentity, ["ReLU on the shortcut", "inplace=True"], []),
    (BiasBlock, ["Convolution bias before BatchNorm", "bias=False"], ["parameters"]),
    (StrideOnConv2, ["stride is on `conv2` instead of `conv1`"], []),
    (IgnoresStride, ["no convolution of the residual branch", "has a stride", "`conv1`"], []),
    (NoBn2, ["No BatchNorm after `conv2`", "`bn2` is created but never called"], []),
    (Kernel5, ["`conv1` is a 5x5 convolution", "expected 3x3"], []),
    (NoPadding, ["`conv2` has padding 0", "expected 1"], ["projection"]),
    (NoFinalRelu, ["No ReLU after the addition"], []),
    (NoMiddleRelu, ["No ReLU after `bn1`"], []),
    (AddBeforeBn2, ["addition comes before `bn2`"], ["No BatchNorm", "No ReLU"]),
    (SharedBn1, ["same BatchNorm module is applied twice", "`bn2` is created but never"], []),
    (DownsampleOnOut, ["`downsample.0` is applied to the output of `bn2`", "input `x`"],
     ["inplanes"]),
    (IdentityAfterConv1, ["shortcut starts after", "identity = x"], ["Wrong kind"]),
    (SigmoidBlock, ["sigmoid after `bn1`", "ReLU"], []),
]  # fmt: skip


@pytest.mark.parametrize(
    ("block", "words", "absent"), BLOCK_MISTAKES, ids=[c[0].__name__ for c in BLOCK_MISTAKES]
)
def test_block_mistake_named_first(block: type[nn.Module], words: list[str], absent: list) -> None:
    report = check_block(block)
    assert_first(report, *words, absent=(*absent, *NOT_IN_A_BLOCK, "Parameters per"))
    assert len(report.problems) <= 2, str(report)


@pytest.mark.parametrize(
    ("block", "words", "absent"),
    [c for c in BLOCK_MISTAKES if c[0] in (Bn3AfterAddition, NoBn2, StrideOnConv2, BiasBlock)],
)
def test_block_mistake_named_first_in_a_model(
    block: type[nn.Module], words: list[str], absent: list
) -> None:
    layers = [3, 4, 6, 3] if issubclass(block, Bottleneck) else [2, 2, 2, 2]
    arch = "resnet50" if issubclass(block, Bottleneck) else "resnet18"
    report = check_model(ResNet(block, layers, small_input=True), arch, small_input=True)
    assert_first(report, *words, absent=(*absent, "head", "``", "Parameters per"))
    assert len(report.problems) == 1, str(report)


class ReluOnIdentityShortcut(BasicBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = F.relu(x) if self.downsample is None else self.downsample(x)  # bug
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + identity)


def test_relu_on_the_identity_shortcut() -> None:
    assert_first(
        check_block(ReluOnIdentityShortcut), "ReLU on the shortcut", absent=tuple(NOT_IN_A_BLOCK)
    )
    model = ResNet(InplaceReluOnIdentity, [2, 2, 2, 2], small_input=True)
    report = check_model(model, "resnet18", small_input=True)
    assert_first(report, "ReLU on the shortcut", "`layer1.0`", absent=("stem", "between blocks"))


def test_model_mistakes_named_where_they_happen() -> None:
    model = rc.resnet18()
    model.maxpool = nn.Identity()
    assert_first(
        check_model(model, "resnet18"),
        "No max-pool",
        absent=("layer2", "layer3", "check the strides"),
    )
    model = rc.resnet18()
    model.layer2[0].conv1.stride = model.layer2[0].downsample[0].stride = (1, 1)
    report = check_model(model, "resnet18")
    assert_first(report, "`layer2` keeps the height and width", "stride 2", absent=("layer3",))
    model = rc.resnet50()
    model.relu = nn.Identity()  # a widely read blog's stem: no ReLU
    assert_first(check_model(model, "resnet50"), "No ReLU after `bn1` in the stem")
    model = rc.resnet18()
    model.layer2[0].downsample[0] = nn.Conv2d(64, 128, 3, 2, 1, bias=False)  # "should be 3x3"
    report = check_model(model, "resnet18")
    assert_first(report, "`downsample.0` is a 3x3 convolution in `layer2.0`", "conv1x1")
    assert len(report.problems) == 1 and "the reference has 11,689,512" in report.summary


def test_a_downsample_created_but_not_called_in_a_model() -> None:
    model = ResNet(ForgetsDownsample, [2, 2, 2, 2], small_input=True)
    report = check_model(model, "resnet18", small_input=True)
    assert_first(report, "`layer2.0.downsample` is created but never called", "RuntimeError")
    assert len(report.problems) == 1, str(report)


# --- ResNets written elsewhere: they pass, or the report says exactly how they differ -----------


class KuangliuBlock(nn.Module):
    """kuangliu/pytorch-cifar `models/resnet.py` `BasicBlock`, as written there."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, self.expansion * planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(self.expansion * planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class KuangliuBottleneck(nn.Module):
    """kuangliu/pytorch-cifar `models/resnet.py` `Bottleneck` (stride on the 3x3 conv)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, self.expansion * planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(self.expansion * planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, self.expansion * planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(self.expansion * planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += self.shortcut(x)
        return F.relu(out)


class KuangliuResNet(nn.Module):
    """kuangliu/pytorch-cifar `ResNet`: 3x3 stem, no max-pool, a fixed `F.avg_pool2d(out, 4)`."""

    def __init__(self, block: type[nn.Module], num_blocks: list[int], num_classes: int = 10):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._make_layer(block, 64, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 128, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 256, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(block, 512, num_blocks[3], stride=2)
        self.linear = nn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block, planes, num_blocks, stride):
        strides = [stride] + [1] * (num_blocks - 1)
        layers = []
        for stride in strides:
            layers.append(block(self.in_planes, planes, stride))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4)
        out = out.view(out.size(0), -1)
        return self.linear(out)


class KuangliuGlobalPool(KuangliuResNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


class SequentialBlock(nn.Module):
    """A BasicBlock whose branch is one `nn.Sequential`, with an `nn.Identity` skip."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )  # fmt: skip
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.skip(x))


class SequentialNet(nn.Module):
    """Stem, blocks and head each one `nn.Sequential`; `nn.Flatten` in the head."""

    def __init__(self, counts: tuple[int, ...] = (2, 2, 2, 2)) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )  # fmt: skip
        blocks, cin = [], 64
        for i, (width, n) in enumerate(zip((64, 128, 256, 512), counts, strict=True)):
            for j in range(n):
                blocks.append(SequentialBlock(cin, width, 2 if i and not j else 1))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.features(x)))


@pytest.mark.parametrize("arch", ["resnet34", "resnet101"])
def test_more_torchvision_models_pass(arch: str) -> None:
    report = check_model(getattr(torchvision.models, arch)(), arch)
    assert report.passed and not report.notes, str(report)
    report = check_model(getattr(torchvision.models, arch)(zero_init_residual=True), arch)
    assert report.passed, str(report)


@pytest.mark.slow
def test_torchvision_resnet152_passes() -> None:
    report = check_model(torchvision.models.resnet152(), "resnet152")
    assert report.passed and not report.notes, str(report)


def test_wide_resnet_and_resnext_are_named_as_what_they_are() -> None:
    report = check_model(torchvision.models.wide_resnet50_2(), "resnet50")
    assert_first(
        report, "2 times as wide as resnet50's", "128 channels instead of 64", "Wide ResNet",
        absent=("outputs the wrong number", "groups=32", "stage"),
    )  # fmt: skip
    assert len(report.problems) == 1, str(report)
    report = check_model(torchvision.models.resnext50_32x4d(), "resnet50")
    assert_first(
        report, "grouped 3x3 convs (`groups=32`)", "ResNeXt", "32 groups of 4 channels",
        absent=("outputs the wrong number", "Wide ResNet", "stage"),
    )  # fmt: skip
    assert len(report.problems) == 1, str(report)


def test_kuangliu_cifar_resnets() -> None:
    """As written there, they differ from torchvision in one way: a pool fixed to 4x4 maps."""
    for block, layers, arch in [
        (KuangliuBlock, [2, 2, 2, 2], "resnet18"),
        (KuangliuBottleneck, [3, 4, 6, 3], "resnet50"),
    ]:
        model = KuangliuResNet(block, layers)
        report = check_model(model, arch, num_classes=10, small_input=True)
        assert_first(report, "Fixed-size pooling", "4x4", "AdaptiveAvgPool2d")
        assert len(report.problems) == 1, str(report)
        model = KuangliuGlobalPool(block, layers)  # with a global pool instead, it passes
        report = check_model(model, arch, num_classes=10, small_input=True)
        assert report.passed, str(report)
    # Checked without small_input=True: the stem is named, and the fc is not blamed.
    report = check_model(KuangliuResNet(KuangliuBlock, [2, 2, 2, 2]), "resnet18", num_classes=10)
    assert_first(
        report, "stem is the small-input one", "small_input=True",
        absent=("in_features =", "as the shortcut does", "in the stem in the stem"),
    )  # fmt: skip
    assert "not averaged to 1x1" in report.problems[1], str(report)


def test_the_small_input_stem_checked_as_an_imagenet_one() -> None:
    report = check_model(rc.resnet18(small_input=True), "resnet18")
    assert_first(report, "stem is the small-input one", 'check_model(model, "resnet18", small_')
    assert len(report.problems) == 1, str(report)


def test_sequential_blocks_with_functional_relus_pass() -> None:
    for counts, arch in [((2, 2, 2, 2), "resnet18"), ((3, 4, 6, 3), "resnet34")]:
        report = check_model(SequentialNet(counts), arch)
        assert report.passed and not report.notes, str(report)


def test_timm_resnets() -> None:
    timm = pytest.importorskip("timm")
    for arch in ("resnet18", "resnet50"):
        report = check_model(timm.create_model(arch), arch)
        assert report.passed, str(report)
    report = check_model(timm.create_model("resnet50d"), "resnet50")  # ResNet-D
    assert_first(
        report, "deep stem: three 3x3 convs", "ResNet-C and ResNet-D",
        absent=("Extra", "expected 7x7", "has a stride", "in the stem in the stem"),
    )  # fmt: skip
    assert len(report.problems) == 2, str(report)
    shortcut = report.problems[1]
    assert "ResNet-D's shortcut" in shortcut and "`layer2.0`, `layer3.0` and `layer4.0`" in shortcut
    report = check_model(timm.create_model("resnet50c"), "resnet50")  # the deep stem alone
    assert len(report.problems) == 1 and "ResNet-C" in report.problems[0], str(report)
    for arch in ("resnet18", "resnet50"):  # SE-ResNet: a gate on every residual branch
        report = check_model(timm.create_model(f"se{arch}"), arch)
        assert_first(report, "Squeeze-and-Excitation", "`layer1.0.se`", "as expected")
        assert len(report.problems) == 1, str(report)


class SELayer(nn.Module):
    """moskomule/senet.pytorch `senet/se_module.py`: a Squeeze-and-Excitation gate of Linears."""

    def __init__(self, channel: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channel, channel // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(channel // reduction, channel, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = x.size()
        y = self.avg_pool(x).view(b, c)
        y = self.fc(y).view(b, c, 1, 1)
        return x * y.expand_as(x)


def test_se_resnet_with_linear_gates_is_named() -> None:
    model = torchvision.models.resnet18()
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        for blk in stage:  # the gate after the last BatchNorm of the branch, as in SE-ResNet
            blk.bn2 = nn.Sequential(blk.bn2, SELayer(blk.bn2.num_features))
    report = check_model(model, "resnet18")
    assert_first(report, "Squeeze-and-Excitation", "`layer1.0.bn2.1`", "BasicBlocks")
    assert len(report.problems) == 1, str(report)


class AkamasterBlock(nn.Module):
    """akamaster/pytorch_resnet_cifar10 `resnet.py` `BasicBlock`: option A by a lambda layer."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, option: str = "A") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or in_planes != planes:
            if option == "A":
                pad = (0, 0, 0, 0, planes // 4, planes // 4)
                self.shortcut = Lambda(lambda x: F.pad(x[:, :, ::2, ::2], pad, "constant", 0))
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes),
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class Lambda(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class AkamasterResNet(nn.Module):
    """akamaster's CIFAR `ResNet`: `F.avg_pool2d(out, out.size()[3])`, global at any size."""

    def __init__(self, num_blocks: list[int], option: str = "A", num_classes: int = 10) -> None:
        super().__init__()
        self.in_planes, self.option = 16, option
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(32, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(64, num_blocks[2], stride=2)
        self.linear = nn.Linear(64, num_classes)

    def _make_layer(self, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        strides = [stride] + [1] * (num_blocks - 1)
        layers = []
        for stride in strides:
            layers.append(AkamasterBlock(self.in_planes, planes, stride, self.option))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        return self.linear(out.view(out.size(0), -1))


def test_akamaster_cifar_resnets_pass() -> None:
    for option in "AB":
        report = check_model(AkamasterResNet([3, 3, 3], option), "resnet20")
        assert report.passed, str(report)
        assert f"Option {option}" in " ".join(report.notes)


class PreActBlock(nn.Module):
    """kuangliu/pytorch-cifar `PreActBlock` (ResNet v2), as written there."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, self.expansion * planes, 1, stride=stride, bias=False)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        out += shortcut
        return out


class PreActResNet(KuangliuResNet):
    """kuangliu/pytorch-cifar `PreActResNet`: a conv stem, a BatchNorm -> ReLU after the blocks."""

    def __init__(self, block: type[nn.Module], num_blocks: list[int], num_classes: int = 10):
        super().__init__(block, num_blocks, num_classes)
        del self.bn1
        self.bn = nn.BatchNorm2d(512 * block.expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.relu(self.bn(out))
        out = F.adaptive_avg_pool2d(out, 1)
        return self.linear(out.view(out.size(0), -1))


def test_a_pre_activation_resnet_is_named_as_one() -> None:
    report = check_model(PreActResNet(PreActBlock, [2, 2, 2, 2]), "resnet18", 10, True)
    assert_first(
        report, "pre-activation ResNet (ResNet v2",
        absent=("addition comes before", "No ReLU after the addition", "stem"),
    )  # fmt: skip
    assert len(report.problems) == 1, str(report)


# --- More mistakes: the first problem names the mistake, nothing false follows -----------------


class NoBnDownsample(ResNet):
    """A `_make_layer` whose projection has no BatchNorm."""

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        return nn.Sequential(*layers, *[block(self.inplanes, planes) for _ in range(1, blocks)])


class StrideOnConv1AndConv2(Bottleneck):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None, *_, **__):
        super().__init__(inplanes, planes, stride, downsample)
        self.conv1 = conv1x1(inplanes, planes, stride)  # bug: conv2 keeps its stride too


SHARED_RELU = nn.ReLU(inplace=True)


class OneReluModule(BasicBlock):
    """One `nn.ReLU` module for every block of the network: fine, a ReLU has no state."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None, *_, **__):
        super().__init__(inplanes, planes, stride, downsample)
        self.relu = SHARED_RELU


class NoExpansionAttribute(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None) -> None:
        super().__init__()  # bug: no `expansion = 1`
        self.conv1, self.bn1 = conv3x3(inplanes, planes, stride), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes), nn.BatchNorm2d(planes)
        self.relu, self.downsample = nn.ReLU(inplace=True), downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class BasicExpansion4(BasicBlock):
    expansion = 4  # bug: a BasicBlock outputs planes channels


class UnusedConv3(BasicBlock):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None, *_, **__):
        super().__init__(inplanes, planes, stride, downsample)
        self.conv3, self.bn3 = conv3x3(planes, planes), nn.BatchNorm2d(planes)  # never called


class SkipsLayer4(ResNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))  # bug: layer4 built, never called
        return self.fc(torch.flatten(self.avgpool(x), 1))


class NoGlobalPool(ResNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(x, 1))  # bug: avgpool never called


class SoftmaxOut(ResNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(super().forward(x), dim=1)  # bug: probabilities, not logits


def test_more_model_mistakes() -> None:
    report = check_model(NoBnDownsample(BasicBlock, [2, 2, 2, 2], small_input=True), "resnet18",
                         small_input=True)  # fmt: skip
    assert_first(report, "No BatchNorm after `downsample.0`", "`layer2.0`")
    assert len(report.problems) == 1, str(report)
    report = check_model(ResNet(StrideOnConv1AndConv2, [3, 4, 6, 3]), "resnet50")
    assert_first(report, "`conv1` has stride 2 in `layer2.0` as well as `conv2`", "stride 1",
                 absent=("instead of",))  # fmt: skip
    assert check_model(ResNet(OneReluModule, [2, 2, 2, 2]), "resnet18").passed
    report = check_model(SkipsLayer4(BasicBlock, [2, 2, 2, 2]), "resnet18")
    assert_first(report, "`layer4` is created but never called", absent=("in_features =",))
    assert len(report.problems) == 1, str(report)
    model = SkipsLayer4(BasicBlock, [2, 2, 2, 2])
    model.fc = nn.Linear(256, 1000)  # the fc "fixed" to match: still layer4 is named
    report = check_model(model, "resnet18")
    assert_first(report, "3 stages of blocks", "`layer4` is created but never called")
    assert len(report.problems) == 1, str(report)
    report = check_model(NoGlobalPool(BasicBlock, [2, 2, 2, 2]), "resnet18")
    assert_first(report, "has the right size (512 input features)", "receives 25,088 = 512 x 7 x 7",
                 "AdaptiveAvgPool2d", absent=("in_features =",))  # fmt: skip
    assert_fails(check_model(SoftmaxOut(BasicBlock, [2, 2, 2, 2]), "resnet18"), "softmax", "logits")
    model = rc.resnet50()
    for m in model.modules():
        if isinstance(m, Bottleneck):
            nn.init.zeros_(m.bn1.weight)  # bug: zero_init on bn1 instead of bn3
    report = check_model(model, "resnet50")
    assert_first(report, "initialised to zero in the middle of a residual branch", "`layer1.0.bn1`",
                 "`bn3` in a Bottleneck")  # fmt: skip
    assert len(report.problems) == 1, str(report)
    model = ResNet(ExpansionOne, [3, 4, 6, 3])  # expansion 1 and conv3 outputs planes: every stage
    report = check_model(model, "resnet50")
    assert_first(report, "`layer1`, `layer2`, `layer3` and `layer4` output 64, 128, 256 and 512",
                 "expansion")  # fmt: skip
    assert len(report.problems) == 1, str(report)


def test_more_block_mistakes() -> None:
    no_block_words = (*NOT_IN_A_BLOCK, "Parameters per")
    report = check_block(StrideOnConv1AndConv2)
    assert_first(report, "`conv1` has stride 2", "as well as `conv2`", absent=no_block_words)
    assert len(report.problems) == 1, str(report)
    assert check_block(OneReluModule).passed
    report = check_block(NoExpansionAttribute)
    assert_first(report, "`NoExpansionAttribute.expansion` is missing", "expansion = 1")
    report = check_block(BasicExpansion4)
    assert_first(report, "`BasicExpansion4.expansion` is 4, expected 1 for a BasicBlock",
                 absent=("conv1x1", *no_block_words))  # fmt: skip
    assert "from its convolutions" in report.summary
    report = check_block(UnusedConv3)
    assert_first(report, "never used in `forward`: `conv3` and `bn3`", absent=no_block_words)
    assert len(report.problems) == 1, str(report)


class SlicedShortcut(BasicBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        identity = x[:, :, :: self.stride, :: self.stride]  # bug: the given downsample unused
        return self.relu(out + identity)


class AddsIntoX(BasicBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        identity += out  # bug: in the identity case this overwrites x
        return self.relu(identity)


class ReluBeforeBn(BasicBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn1(self.relu(self.conv1(x)))  # bug: conv -> ReLU -> BN
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ConcatenatesShortcut(BasicBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(torch.cat([out, identity], 1))  # bug: cat, not add


def test_block_mistakes_found_by_trying_them() -> None:
    no_block_words = (*NOT_IN_A_BLOCK, "Parameters per")
    report = check_block(SlicedShortcut)
    assert_first(report, "`downsample` you were given is never used",
                 absent=("Wrong shortcut", *no_block_words))  # fmt: skip
    assert len(report.problems) == 1, str(report)
    report = check_block(AddsIntoX)
    assert_first(report, "changes its input `x` in place", "`out += identity`",
                 absent=("output differs", *no_block_words))  # fmt: skip
    assert len(report.problems) == 1, str(report)
    report = check_block(ReluBeforeBn)
    assert_first(report, "`relu` comes before `bn1`", "swap them",
                 absent=("Extra", "No ReLU", *no_block_words))  # fmt: skip
    assert len(report.problems) == 1, str(report)
    report = check_block(ConcatenatesShortcut)
    assert_first(report, "No residual connection", "`torch.cat`",
                 absent=("Output shape", *no_block_words))  # fmt: skip
    assert len(report.problems) == 1, str(report)


def test_head_without_fc_bias() -> None:
    model = rc.resnet18()
    model.fc = nn.Linear(512, 1000, bias=False)
    report = check_model(model, "resnet18")
    assert_first(report, "fc layer has no bias", absent=("parameters in total",))
    assert len(report.problems) == 1, str(report)


def test_in_place_input_and_stage_mistakes() -> None:
    report = check_model(ResNet(AddsIntoX, [2, 2, 2, 2], small_input=True), "resnet18",
                         small_input=True)  # fmt: skip
    assert_first(report, "changes its input `x` in place", "`layer1.0`", "`out += identity`")
    assert len(report.problems) == 1, str(report)
    projection = nn.Sequential(conv1x1(64, 128, 2), nn.BatchNorm2d(128))
    again = nn.Sequential(conv1x1(128, 128, 2), nn.BatchNorm2d(128))
    stage = nn.Sequential(BasicBlock(64, 128, 2, projection), BasicBlock(128, 128, 2, again))
    report = check_make_layer(stage, BasicBlock, 64, 128, blocks=2, stride=2)
    assert_first(report, "Block `1` changes the height and width again", "only the first block",
                 absent=("stages of blocks", "Output shape"))  # fmt: skip
    assert len(report.problems) == 1, str(report)
    small = nn.Sequential(conv1x1(256, 128, 2), nn.BatchNorm2d(128))  # bug: forgot * expansion
    stage = nn.Sequential(Bottleneck(256, 128, 2, small), Bottleneck(512, 128))
    report = check_make_layer(stage, Bottleneck, 256, 128, blocks=2, stride=2)
    assert_first(report, "`downsample.0` outputs the wrong number of channels",
                 "128 instead of 512", "planes * block.expansion")  # fmt: skip
    assert len(report.problems) == 1, str(report)


class AddsIdentityTwice(BasicBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + identity
        return self.relu(out + identity)  # bug: the shortcut added a second time


class StridesBothConvs(BasicBlock):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None, *_, **__):
        super().__init__(inplanes, planes, stride, downsample)
        self.conv2 = conv3x3(planes, planes, stride)  # bug: conv1 already has the stride


def test_shortcut_added_twice_and_a_double_stride() -> None:
    report = check_block(AddsIdentityTwice)
    assert_first(report, "The shortcut is added twice", "`out += identity`",
                 absent=("No ReLU", "Wrong shortcut", *NOT_IN_A_BLOCK))  # fmt: skip
    assert len(report.problems) == 1, str(report)
    report = check_model(ResNet(AddsIdentityTwice, [2, 2, 2, 2]), "resnet18")
    assert_first(report, "The shortcut is added twice", "`layer1.0`",
                 absent=("share their weights", "blocks per stage"))  # fmt: skip
    assert len(report.problems) == 1 and "8 residual blocks" in report.summary, str(report)
    report = check_block(StridesBothConvs)
    assert_first(report, "`conv2` has stride 2", "as well as `conv1`", "only `conv1` takes",
                 absent=NOT_IN_A_BLOCK)  # fmt: skip
    assert len(report.problems) == 1, str(report)


# --- Arguments that are not what a check expects ------------------------------------------------


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="num_classes must be a positive int, got 0"):
        check_model(rc.resnet20(), "resnet20", num_classes=0)
    with pytest.raises(ValueError, match="kind must be 'basic', 'bottleneck' or None"):
        check_block(BasicBlock, kind="resnet")
    with pytest.raises(ValueError, match="blocks must be a positive int, got 0"):
        check_make_layer(rc.resnet18().layer1, BasicBlock, 64, 64, blocks=0)
    report = check_block(42)
    assert_fails(report, "Expected a block class", "int")
    assert "check_block(int)" not in str(report)
    report = check_conv_helpers(nn.Conv2d, conv1x1)
    assert_fails(report, "not the class `Conv2d`")
    assert "+-" not in str(report)
    two_by_two = lambda i, o, stride=1: nn.Conv2d(i, o, 2, stride)  # noqa: E731
    report = check_conv_helpers(two_by_two, conv1x1)
    assert_fails(report, "builds a 2x2 convolution, expected 3x3", "bias")
    assert "+-" not in str(report)


def test_a_device_failure_is_not_blamed_on_channels() -> None:
    model = rc.resnet20()
    model.layer1[0].bn1.to("meta")  # one module left on another device
    report = check_model(model, "resnet20")
    assert_first(report, "different devices", "model.to(device)", absent=("channel count",))


def test_report_has_a_frame_of_its_own() -> None:
    bad = check_model(Net(ReluOnShortcut, cifar=True), "resnet20")
    page = bad._repr_html_()
    assert page.startswith("<div") and "border" in page and "overflow-wrap" in page
    assert "<code" in page and "`" not in page  # code spans become <code>, nothing left raw
    assert "❌" in page and "✅" in check_model(rc.resnet20(), "resnet20")._repr_html_()
    assert not re.search(r"(?<![-\w])width:\s*\d", page)  # no fixed width: it wraps on a phone
