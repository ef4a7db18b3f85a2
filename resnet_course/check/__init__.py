"""Automatic checks of a learner's ResNet, block, stage or conv helpers, with specific feedback.

Tools tier: the notebooks import it but never copy it, so it is free to change (the tests
say what must hold).

``check_model(model, "resnet50")`` says whether ``model`` is a correct ResNet-50 and, if not,
exactly what is wrong, where, and how to fix it. It judges behaviour and structure, never
attribute names: a correct ResNet with its own names (``shortcut`` instead of ``downsample``, one
block class for all stages, its own containers) passes.

How it works: the forward pass runs under a ``TorchFunctionMode`` that records every torch operation
(conv, BatchNorm, ReLU, add, pooling, linear, ...) together with the operations that produced its
inputs, which gives the dataflow graph of the network. A residual addition is an ``add`` of two
computed tensors of equal shape; walking back from its two inputs to their last common ancestor (the
block's input) separates the residual branch from the shortcut. The same analysis runs on the
package's own model of that architecture, and the two are compared: rules that hold in every ResNet
(no ReLU on the shortcut, one BatchNorm per conv, ...) first, then stages, blocks, stem, head,
parameter counts, and the output at a second input size.

The modules, in the order a check uses them:

- ``model``: ``check_model``; ``parts``: ``check_block``, ``check_make_layer``,
  ``check_conv_helpers``. These are the public API, imported here.
- ``record``: the ``TorchFunctionMode`` that records a forward pass as a list of ops.
- ``graph``: finds residual blocks, stages, stem and head in the recorded ops.
- ``describe``: ops and the differences between two sequences of ops, in words.
- ``rules``: what every ResNet does, whatever its names; ``failure``: why a forward pass raised.
- ``compare``: ``_judge``, the rules and then the comparison with the reference's graph.
- ``report``: ``Report``, the verdict, and how the findings are merged and ranked into one.

Example:
    >>> report = check_model(my_resnet18, "resnet18")
    >>> report.passed, report.problems
    (True, [])
"""

from .model import check_model
from .parts import check_block, check_conv_helpers, check_make_layer
from .report import Report

__all__ = ["Report", "check_block", "check_conv_helpers", "check_make_layer", "check_model"]
