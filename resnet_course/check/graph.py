"""Analysing a recorded graph: residual blocks, stages, stem and head.

``_analyse(model, x)`` runs the model under the recorder and returns a ``_Graph``. A residual
addition is an ``add`` of two computed tensors of equal shape; walking back from its two inputs to
their last common ancestor (the block's input) separates the residual branch from the shortcut.
Consecutive blocks with the same output shape form a stage; what comes before the first block is
the stem, what comes after the last is the head.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import Tensor, nn

from ..validate import scores_hint
from .record import _Lazy, _Op, _Recorder
from .report import _format_error


@dataclass
class _Block:
    """One residual block found in the graph: ``end = relu(residual(start) + shortcut(start))``."""

    name: str  # the module whose forward adds, e.g. "layer2.0" (or a label: "the identity case")
    start: int  # op whose output is the block input
    add: int  # the residual addition
    end: int  # the block output: the last op of ``tail``, or the addition itself
    residual: list[int]  # ops of the residual branch, in order
    shortcut: list[int]  # ops of the shortcut (empty for the identity)
    tail: list[int] = field(default_factory=list)  # ops after the addition, up to the first ReLU
    pre: list[int] = field(default_factory=list)  # the block's own ops before its input splits
    scope: str = ""  # module names inside the block start with this (relative names drop it)


@dataclass
class _Graph:
    """Everything the checks need to know about one forward pass of one model."""

    ops: list[_Op]
    numel: dict[str, int]  # every parameter of the model -> number of elements
    used: set[str]  # names of the parameters some op used
    used_ids: set[int]  # id() of those parameters (valid only while the model lives)
    output: tuple[int, ...] | None  # output shape, None if the forward failed
    error: str = ""  # what went wrong in the forward: "raised ..." or "returned ..."
    broken: str = ""  # why the graph could not be analysed (a limit of this checker)
    failed: _Op | None = None  # the op that raised
    context: str = "model"  # what is checked: "model", "stage" or "block" (for the wording)
    types: dict[str, str] = field(default_factory=dict)  # module name -> class name
    entered: set[str] = field(default_factory=set)  # modules whose forward ran
    blocks: list[_Block] = field(default_factory=list)
    # Stages: runs of consecutive blocks with the same output shape.
    stages: list[list[_Block]] = field(default_factory=list)
    stem: list[int] = field(default_factory=list)  # ops before the first block
    head: list[int] = field(default_factory=list)  # ops after the last block
    gaps: dict[int, list[int]] = field(default_factory=dict)  # block index -> ops just before it
    unused: dict[str, int] = field(default_factory=dict)  # module never called -> its parameters
    mentioned: set[str] = field(default_factory=set)  # unused modules a problem already named

    @property
    def total(self) -> int:
        """Number of parameters of the model."""
        return sum(self.numel.values())

    def params_of(self, ops: list[int]) -> int:
        """Number of distinct parameters used by ``ops``."""
        return sum(self.numel.get(n, 0) for n in {p for i in ops for p in self.ops[i].params})


def _ancestors(ops: list[_Op], i: int) -> set[int]:
    """``i`` and every op it depends on."""
    seen, todo = set(), [i]
    while todo:
        j = todo.pop()
        if j not in seen:
            seen.add(j)
            todo.extend(ops[j].inputs)
    return seen


def _prefix(names: list[str]) -> str:
    """Common dotted prefix of module names: ["layer1.0.conv1", "layer1.0.bn1"] -> "layer1.0"."""
    parts = [n.split(".") for n in names if n]
    if not parts:
        return ""
    common = []
    for level in zip(*parts, strict=False):
        if len(set(level)) > 1:
            break
        common.append(level[0])
    if len(common) == min(len(p) for p in parts):  # one module: name its parent, the block
        common = common[:-1]
    return ".".join(common)


def _within(name: str, scope: str) -> bool:
    """True if module ``name`` is ``scope`` or inside it."""
    return name == scope or name.startswith(scope + ".")


def _split_branches(ops: list[_Op], a: int, b: int) -> tuple[int, list[int], list[int]] | None:
    """For an addition of ``a`` and ``b``: (block input, residual branch, shortcut branch)."""
    anc_a, anc_b = _ancestors(ops, a), _ancestors(ops, b)
    common = anc_a & anc_b
    if not common:
        return None
    start = max(common)  # the latest common ancestor is the block input
    before = _ancestors(ops, start)
    branches = [sorted(anc_a - before), sorted(anc_b - before)]
    # The residual branch is the one with the convolutions.
    branches.sort(key=lambda br: (sum(ops[i].kind == "conv" for i in br), len(br)), reverse=True)
    return start, branches[0], branches[1]


def _users(ops: list[_Op]) -> dict[int, list[int]]:
    """Op index -> indices of the ops that use its output."""
    users: dict[int, list[int]] = {}
    for j, op in enumerate(ops):
        for i in op.inputs:
            users.setdefault(i, []).append(j)
    return users


# Ops that end the chain of element-wise ops after a residual addition (see _tail).
_NOT_TAIL = {
    "conv",
    "add",
    "linear",
    "cat",
    "maxpool",
    "avgpool",
    "mean",
    "reshape",
    "pad",
    "slice",
}


def _tail(ops: list[_Op], users: dict[int, list[int]], add: int) -> list[int]:
    """The ops a block applies to ``out + identity``: a chain of one-input ops up to a ReLU."""
    tail, j = [], add
    while len(users.get(j, [])) == 1 and not (tail and ops[tail[-1]].kind == "relu"):
        k = users[j][0]
        if ops[k].kind in _NOT_TAIL or ops[k].inputs != [j]:
            break
        tail.append(k)
        j = k
    return tail


def _find_blocks(ops: list[_Op], label: str) -> list[_Block]:
    """Every residual addition in the graph, as a block."""
    users, blocks = _users(ops), []
    for i, op in enumerate(ops):
        if op.kind != "add" or len(op.inputs) != 2:
            continue
        a, b = op.inputs
        if not ops[a].shape == ops[b].shape == op.shape:
            continue
        split = _split_branches(ops, a, b)
        if split is None:
            continue
        start, residual, shortcut = split
        tail = _tail(ops, users, i)
        scope = op.scope or _prefix([ops[j].module for j in residual + shortcut])
        name = scope or label or f"block {len(blocks) + 1}"
        blocks.append(
            _Block(name, start, i, (tail or [i])[-1], residual, shortcut, tail, [], scope)
        )
    return blocks


def _structure(graph: _Graph, label: str) -> None:
    """Fills in ``graph``'s blocks, stages, stem, head and gaps from its ops."""
    ops, blocks = graph.ops, _find_blocks(graph.ops, label)
    graph.blocks = blocks
    for blk in blocks:
        shape = ops[blk.end].shape[1:]
        if graph.stages and ops[graph.stages[-1][-1].end].shape[1:] == shape:
            graph.stages[-1].append(blk)
        else:
            graph.stages.append([blk])
    if not blocks:
        return
    graph.stem = sorted(_ancestors(ops, blocks[0].start) - {0})
    after = {blocks[-1].end}  # the head: everything computed from the last block's output
    for j in range(blocks[-1].end + 1, len(ops)):
        if after & set(ops[j].inputs):
            after.add(j)
            graph.head.append(j)
    for k, (prev, blk) in enumerate(zip(blocks, blocks[1:], strict=False), 1):
        if blk.start != prev.end:
            gap = _ancestors(ops, blk.start) - _ancestors(ops, prev.end)
            graph.gaps[k] = [j for j in sorted(gap) if ops[j].kind != "reshape"]
    # A block's own ops before its input splits (an in-place ReLU on `x`, `x = conv1(x)` before
    # `identity = x`) belong to the block, not to the stem or the space between blocks.
    for k, blk in enumerate(blocks):
        before = graph.stem if k == 0 else graph.gaps.get(k, [])
        if graph.context == "block":
            blk.pre = list(before)
        elif blk.scope:
            blk.pre = [j for j in before if _within(ops[j].scope, blk.scope)]
        if k == 0:
            graph.stem = [j for j in graph.stem if j not in blk.pre]
        elif k in graph.gaps:
            graph.gaps[k] = [j for j in graph.gaps[k] if j not in blk.pre]


@contextmanager
def _modes_kept(model: nn.Module) -> Iterator[None]:
    """Restores the train/eval mode of every submodule afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


@contextmanager
def _scopes_tracked(model: nn.Module, rec: _Recorder) -> Iterator[None]:
    """Tells ``rec`` which module runs each op, through forward hooks removed afterwards."""
    handles = []
    try:
        for name, m in model.named_modules():
            handles.append(m.register_forward_pre_hook(partial(rec.enter, name)))
            handles.append(m.register_forward_hook(partial(rec.leave, name), always_call=True))
        yield
    finally:
        for h in handles:
            h.remove()


def _analyse(model: nn.Module, x: Tensor, label: str = "", context: str = "model") -> _Graph:
    """Runs ``model(x)`` in eval mode under the recorder and analyses the graph."""
    named = [*model.named_parameters(), *model.named_buffers()]
    names = {id(t): n for n, t in reversed(named)}  # reversed: a shared tensor's first name wins
    rec = _Recorder(names, x)
    output, error = None, ""
    with _modes_kept(model), torch.no_grad(), _scopes_tracked(model, rec):
        model.eval()
        try:
            with rec:
                out = model(x)
            if isinstance(out, Tensor):
                output = tuple(out.shape)
            else:
                error = (
                    f"returned an object of type {type(out).__name__}, not a tensor of class "
                    f"scores{scores_hint(out)}"
                )
        except Exception as err:
            error = f"raised {_format_error(err)}"
    numel = {n: 0 if isinstance(p, _Lazy) else p.numel() for n, p in model.named_parameters()}
    used = {names[i] for i in rec.used if i in names}
    graph = _Graph(rec.ops, numel, used, set(rec.used), output, error=error, failed=rec.failed)
    graph.context, graph.entered = context, rec.entered
    graph.types = {n: type(m).__name__ for n, m in model.named_modules()}
    leaves = {n for n, m in model.named_modules() if n and not any(True for _ in m.children())}
    for op in graph.ops:  # an op of no parameters is named after the leaf module that ran it
        op.module = op.module or (op.scope if op.scope in leaves else "")
    try:
        _structure(graph, label)
    except Exception as err:  # a limit of this checker must not look like the learner's bug
        rec.broken = rec.broken or f"{type(err).__name__}: {err}"
    graph.broken = rec.broken
    return graph
