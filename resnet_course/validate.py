"""Every check of arguments and inputs, in one place, so that the model files read like the paper.

Tools tier: the notebooks never copy it, so it is free to change; only the names the reference
tier calls must stay, since the notebooks' export cells call them too.

The reference tier (``layers``, ``blocks``, ``resnet``, ``cifar``) calls these in one line each:
``ResNet.__init__`` starts with :func:`resnet_args` and ends with :func:`check_every_input`, and
``forward`` stays a flat sequence of layers, like torchvision's. The tools tier (``train``) checks
``fit``'s and ``evaluate``'s arguments here too. Each error says what was wrong and what to do.
"""

import inspect
import math
from typing import Any

import torch
from torch import Tensor, nn


def _is_int(value: Any) -> bool:
    """True for an ``int`` that is not a ``bool`` (``True`` is an ``int`` in Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(name: str, value: Any, hint: str = "") -> None:
    """Raises a ``ValueError`` unless ``value`` is an integer >= 1 (``True`` is not).

    Args:
        name: The argument's name, for the message.
        value: What was passed.
        hint: Appended to the message, e.g. what the argument means.
    """
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer{hint}, got {value!r}")


def num_classes(value: Any) -> None:
    """Raises a ``ValueError`` unless ``value`` is a valid number of classes (an integer >= 1)."""
    positive_int("num_classes", value, " (the number of classes in your dataset, e.g. 10)")


# Torchvision's block signature: ResNet._make_layer calls every block this way.
_BLOCK_CALL = (64, 64, 1, None, 1, 64)  # inplanes, planes, stride, downsample, groups, base_width


def resnet_args(block: Any, layers: Any, classes: Any, groups: Any, width_per_group: Any) -> None:
    """Checks the arguments of :class:`~resnet_course.resnet.ResNet` before it builds anything.

    Args:
        block: Must be a block class with an ``expansion`` attribute and torchvision's signature
            ``(inplanes, planes, stride, downsample, groups, base_width)``.
        layers: Must be four positive integers.
        classes: ``num_classes``: a positive integer.
        groups: A positive integer.
        width_per_group: A positive integer.

    Raises:
        TypeError: For a block that is not a class, has no ``expansion`` or another signature.
        ValueError: For the other arguments.
    """
    if not isinstance(block, type) or not hasattr(block, "expansion"):
        raise TypeError(
            f"block must be a block class with an `expansion` attribute, such as BasicBlock "
            f"or Bottleneck (the class itself, not an instance); got {block!r}"
        )
    try:
        inspect.signature(block).bind(*_BLOCK_CALL)
    except TypeError:
        raise TypeError(
            f"ResNet builds each block as block(inplanes, planes, stride, downsample, groups, "
            f"base_width), torchvision's signature, but {block.__name__}"
            f"{inspect.signature(block)} does not take those arguments. Give it that signature "
            f"(BasicBlock and Bottleneck have it); for a network without shortcuts use "
            f"CifarResNet(depth, shortcut='none'), which builds PlainBlocks"
        ) from None
    if (
        not isinstance(layers, list | tuple)
        or len(layers) != 4
        or not all(_is_int(n) and n > 0 for n in layers)
    ):
        raise ValueError(
            f"layers must be four positive integers, the number of blocks in each stage "
            f"(e.g. [2, 2, 2, 2] for ResNet-18, [3, 4, 6, 3] for ResNet-34/50); got {layers!r}"
        )
    num_classes(classes)
    positive_int("groups", groups, " (1 for a ResNet, 32 for ResNeXt-50 32x4d)")
    positive_int("width_per_group", width_per_group, " (64 for a ResNet, 128 for a wide one)")


def cifar_args(depth: Any, classes: Any, shortcut: Any) -> None:
    """Checks the arguments of :class:`~resnet_course.cifar.CifarResNet`.

    Args:
        depth: Must be ``6n + 2`` for a whole ``n >= 1``.
        classes: ``num_classes``: a positive integer.
        shortcut: ``"A"``, ``"B"`` or ``"none"``.

    Raises:
        ValueError: Naming the argument, what it must be, and what was passed.
    """
    if not _is_int(depth) or depth < 8 or (depth - 2) % 6 != 0:
        raise ValueError(
            f"depth must be 6n + 2 for a whole number n >= 1 (20, 32, 44, 56, 110, ...): "
            f"three stages of n blocks with 2 convs each, plus the first conv and the fc; "
            f"got {depth!r}"
        )
    if shortcut not in ("A", "B", "none"):
        raise ValueError(
            f"shortcut must be 'A' (zero-padding identity), 'B' (1x1 projection) or 'none' "
            f"(plain network); got {shortcut!r}"
        )
    num_classes(classes)


def images(x: Any, channels: int, dtype: torch.dtype) -> None:
    """Raises an error naming the problem and the fix unless ``x`` is a batch a model can take.

    Args:
        x: The tensor given to a model's ``forward``.
        channels: The number of channels the model's first convolution expects.
        dtype: The dtype of the model's weights (``torch.float32`` unless converted).

    Raises:
        TypeError: If ``x`` is not a tensor, or not of the weights' floating-point dtype.
        ValueError: If ``x`` is not shaped ``(N, channels, H, W)``.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a tensor of images shaped (N, {channels}, H, W), got {x!r}")
    if x.dim() == 3 and x.shape[0] == channels:
        raise ValueError(
            f"expected a batch of images shaped (N, {channels}, H, W), got a single image of shape "
            f"{tuple(x.shape)}; add the batch dimension with x.unsqueeze(0)"
        )
    if x.dim() != 4:
        raise ValueError(
            f"expected a batch of images shaped (N, {channels}, H, W), got a tensor with "
            f"{x.dim()} dimensions of shape {tuple(x.shape)}"
        )
    if x.shape[1] != channels:
        hint = "; for grayscale images use x.expand(-1, 3, -1, -1)" if x.shape[1] == 1 else ""
        if x.shape[3] == channels:
            hint = "; channels come second in PyTorch: x.permute(0, 3, 1, 2)"
        raise ValueError(
            f"expected a batch of images shaped (N, {channels}, H, W), got {x.shape[1]} channels "
            f"in a tensor of shape {tuple(x.shape)}{hint}"
        )
    if not x.is_floating_point():
        raise TypeError(
            f"expected {dtype} images, got {x.dtype}: a model takes normalised floats, not raw "
            f"pixels. Use resnet_course.data.normalize(x, data.mean, data.std) (what fit and "
            f"evaluate feed it), or at least x.float() / 255"
        )
    if x.dtype != dtype:
        raise TypeError(
            f"expected {dtype} images (the dtype of the model's weights), got {x.dtype}; "
            f"convert them with x.to({dtype})"
        )


def _check_input(model: nn.Module, args: tuple) -> None:
    """A forward pre-hook: checks the batch before ``model.forward`` sees it."""
    if len(args) == 1:  # other calls (no input, extra arguments) fail in forward as usual
        images(args[0], model.conv1.in_channels, model.conv1.weight.dtype)


def check_every_input(model: nn.Module) -> None:
    """Makes ``model`` check each batch with :func:`images` before its ``forward`` runs.

    A forward pre-hook does it, so ``forward`` itself stays a plain sequence of layers.

    Args:
        model: A network whose first convolution is ``model.conv1``.
    """
    model.register_forward_pre_hook(_check_input)


def weights(value: Any, enum_name: str, builder: str) -> Any:
    """Resolves a builder's ``weights`` argument the way torchvision does.

    torchvision's ``resnet18(weights=...)`` accepts ``None``, a member of ``ResNet18_Weights``,
    or its name as a string: ``"DEFAULT"``, ``"IMAGENET1K_V1"``, ``"ResNet18_Weights.DEFAULT"``.

    Args:
        value: What was passed as ``weights``.
        enum_name: The torchvision enum of that builder, e.g. ``"ResNet18_Weights"``.
        builder: The builder's name, for messages, e.g. ``"resnet18"``.

    Returns:
        ``None``, or the torchvision enum member.

    Raises:
        ValueError: For a string that names no member.
        TypeError: For anything else (``True``, another model's weights, a path).
    """
    if value is None:
        return None
    import torchvision.models

    enum = getattr(torchvision.models, enum_name)
    names = ", ".join(repr(n) for n in dict.fromkeys(["DEFAULT", *enum.__members__]))
    if isinstance(value, enum):
        return value
    if isinstance(value, str):
        name = value.removeprefix(f"{enum_name}.")
        if name in enum.__members__:
            return enum[name]
        raise ValueError(
            f"{builder}(weights={value!r}): no such weights; use one of {names} "
            f"or torchvision.models.{enum_name}.DEFAULT"
        )
    old_style = " (the old pretrained=True) is not accepted, as in torchvision" * (value is True)
    raise TypeError(
        f"{builder}(weights={value!r}){old_style}: weights must be None (random "
        f"initialisation), torchvision.models.{enum_name}.DEFAULT or one of the names {names}"
    )


def fit_args(
    epochs: Any,
    batch_size: Any,
    lr: Any,
    momentum: Any,
    weight_decay: Any,
    schedule: Any,
    warmup: Any,
    label_smoothing: Any,
    optimizer: Any,
    seed: Any,
    train_size: int,
    test_size: int,
) -> None:
    """Checks ``fit``'s arguments before anything is built or trained.

    Args:
        epochs: A positive integer.
        batch_size: A positive integer, at most ``train_size``.
        lr: A finite number > 0.
        momentum: A number in [0, 1).
        weight_decay: A finite number >= 0.
        schedule: ``"cosine"`` or ``"step"``.
        warmup: A fraction in [0, 1].
        label_smoothing: A number in [0, 1).
        optimizer: ``"sgd"`` or ``"adamw"``.
        seed: An integer.
        train_size: Images in the training split.
        test_size: Images in the test split (at least 1: ``fit`` tests after every epoch).

    Raises:
        ValueError: Naming the argument, what it must be, and what was passed.
    """
    positive_int("epochs", epochs, " (passes over the training images)")
    positive_int("batch_size", batch_size, " (images per step, e.g. 128)")
    if batch_size > train_size:
        raise ValueError(
            f"batch_size={batch_size} is more than the {train_size} training images; fit drops "
            f"incomplete batches, so it would train on nothing. Use a batch_size of at most "
            f"{train_size}, or load more images"
        )
    if test_size < 1:
        raise ValueError(
            "the test split is empty, and fit tests the model after every epoch; load the "
            "dataset with test_size of at least 1"
        )

    for name, value, ok, what in [
        ("lr", lr, lambda v: v > 0, "a positive number (the peak learning rate, e.g. 0.1)"),
        ("momentum", momentum, lambda v: 0 <= v < 1, "in [0, 1), e.g. 0.9"),
        ("weight_decay", weight_decay, lambda v: v >= 0, "a number >= 0, e.g. 5e-4"),
        ("warmup", warmup, lambda v: 0 <= v <= 1, "a fraction of the steps in [0, 1], e.g. 0.2"),
        ("label_smoothing", label_smoothing, lambda v: 0 <= v < 1, "in [0, 1), 0 for none"),
    ]:
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (is_number and math.isfinite(value) and ok(value)):
            raise ValueError(f"{name} must be {what}, got {value!r}")
    if schedule not in ("cosine", "step"):
        raise ValueError(f"schedule must be 'cosine' or 'step', got {schedule!r}")
    if optimizer not in ("sgd", "adamw"):
        raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {optimizer!r}")
    if not _is_int(seed):
        raise ValueError(f"seed must be an integer, got {seed!r}")


def scores_hint(out: Any) -> str:
    """Where the class scores are in a model's output that is not a tensor, if they are there."""
    logits = out.get("logits") if isinstance(out, dict) else getattr(out, "logits", None)
    if isinstance(logits, Tensor):  # a Hugging Face model's output
        return (
            ". The scores are in its `logits`: use a module whose forward returns `model(x).logits`"
        )
    if isinstance(out, tuple | list) and out and isinstance(out[0], Tensor):
        return ". If the first item holds the scores, return only it from `forward`"
    return ""


def outputs(logits: Any, classes: int, batch: int) -> None:
    """Raises a ``ValueError`` unless a model gave ``(batch, classes)`` scores for a batch.

    Args:
        logits: What the model returned for a batch of ``batch`` images.
        classes: Classes in the dataset.
        batch: Images in the batch.
    """
    if not isinstance(logits, Tensor):
        raise TypeError(
            f"the model returned an object of type {type(logits).__name__}, not a tensor of "
            f"class scores shaped (N, {classes}){scores_hint(logits)}"
        )
    if logits.dim() == 2 and logits.shape == (batch, classes):
        return
    if logits.dim() == 2 and logits.shape[0] == batch:
        raise ValueError(
            f"the model gives {logits.shape[1]} outputs per image, but the data has {classes} "
            f"classes; build it with num_classes={classes} (e.g. resnet18(num_classes={classes}))"
            f", or replace its last layer: model.fc = nn.Linear(model.fc.in_features, {classes})"
        )
    raise ValueError(
        f"the model should return class scores shaped ({batch}, {classes}) for a batch of "
        f"{batch} images, got shape {tuple(logits.shape)}"
    )
