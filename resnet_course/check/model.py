"""``check_model``: is this network a correct ResNet of a given architecture?

The learner's model is deep-copied and analysed on a fixed batch of random images; the package's
model of the same architecture is analysed on the meta device (shapes only, so it is fast), and
the two graphs are judged (see ``compare``). The model must also work at a second input size and
for a single image.
"""

import copy
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor, nn

from ..cifar import CifarResNet
from ..resnet import resnet18, resnet34, resnet50, resnet101, resnet152
from .compare import _count, _judge
from .describe import _diff, _size
from .graph import _analyse, _Graph, _modes_kept
from .report import _RESULT, Report, _Findings, _format_error

# The architectures check_model knows: the package's ImageNet factories and the CIFAR depths.
_IMAGENET = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50,
             "resnet101": resnet101, "resnet152": resnet152}  # fmt: skip
_CIFAR = {"resnet20": 20, "resnet32": 32, "resnet44": 44, "resnet56": 56, "resnet110": 110}


def check_model(
    model: nn.Module, arch: str, num_classes: int | None = None, small_input: bool = False
) -> Report:
    """Checks that ``model`` is a correct ResNet of architecture ``arch``.

    It judges behaviour and structure, not names: residual additions, what is on each branch,
    blocks per stage, parameters per stage, stem, head, output shape, and the output at a second
    input size. The model is deep-copied and run in eval mode without gradients, so its weights
    and train/eval mode are left as they were. A model whose forward raises gets a report too.

    Args:
        model: The learner's network (an instance, not the class).
        arch: ``"resnet18"``, ``"resnet34"``, ``"resnet50"``, ``"resnet101"``, ``"resnet152"``
            (ImageNet, 224x224 inputs) or ``"resnet20"``, ``"resnet32"``, ``"resnet44"``,
            ``"resnet56"``, ``"resnet110"`` (CIFAR, 32x32 inputs; option A or B shortcuts).
        num_classes: Size of the output (a positive int); None means 1000 for ImageNet and 10
            for CIFAR.
        small_input: The model uses the 3x3 stem without max-pool for 32x32 inputs
            (``resnet18(small_input=True)``); ImageNet architectures only.

    Returns:
        A ``Report``; ``report.passed`` is True if no problem was found.

    Raises:
        ValueError: If ``arch`` is not one of the names above, or ``num_classes`` is not a
            positive int.
    """
    if arch not in _IMAGENET and arch not in _CIFAR:
        raise ValueError(f"unknown arch {arch!r}; use one of {[*_IMAGENET, *_CIFAR]}")
    cifar = arch in _CIFAR
    small_input = small_input and not cifar
    if num_classes is None:
        num_classes = 10 if cifar else 1000
    _positive_int(num_classes, "num_classes")
    size = 32 if cifar or small_input else 224
    other = 64 if size == 224 else 16  # smaller: a pool or fc sized for `size` fails there
    title = f"check_model: {arch}, {num_classes} classes{', small-input stem' * small_input}"
    f = _Findings()
    if not isinstance(model, nn.Module):
        hint = " (the class itself: create the model first)" if isinstance(model, type) else ""
        f.problem(f"Expected a `torch.nn.Module`, got {type(model).__name__}{hint}.")
        return f.report(title)
    work = _private_copy(model, f)
    mine = _analyse(work, _images(2, 3, size, work))
    # CIFAR accepts option A (zero-padding) and B (projection) shortcuts: compare with the same one.
    projection = any(mine.ops[j].kind == "conv" for b in mine.blocks for j in b.shortcut)
    ref = _reference_graph(arch, num_classes, small_input, "B" if projection else "A", size)
    small_stem = not cifar and not small_input and _small_stem(mine, arch, num_classes, size, f)
    _judge(mine, ref, f, arch, cifar, skip_stem=small_stem)
    if not mine.error:
        _check_sizes(work, mine, f, size, other)
        _check_zero_init(work, mine, f)
    if mine.total != ref.total and not f.problems:  # else a problem above explains the count
        diff = mine.total - ref.total
        f.problem(
            f"{mine.total:,} parameters in total, expected {ref.total:,} ({diff:+,}): compare "
            "each layer's size with the reference's.",
            tier=_RESULT,
        )
    if cifar and mine.blocks and not mine.error:
        f.note(_OPTION_B if projection else _OPTION_A)
    if mine.error:
        return f.report(title, f"{_count(mine, ref)}; the forward pass failed.")
    counts = [len(s) for s in mine.stages]
    return f.report(
        title,
        f"{len(mine.blocks)} residual blocks in {len(counts)} stages {counts}, "
        f"{_count(mine, ref)}; run at {size}x{size} and {other}x{other} inputs.",
    )


_OPTION_A = "Option A shortcuts: zero-padding where the shape changes, no parameters (the paper's)."


_OPTION_B = "Option B shortcuts: a 1x1 conv + BatchNorm projection where the shape changes."


@lru_cache(maxsize=16)
def _reference_graph(arch: str, classes: int, small: bool, shortcut: str, size: int) -> _Graph:
    """The analysed graph of the package's model, built on the meta device (shapes only: fast)."""
    with torch.device("meta"):
        if arch in _CIFAR:
            model = CifarResNet(_CIFAR[arch], num_classes=classes, shortcut=shortcut)
        else:
            model = _IMAGENET[arch](num_classes=classes, small_input=small)
    return _analyse(model, torch.empty(2, 3, size, size, device="meta"))


def _small_stem(mine: _Graph, arch: str, classes: int, size: int, f: _Findings) -> bool:
    """True (and says so) if an ImageNet model checked at 224x224 has the 32x32 stem: a CIFAR
    ResNet-18 checked without ``small_input=True``."""
    small = _reference_graph(arch, classes, True, "B", size)
    if (
        not mine.blocks
        or not mine.stem
        or _diff(mine, mine.stem, small, small.stem, "", "stem", "")
    ):
        return False
    f.problem(
        "The stem is the small-input one: a 3x3 conv with stride 1 and no max-pool, made for "
        f"32x32 images, where {arch} has `conv7x7(stride 2) -> BN -> ReLU -> maxpool3(stride 2, "
        "padding 1)` for 224x224 images. If the model is meant for 32x32 images (CIFAR), check it "
        f'with `check_model(model, "{arch}", small_input=True)`.',
        pos=mine.stem[0],
    )
    return True


def _check_zero_init(work: nn.Module, g: _Graph, f: _Findings) -> None:
    """A BatchNorm with all-zero weights (gamma) is right only at the end of a residual branch.

    ``zero_init_residual`` zeroes the last BatchNorm of each residual branch, so that each block
    starts as the identity. Zeroed anywhere else, the branch outputs a constant and, behind a
    ReLU, gets no gradient: it never learns.
    """
    modules = dict(work.named_modules())
    for blk in g.blocks:
        bns = [g.ops[j].module for j in blk.residual if g.ops[j].kind == "bn"]
        for name in dict.fromkeys(bns[:-1]):
            weight = getattr(modules.get(name), "weight", None)
            if isinstance(weight, Tensor) and not weight.is_meta and name not in bns[-1:]:
                if weight.any():
                    continue
                f.problem(
                    "BatchNorm weights (gamma) initialised to zero in the middle of a residual "
                    "branch: {where}. Zero-initialise only the last BatchNorm of each branch "
                    "(`bn2` in a BasicBlock, `bn3` in a Bottleneck), so that the block starts as "
                    "the identity; a zero gamma earlier makes the rest of the branch the same for "
                    "every input, and the ReLU after it (at beta 0) lets no gradient through.",
                    f"`{name}`",
                    key="zero gamma",
                    pos=blk.residual[0],
                )


def _positive_int(value: Any, name: str) -> None:
    """Raises a ValueError unless ``value`` is an int of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _private_copy(model: nn.Module, f: _Findings) -> nn.Module:
    """A deep copy, so the learner's weights and state are never touched."""
    try:
        return copy.deepcopy(model)
    except Exception as err:
        f.note(
            f"Could not copy the model ({type(err).__name__}); checked the original in eval mode "
            "without gradients (its train/eval mode is restored)."
        )
        return model


def _images(n: int, channels: int, size: int, like: nn.Module) -> Tensor:
    """A fixed random batch on the model's device and dtype."""
    p = next(iter(like.parameters()), None)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, channels, size, size, generator=gen)
    return x.to(p.device, p.dtype) if p is not None and p.is_floating_point() else x


def _run(model: nn.Module, x: Tensor) -> tuple[tuple[int, ...] | None, str]:
    """Output shape of ``model(x)`` in eval mode, or None and the formatted error."""
    with _modes_kept(model), torch.no_grad():
        model.eval()
        try:
            out = model(x)
        except Exception as err:
            return None, _format_error(err)
    return (tuple(out.shape), "") if isinstance(out, Tensor) else (None, "it returned no tensor")


def _check_sizes(work: nn.Module, g: _Graph, f: _Findings, size: int, other: int) -> None:
    """The model must work at another input size and for a single image, as it did at ``size``."""
    shape, err = _run(work, _images(1, 3, other, work))
    if shape == (1, *g.output[1:]):
        return
    shape2, err2 = _run(work, _images(2, 3, other, work))
    pos = len(g.ops)
    if shape2 == g.output:
        f.problem(
            f"Fails for a single image (batch size 1): {err or f'the output has shape {shape}'}. "
            "Probably `squeeze()` removed the batch dimension too; use `torch.flatten(x, 1)`.",
            pos=pos,
        )
        return
    result = err2 or f"the output has shape {shape2}"
    pools = [g.ops[j] for j in g.head if g.ops[j].kind in ("avgpool", "maxpool")]
    fixed = [
        op for op in pools if "adaptive" not in op.info and op.info["k"] == op.info["in_shape"][2:]
    ]
    if fixed:
        k = _size(fixed[0].info["k"])
        f.problem(
            f"Fixed-size pooling: the pool before the fc has a fixed {k}x{k} window, which is "
            f"global only when the last feature map is {k}x{k}, i.e. for {size}x{size} inputs. "
            f"At {other}x{other} inputs: {result}. Use `nn.AdaptiveAvgPool2d((1, 1))`, which "
            "averages whatever size arrives.",
            pos=pos,
        )
    else:
        f.problem(
            f"Works only at {size}x{size} inputs: at {other}x{other}, {result}. A ResNet "
            "accepts any input size; look for a size hard-coded in `__init__` or `forward` "
            "(a fixed pooling window, `view(-1, 512 * 7 * 7)`, ...).",
            tier=_RESULT,
            pos=pos,
        )
