"""The two convolutions every ResNet is built from.

Reference tier: the notebooks copy its definitions into their ``export:layers`` cells; after
editing it, run ``make sync`` (the tests fail until the copies agree).

Both have ``bias=False``: each is followed by a BatchNorm, whose own shift (``beta``) would
cancel any bias the convolution adds, so a bias would only be dead weight.
"""

from torch import nn


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """A 3x3 convolution that keeps the spatial size at stride 1 and halves it at stride 2.

    Args:
        in_planes: Channels of the input.
        out_planes: Channels of the output.
        stride: 1 keeps height and width; 2 halves them (rounding up).
        groups: Split the channels into this many independent groups (ResNeXt); 1 is a normal conv.

    Returns:
        An ``nn.Conv2d`` with ``kernel_size=3``, ``padding=1`` and no bias.

    Shape:
        - Input: ``(N, in_planes, H, W)``
        - Output: ``(N, out_planes, H', W')`` with ``H' = (H + 2*1 - 3) // stride + 1``,
          that is ``H`` at stride 1 and ``ceil(H / 2)`` at stride 2.
    """
    return nn.Conv2d(
        in_planes, out_planes, kernel_size=3, stride=stride, padding=1, groups=groups, bias=False
    )


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """A 1x1 convolution: mixes channels at each pixel, changes the channel count cheaply.

    Args:
        in_planes: Channels of the input.
        out_planes: Channels of the output.
        stride: 2 keeps every second pixel (used by projection shortcuts that downsample).

    Returns:
        An ``nn.Conv2d`` with ``kernel_size=1`` and no bias.

    Shape:
        - Input: ``(N, in_planes, H, W)``
        - Output: ``(N, out_planes, H', W')`` with ``H' = (H - 1) // stride + 1``.
    """
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)
