"""The CIFAR-10 networks of He et al. (2015), section 4.2, and their plain (shortcut-free) twins.

Reference tier: the notebooks copy its definitions into their ``export:cifar`` cells; after
editing it, run ``make sync`` (the tests fail until the copies agree).

Depth ``6n + 2``: a 3x3 conv with 16 channels, three stages of ``n`` BasicBlocks (``2n`` convs)
with 16, 32 and 64 channels on 32, 16 and 8 pixels, global average pooling and a linear layer.
ResNet-20/32/44/56/110 have ``n = 3, 5, 7, 9, 18``.
"""

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from . import validate
from .blocks import BasicBlock
from .layers import conv1x1, conv3x3
from .resnet import init_weights

Shortcut = Literal["A", "B", "none"]


class PadShortcut(nn.Module):
    """Option A: a parameter-free shortcut that subsamples ``x`` and pads new channels with zeros.

    Args:
        inplanes: Channels coming in.
        planes: Channels going out (``>= inplanes``).
        stride: Keep every ``stride``-th pixel (2 halves the height and width).

    Shape:
        - Input: ``(N, inplanes, H, W)``
        - Output: ``(N, planes, H / stride, W / stride)`` (rounded up)
    """

    def __init__(self, inplanes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra = planes - inplanes

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))  # append zero channels after the real ones

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra}"


class PlainBlock(nn.Module):
    """A ``BasicBlock`` without its shortcut: two 3x3 conv-BN layers, ReLU after each.

    Args:
        inplanes: Channels coming in.
        planes: Channels going out.
        stride: Stride of the first convolution.

    Shape:
        - Input: ``(N, inplanes, H, W)``
        - Output: ``(N, planes, H / stride, W / stride)`` (rounded up)
    """

    expansion: int = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)
        return out


class CifarResNet(nn.Module):
    """The paper's ResNet for 32x32 images, or its plain twin.

    Args:
        depth: Number of weighted layers, ``6n + 2`` (20, 32, 44, 56, 110, ...).
        num_classes: Size of the output.
        shortcut: ``"A"``: identity shortcuts, zero-padded where the channels grow (no parameters,
            the paper's choice for CIFAR); ``"B"``: a 1x1 conv + BatchNorm projection where the
            shape changes, identity elsewhere; ``"none"``: no shortcuts, the plain network.
        zero_init_residual: Start every residual block as the identity (Goyal et al., 2017),
            except, with option A, the two blocks whose shortcut pads zero channels (see below).

    Shape:
        - Input: ``(N, 3, H, W)``, normally ``H = W = 32``
        - Output: ``(N, num_classes)``

    Example:
        >>> model = CifarResNet(20)
        >>> model(torch.randn(8, 3, 32, 32)).shape
        torch.Size([8, 10])
    """

    def __init__(
        self,
        depth: int,
        num_classes: int = 10,
        shortcut: Shortcut = "A",
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        validate.cifar_args(depth, num_classes, shortcut)
        n = (depth - 2) // 6
        self.shortcut = shortcut
        self.inplanes = 16
        self.conv1 = conv3x3(3, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(16, n)
        self.layer2 = self._make_layer(32, n, stride=2)
        self.layer3 = self._make_layer(64, n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)

        init_weights(self)
        if zero_init_residual:
            for m in self.modules():
                # Not the blocks whose shortcut pads zero channels: zero-init would make them
                # output relu(0 + 0) = 0 there, and a ReLU passes no gradient at 0: dead for good.
                if isinstance(m, BasicBlock) and not isinstance(m.downsample, PadShortcut):
                    m.zero_init_last()
        validate.check_every_input(self)  # clear errors for a wrongly shaped or typed batch

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        """Builds one stage of ``blocks`` blocks; the first has stride ``stride``."""
        layers: list[nn.Module] = []
        for i in range(blocks):
            s = stride if i == 0 else 1
            if self.shortcut == "none":
                layers.append(PlainBlock(self.inplanes, planes, s))
            else:
                downsample = None
                if s != 1 or self.inplanes != planes:  # only where the shape changes
                    if self.shortcut == "A":
                        downsample = PadShortcut(self.inplanes, planes, s)
                    else:
                        downsample = nn.Sequential(
                            conv1x1(self.inplanes, planes, s), nn.BatchNorm2d(planes)
                        )
                layers.append(BasicBlock(self.inplanes, planes, s, downsample))
            self.inplanes = planes
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Returns the class scores (logits) for a batch of images."""
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)

        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)

        x = self.avgpool(x)
        x = x.flatten(1)
        x = self.fc(x)
        return x


def resnet20(**kwargs) -> CifarResNet:
    """ResNet-20 for CIFAR (n = 3): 269,722 parameters with option A and 10 classes."""
    return CifarResNet(20, **kwargs)


def resnet32(**kwargs) -> CifarResNet:
    """ResNet-32 for CIFAR (n = 5): 464,154 parameters with option A and 10 classes."""
    return CifarResNet(32, **kwargs)


def resnet44(**kwargs) -> CifarResNet:
    """ResNet-44 for CIFAR (n = 7): 658,586 parameters with option A and 10 classes."""
    return CifarResNet(44, **kwargs)


def resnet56(**kwargs) -> CifarResNet:
    """ResNet-56 for CIFAR (n = 9): 853,018 parameters with option A and 10 classes."""
    return CifarResNet(56, **kwargs)


def resnet110(**kwargs) -> CifarResNet:
    """ResNet-110 for CIFAR (n = 18): 1,727,962 parameters with option A and 10 classes."""
    return CifarResNet(110, **kwargs)


def plain20(**kwargs) -> CifarResNet:
    """The 20-layer plain network: ResNet-20 without shortcuts (same 269,722 parameters)."""
    return CifarResNet(20, shortcut="none", **kwargs)


def plain32(**kwargs) -> CifarResNet:
    """The 32-layer plain network."""
    return CifarResNet(32, shortcut="none", **kwargs)


def plain44(**kwargs) -> CifarResNet:
    """The 44-layer plain network."""
    return CifarResNet(44, shortcut="none", **kwargs)


def plain56(**kwargs) -> CifarResNet:
    """The 56-layer plain network: ResNet-56 without shortcuts (same 853,018 parameters)."""
    return CifarResNet(56, shortcut="none", **kwargs)


def plain110(**kwargs) -> CifarResNet:
    """The 110-layer plain network."""
    return CifarResNet(110, shortcut="none", **kwargs)
