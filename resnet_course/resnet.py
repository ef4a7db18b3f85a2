"""The ImageNet ResNets (He et al., 2015) with torchvision's module names and initialisation.

Reference tier: the notebooks copy its definitions into their ``export:resnet`` cells; after
editing it, run ``make sync`` (the tests fail until the copies agree).

``resnet18`` ... ``resnet152`` build the same networks as ``torchvision.models.resnet18`` ...:
same parameters, same state_dict keys, identical outputs for identical weights.
"""

import pickle
from typing import Any

import torch
from torch import Tensor, nn

from . import validate
from .blocks import BasicBlock, Bottleneck
from .layers import conv1x1, conv3x3


def init_weights(model: nn.Module, zero_init_residual: bool = False) -> None:
    """Initialises a ResNet in place exactly as torchvision does.

    Convolutions get Kaiming-normal weights scaled by their fan-out (He et al., 2015), which
    keeps the variance of the signal steady through ReLUs; BatchNorm starts as the identity
    (weight 1, bias 0). Linear layers keep PyTorch's default.

    Args:
        model: The network to initialise.
        zero_init_residual: Call ``zero_init_last()`` on every block that has it (``BasicBlock``
            and ``Bottleneck``): its last BatchNorm weight becomes zero, so that each block starts
            as the identity (Goyal et al., 2017). Helps large-batch training.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    if zero_init_residual:
        for m in model.modules():
            if hasattr(m, "zero_init_last"):  # each block knows its last BatchNorm
                m.zero_init_last()


class ResNet(nn.Module):
    """A residual network: a stem, four stages of residual blocks, global pooling and a classifier.

    Stage ``i`` has ``layers[i]`` blocks with ``64, 128, 256, 512`` planes; stages 2 to 4 start
    with a stride-2 block that halves the height and width.

    Args:
        block: The block class, ``BasicBlock`` or ``Bottleneck`` (anything with torchvision's block
            signature and an ``expansion`` attribute).
        layers: Number of blocks in each of the four stages, e.g. ``[2, 2, 2, 2]`` for ResNet-18.
        num_classes: Size of the output (1000 for ImageNet).
        zero_init_residual: Start every block as the identity (see ``init_weights``).
        groups: Groups of the 3x3 convolutions in Bottlenecks (ResNeXt).
        width_per_group: Width of each group in Bottlenecks (64 is a normal ResNet; 128 is wide).
        small_input: For 32x32 images: the first conv becomes a 3x3 with stride 1 and the max-pool
            is dropped, so the stages see 32, 16, 8 and 4 pixels instead of 8, 4, 2 and 1.

    Shape:
        - Input: ``(N, 3, H, W)``, any ``H, W`` (224 for ImageNet, 32 for CIFAR)
        - Output: ``(N, num_classes)``, one score (logit) per class

    Example:
        >>> model = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=10)
        >>> model(torch.randn(8, 3, 224, 224)).shape
        torch.Size([8, 10])
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: list[int],
        num_classes: int = 1000,
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        small_input: bool = False,
    ) -> None:
        super().__init__()
        validate.resnet_args(block, layers, num_classes, groups, width_per_group)

        self.inplanes = 64  # channels entering the next block; _make_layer keeps it up to date
        self.groups = groups
        self.base_width = width_per_group
        if small_input:
            self.conv1 = conv3x3(3, self.inplanes)
        else:
            self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        # Identity keeps the module names (and state_dict keys) the same for both stems.
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))  # any input size -> 1x1, unlike AvgPool2d(7)
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        init_weights(self, zero_init_residual)
        validate.check_every_input(self)  # clear errors for a wrongly shaped or typed batch

    def _make_layer(
        self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int = 1
    ) -> nn.Sequential:
        """Builds one stage: ``blocks`` blocks, the first of which may change the shape.

        Args:
            block: The block class.
            planes: Planes of every block in the stage (the stage outputs ``planes * expansion``).
            blocks: How many blocks.
            stride: Stride of the first block.

        Returns:
            An ``nn.Sequential`` of the blocks, named ``0``, ``1``, ...

        Shape:
            - Input: ``(N, self.inplanes, H, W)``
            - Output: ``(N, planes * block.expansion, H / stride, W / stride)``
        """
        downsample = None
        # The shortcut needs a projection only where the block changes the shape of x.
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )

        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(
                block(self.inplanes, planes, groups=self.groups, base_width=self.base_width)
            )
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Returns the class scores (logits) for a batch of images."""
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)

        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)

        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)
        return x


def _resnet(
    block: type[BasicBlock | Bottleneck],
    layers: list[int],
    weights: Any,
    weights_enum: str,
    **kwargs: Any,
) -> ResNet:
    """Builds a ResNet; with ``weights``, loads torchvision's pretrained weights into it.

    ``weights`` is what torchvision accepts: ``None``, a member of the enum named
    ``weights_enum`` (e.g. ``ResNet18_Weights.DEFAULT``) or its name (``"DEFAULT"``).
    """
    weights = validate.weights(weights, weights_enum, weights_enum.split("_")[0].lower())
    if weights is not None and kwargs.get("num_classes", 1000) != 1000:
        raise ValueError(
            f"pretrained ImageNet weights come with a 1000-class fc layer, but num_classes="
            f"{kwargs['num_classes']}; build with the default num_classes and then replace "
            f"model.fc = nn.Linear(model.fc.in_features, {kwargs['num_classes']})"
        )
    model = ResNet(block, layers, **kwargs)
    if weights is not None:
        model.load_state_dict(_download_state_dict(weights))
    return model


def _download_state_dict(weights: Any) -> dict[str, Tensor]:
    """Fetches a torchvision ``WeightsEnum``'s state_dict (cached in ``$TORCH_HOME`` if there)."""
    path = f"{torch.hub.get_dir()}/checkpoints/{weights.url.rsplit('/', 1)[-1]}"
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except OSError as err:  # URLError (offline) is an OSError
        raise RuntimeError(
            f"could not download {weights} from {weights.url} ({err}). Offline, download that "
            f"file on a machine that is online and copy it to {path}"
        ) from err
    except (RuntimeError, pickle.UnpicklingError, EOFError) as err:
        raise RuntimeError(
            f"the weights file {path} is corrupt or truncated ({err}); delete it and run again "
            f"to download a fresh copy"
        ) from err


def resnet18(*, weights: Any = None, num_classes: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-18: BasicBlocks ``[2, 2, 2, 2]``, 11,689,512 parameters at 1000 classes.

    Args:
        weights: ``None`` for random initialisation, or torchvision's weights, e.g.
            ``torchvision.models.ResNet18_Weights.DEFAULT`` or its name ``"DEFAULT"``
            (downloaded once, then cached).
        num_classes: Size of the output.
        **kwargs: Passed to ``ResNet`` (``zero_init_residual``, ``small_input``).

    Returns:
        The model.

    Shape:
        - Input: ``(N, 3, H, W)``
        - Output: ``(N, num_classes)``
    """
    return _resnet(
        BasicBlock, [2, 2, 2, 2], weights, "ResNet18_Weights", num_classes=num_classes, **kwargs
    )


def resnet34(*, weights: Any = None, num_classes: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-34: BasicBlocks ``[3, 4, 6, 3]``, 21,797,672 parameters at 1000 classes.

    Args and shapes as in ``resnet18``.
    """
    return _resnet(
        BasicBlock, [3, 4, 6, 3], weights, "ResNet34_Weights", num_classes=num_classes, **kwargs
    )


def resnet50(*, weights: Any = None, num_classes: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-50: Bottlenecks ``[3, 4, 6, 3]``, 25,557,032 parameters at 1000 classes.

    Args and shapes as in ``resnet18``.
    """
    return _resnet(
        Bottleneck, [3, 4, 6, 3], weights, "ResNet50_Weights", num_classes=num_classes, **kwargs
    )


def resnet101(*, weights: Any = None, num_classes: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-101: Bottlenecks ``[3, 4, 23, 3]``, 44,549,160 parameters at 1000 classes.

    Args and shapes as in ``resnet18``.
    """
    return _resnet(
        Bottleneck, [3, 4, 23, 3], weights, "ResNet101_Weights", num_classes=num_classes, **kwargs
    )


def resnet152(*, weights: Any = None, num_classes: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-152: Bottlenecks ``[3, 8, 36, 3]``, 60,192,808 parameters at 1000 classes.

    Args and shapes as in ``resnet18``.
    """
    return _resnet(
        Bottleneck, [3, 8, 36, 3], weights, "ResNet152_Weights", num_classes=num_classes, **kwargs
    )
