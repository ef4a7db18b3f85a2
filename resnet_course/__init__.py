"""ResNet from Scratch: the reference solution of the course, identical to torchvision's ResNets.

Two tiers. The reference tier, ``layers``, ``blocks``, ``resnet`` and ``cifar``, is what the
notebooks teach and copy into their export cells: after editing it, run ``make sync``. The tools
tier serves the course; the notebooks import it, never copy it, so it is free to change:
``check`` (grading a learner's model), ``data`` and ``shapes10`` (datasets), ``train``,
``checkpoint``, ``validate`` (argument and input checks), ``measure``, ``draw``, ``plots``,
``settings`` (the environment variables) and ``distributed``. Dependencies point one way: tools
onto reference.
"""

from . import checkpoint, data, distributed, draw, measure, settings, train, validate
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
from .data import (
    SHAPES10_CLASSES,
    DeviceLoader,
    ImageData,
    download_dataset,
    load_dataset,
    make_shapes10,
)
from .layers import conv1x1, conv3x3
from .measure import assert_same, count_macs, count_params, macs_by_layer
from .resnet import ResNet, init_weights, resnet18, resnet34, resnet50, resnet101, resnet152
from .train import (
    Budget,
    Evaluation,
    History,
    budget,
    conv_gradient_norms,
    default_device,
    describe_device,
    evaluate,
    fit,
    profile,
    results_file,
)

__version__ = "0.1.0"

__all__ = [
    "SHAPES10_CLASSES",
    "Budget",
    "DeviceLoader",
    "Evaluation",
    "History",
    "ImageData",
    "BasicBlock",
    "Bottleneck",
    "CifarResNet",
    "PadShortcut",
    "PlainBlock",
    "Report",
    "ResNet",
    "budget",
    "checkpoint",
    "check_block",
    "check_conv_helpers",
    "check_make_layer",
    "check_model",
    "conv1x1",
    "conv3x3",
    "conv_gradient_norms",
    "data",
    "default_device",
    "describe_device",
    "download_dataset",
    "evaluate",
    "fit",
    "init_weights",
    "load_dataset",
    "make_shapes10",
    "plain20",
    "plain32",
    "plain44",
    "plain56",
    "plain110",
    "profile",
    "results_file",
    "settings",
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
    "train",
    "distributed",
    "draw",
    "measure",
    "assert_same",
    "count_macs",
    "count_params",
    "macs_by_layer",
    "validate",
]
