"""The two residual blocks: ``BasicBlock`` (ResNet-18/34) and ``Bottleneck`` (ResNet-50/101/152).

Reference tier: the notebooks copy its definitions into their ``export:blocks`` cells; after
editing it, run ``make sync`` (the tests fail until the copies agree).

Each computes ``relu(F(x) + shortcut(x))``. The shortcut is the identity unless the block changes
the shape of its input, in which case ``downsample`` (a 1x1 conv + BatchNorm) projects ``x`` to
the new shape. Module names and order follow torchvision, so state_dicts load both ways.
"""

from torch import Tensor, nn

from .layers import conv1x1, conv3x3


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut around them.

    Args:
        inplanes: Channels coming in.
        planes: Channels of both convolutions; the block outputs ``planes * expansion`` channels.
        stride: Stride of the first 3x3 convolution (2 halves the height and width).
        downsample: Module applied to ``x`` on the shortcut when the shape changes (stride 2 or a
            new channel count), usually ``conv1x1`` + ``BatchNorm2d``; ``None`` means identity.
        groups: Only 1 is supported (kept for torchvision's signature).
        base_width: Only 64 is supported (kept for torchvision's signature).

    Shape:
        - Input: ``(N, inplanes, H, W)``
        - Output: ``(N, planes, H / stride, W / stride)`` (rounded up)

    Example:
        >>> block = BasicBlock(64, 64)
        >>> block(torch.randn(2, 64, 56, 56)).shape
        torch.Size([2, 64, 56, 56])
    """

    expansion: int = 1  # output channels = planes * expansion

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError(
                f"BasicBlock supports only groups=1 and base_width=64, got groups={groups} and "
                f"base_width={base_width}; use Bottleneck for ResNeXt or wide ResNets"
            )
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def zero_init_last(self) -> None:
        """Sets ``bn2``'s weight to zero: the branch outputs 0 and the block starts as the identity.

        Goyal et al. (2017); the model decides which of its blocks call it.
        """
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: Tensor) -> Tensor:
        """Returns ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``."""
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)  # no ReLU here: the ReLU comes after the addition

        if self.downsample is not None:
            identity = self.downsample(x)

        out += identity
        out = self.relu(out)
        return out


class Bottleneck(nn.Module):
    """A 1x1 conv that reduces the channels, a 3x3 conv, and a 1x1 conv that expands them 4x.

    This is torchvision's "ResNet v1.5": the stride sits on the 3x3 convolution. The paper (v1)
    put it on the first 1x1, which then simply skips three pixels in four; v1.5 costs a little
    more compute and is about 0.5% more accurate on ImageNet. Parameter counts are identical.

    Args:
        inplanes: Channels coming in.
        planes: Channels of the inner 3x3 convolution (before ``groups``/``base_width`` widen it);
            the block outputs ``planes * 4`` channels.
        stride: Stride of the 3x3 convolution (2 halves the height and width).
        downsample: Module applied to ``x`` on the shortcut when the shape changes, usually
            ``conv1x1`` + ``BatchNorm2d``; ``None`` means identity.
        groups: Groups of the 3x3 convolution (32 in ResNeXt-50 32x4d).
        base_width: Width per group; the inner width is ``planes * base_width / 64 * groups``
            (128 in Wide ResNet-50-2).

    Shape:
        - Input: ``(N, inplanes, H, W)``
        - Output: ``(N, planes * 4, H / stride, W / stride)`` (rounded up)

    Example:
        >>> block = Bottleneck(256, 64)
        >>> block(torch.randn(2, 256, 56, 56)).shape
        torch.Size([2, 256, 56, 56])
    """

    expansion: int = 4  # output channels = planes * expansion

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
    ) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)  # v1.5: the stride is here, not on conv1
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def zero_init_last(self) -> None:
        """Sets ``bn3``'s weight to zero: the branch outputs 0 and the block starts as the identity.

        Goyal et al. (2017); the model decides which of its blocks call it.
        """
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: Tensor) -> Tensor:
        """Returns ``relu(bn3(conv3(...conv1(x))) + shortcut(x))``."""
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)

        out = self.conv3(out)
        out = self.bn3(out)  # no ReLU here: the ReLU comes after the addition

        if self.downsample is not None:
            identity = self.downsample(x)

        out += identity
        out = self.relu(out)
        return out
