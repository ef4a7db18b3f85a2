"""Measuring networks: parameters, multiply-adds, and proof that two modules compute the same.

Tools tier: the notebooks import it but never copy it, so it is free to change (the tests
say what must hold).

Chapter 1 counts parameters, chapter 3 counts multiply-adds with forward hooks, and chapter 2
proves two blocks equal; each chapter writes its helper once, and the later chapters import the
one version here.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


def count_params(module: nn.Module) -> int:
    """Number of learned parameters (BatchNorm's running statistics are buffers, not counted).

    Args:
        module: Any module.

    Returns:
        The sum of ``p.numel()`` over ``module.parameters()``.
    """
    return sum(p.numel() for p in module.parameters())


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside (BatchNorm accepts one 1x1 image); each module's mode restored after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.train(training)


def _example(model: nn.Module, x: Tensor | tuple[int, ...]) -> Tensor:
    """``x`` itself, or one image of shape ``x`` on the model's device (``meta`` works too)."""
    if isinstance(x, Tensor):
        return x
    if not isinstance(x, tuple | list) or not all(isinstance(n, int) for n in x):
        raise TypeError(
            f"x must be an input tensor or the shape of one input, e.g. (3, 224, 224); got {x!r}"
        )
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    return torch.zeros(1, *x, device=device)


def macs_by_layer(model: nn.Module, x: Tensor | tuple[int, ...]) -> dict[str, int]:
    """Multiply-adds per image of every convolution and linear layer, from one forward pass.

    Each output value of a convolution costs ``in_channels / groups * kh * kw`` multiply-adds, each
    output of a linear layer ``in_features``. BatchNorm, ReLU, pooling and the additions cost one
    operation per value and are left out, as in the paper's counts. The model runs once in eval
    mode without gradients; its modes are restored afterwards.

    Args:
        model: The network.
        x: An input batch (the count is for its first image), or the shape of one input without
            the batch dimension, e.g. ``(3, 224, 224)``. On the ``meta`` device nothing is
            computed, so even a ResNet-152 is counted at once.

    Returns:
        ``{module name: multiply-adds}`` for every ``nn.Conv2d`` and ``nn.Linear`` that ran, in
        the order they ran. A module used twice is counted twice.

    Shape:
        - x: ``(N, C, H, W)``, or ``(C, H, W)`` given as a tuple.
    """
    macs: dict[str, int] = {}

    def record(name: str):
        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            if isinstance(module, nn.Linear):
                per_output = module.in_features
            else:
                per_output = module.weight[0].numel()  # in_channels / groups * kh * kw
            macs[name] = macs.get(name, 0) + output[0].numel() * per_output

        return hook

    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    hooks = [m.register_forward_hook(record(n)) for n, m in layers]
    try:
        with torch.no_grad(), _eval_mode(model):
            model(_example(model, x))
    finally:
        for h in hooks:
            h.remove()
    return macs


def count_macs(model: nn.Module, x: Tensor | tuple[int, ...]) -> int:
    """Multiply-adds of all convolutions and linear layers for one image (see ``macs_by_layer``).

    Args:
        model: The network.
        x: An input batch, or the shape of one input, e.g. ``(3, 224, 224)``.

    Returns:
        The total number of multiply-adds per image.

    Shape:
        - x: ``(N, C, H, W)``, or ``(C, H, W)`` given as a tuple.
    """
    return sum(macs_by_layer(model, x).values())


def assert_same(ours: nn.Module, theirs: nn.Module, x: Tensor) -> None:
    """Asserts that two modules are the same network: same state, bit-identical outputs.

    First the state_dicts must have the same keys in the same order, with the same shapes. Then
    ``ours``'s state (weights and BatchNorm statistics) is copied into ``theirs``, and both must
    give exactly equal outputs (``torch.equal``, not merely close) in training mode, where
    BatchNorm uses the batch's statistics, and in eval mode, where it uses the running averages.
    Both modules are left in eval mode, with the same weights.

    Args:
        ours: The module to prove (e.g. a notebook's definition).
        theirs: The reference (e.g. the package's or torchvision's); its state is overwritten.
        x: An input batch for both.

    Raises:
        AssertionError: Naming the first difference: a state_dict key, a shape, or the mode in
            which the outputs differ.

    Shape:
        - x: whatever both modules accept, e.g. ``(N, C, H, W)``.
    """
    a, b = ours.state_dict(), theirs.state_dict()
    if list(a) != list(b):
        only_ours, only_theirs = set(a) - set(b), set(b) - set(a)
        detail = (
            f"only in ours: {sorted(only_ours)}; only in theirs: {sorted(only_theirs)}"
            if only_ours or only_theirs
            else "the same keys in a different order (modules created in a different order)"
        )
        raise AssertionError(f"The state_dicts have different keys: {detail}.")
    for key in a:
        if a[key].shape != b[key].shape:
            raise AssertionError(
                f"{key} has shape {tuple(a[key].shape)} in ours, {tuple(b[key].shape)} in theirs."
            )
    theirs.load_state_dict(a)
    with torch.no_grad():
        for training in (True, False):
            ours.train(training)
            theirs.train(training)
            if not torch.equal(ours(x), theirs(x)):
                mode = "training" if training else "eval"
                raise AssertionError(
                    f"Same weights, but the outputs differ in {mode} mode: the two forward "
                    "passes do not compute the same thing."
                )
