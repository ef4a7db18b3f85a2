"""ResNet from Scratch: the reference solution of the course, identical to torchvision's ResNets."""

from .blocks import BasicBlock, Bottleneck
from .check import Report, check_block, check_conv_helpers, check_make_layer, check_model
from .cifar import (
    CifarResNet,
    PadShortcut,
    PlainBlock,
    plain20,
    plain32,
    plain44,
    plain56,
    plain110,
    resnet20,
    resnet32,
    resnet44,
    resnet56,
    resnet110,
)
from .layers import conv1x1, conv3x3
from .resnet import ResNet, init_weights, resnet18, resnet34, resnet50, resnet101, resnet152

__version__ = "0.1.0"

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "CifarResNet",
    "PadShortcut",
    "PlainBlock",
    "Report",
    "ResNet",
    "check_block",
    "check_conv_helpers",
    "check_make_layer",
    "check_model",
    "conv1x1",
    "conv3x3",
    "init_weights",
    "plain20",
    "plain32",
    "plain44",
    "plain56",
    "plain110",
    "resnet18",
    "resnet20",
    "resnet32",
    "resnet34",
    "resnet44",
    "resnet50",
    "resnet56",
    "resnet101",
    "resnet110",
    "resnet152",
]
