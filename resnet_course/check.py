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

Example:
    >>> report = check_model(my_resnet18, "resnet18")
    >>> report.passed, report.problems
    (True, [])
"""

import copy
import difflib
import html
import re
import traceback
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache, partial
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from .blocks import BasicBlock, Bottleneck
from .cifar import CifarResNet
from .layers import conv1x1, conv3x3
from .resnet import ResNet, resnet18, resnet34, resnet50, resnet101, resnet152

__all__ = ["Report", "check_block", "check_conv_helpers", "check_make_layer", "check_model"]

# The architectures check_model knows: the package's ImageNet factories and the CIFAR depths.
_IMAGENET = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50,
             "resnet101": resnet101, "resnet152": resnet152}  # fmt: skip
_CIFAR = {"resnet20": 20, "resnet32": 32, "resnet44": 44, "resnet56": 56, "resnet110": 110}


# ---------------------------------------------------------------------------------------------
# The report


@dataclass
class Report:
    """The verdict of a check: passed or not, what is wrong, and what is worth knowing.

    Attributes:
        title: What was checked, e.g. ``"check_model: resnet50"``.
        problems: Specific, human-readable problems (what, where, how to fix); empty if it passed.
            The first one names the mistake most likely to be the cause of the others.
        notes: Information that does not fail the check (e.g. ResNet v1 vs v1.5 strides).
        summary: One line saying what was checked.
        passed: True when ``problems`` is empty (a property).

    ``bool(report)`` is ``report.passed``. A notebook shows it as a framed box (HTML with inline
    styles, so it looks the same in JupyterLab, Colab and the book) and a Markdown console as
    Markdown; ``str(report)`` is the same as plain text, deterministic (no addresses or timings),
    so nbval can compare it.
    """

    title: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: str = ""

    @property
    def passed(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def __bool__(self) -> bool:
        return self.passed

    def _verdict(self) -> str:
        n = len(self.problems)
        return "passed" if self.passed else f"FAILED, {n} problem{'s' * (n != 1)}"

    def __str__(self) -> str:
        lines = [f"{self.title}: {self._verdict()}"]
        if self.summary:
            lines.append(f"  {self.summary}")
        if self.problems:
            lines.append("Problems:")
            lines += [f"  {i}. {p}" for i, p in enumerate(self.problems, 1)]
        if self.notes:
            lines.append("Notes:")
            lines += [f"  - {n}" for n in self.notes]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        icon = "✅" if self.passed else "❌"
        lines = [f"{icon} **{_md(self.title)}: {self._verdict()}**"]
        if self.summary:
            lines += ["", _md(self.summary)]
        if self.problems:
            lines += ["", "**Problems**", ""]
            lines += [f"{i}. {_md(p)}" for i, p in enumerate(self.problems, 1)]
        if self.notes:
            lines += ["", "**Notes**", ""] + [f"- {_md(n)}" for n in self.notes]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        # A framed box with a coloured edge, so a report never reads as the author's prose.
        # Inline styles only (no CSS classes, no fixed widths): it wraps on a phone, keeps the
        # page's font and text colour (light and dark themes), and looks the same everywhere.
        colour = "#1a7f37" if self.passed else "#cf222e"
        icon = "✅" if self.passed else "❌"
        box = (
            f"border:1px solid {colour};border-left:6px solid {colour};border-radius:6px;"
            f"padding:0.5em 0.9em;margin:0.4em 0;background:{colour}14;color:inherit;"
            "max-width:100%;box-sizing:border-box;overflow-wrap:anywhere;line-height:1.45"
        )
        parts = [
            f'<div style="{box}">',
            f'<div style="font-weight:600">{icon} {_html(self.title)}: '
            f'<span style="color:{colour}">{self._verdict()}</span></div>',
        ]
        if self.summary:
            parts.append(f'<div style="opacity:0.85;margin-top:0.2em">{_html(self.summary)}</div>')
        for heading, items, tag in (("Problems", self.problems, "ol"), ("Notes", self.notes, "ul")):
            if items:
                parts.append(f'<div style="font-weight:600;margin-top:0.5em">{heading}</div>')
                parts.append(f'<{tag} style="margin:0.2em 0 0.2em 1.4em;padding:0">')
                parts += [f'<li style="margin:0.2em 0">{_html(item)}</li>' for item in items]
                parts.append(f"</{tag}>")
        parts.append("</div>")
        return "\n".join(parts)


def _md(text: str) -> str:
    """Escapes Markdown outside `code` spans, so ``__init__`` or ``<lambda>`` show as written."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # even parts are outside backticks
        parts[i] = re.sub(r"([_*\\[\]])", r"\\\1", parts[i]).replace("<", "&lt;")
    return "`".join(parts)


def _html(text: str) -> str:
    """Escapes HTML and shows `code` spans as ``<code>``."""
    parts = html.escape(text, quote=False).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: show it as it is
        return html.escape(text, quote=False)
    for i in range(1, len(parts), 2):
        parts[i] = f'<code style="overflow-wrap:anywhere">{parts[i]}</code>'
    return "".join(parts)


# Problems are ranked by tier, then by where they happen in the dataflow (the first place a
# network goes wrong is the likeliest cause of what follows), then by the order they were found.
_FATAL, _MISTAKE, _RESULT = 0, 1, 2


class _Findings:
    """Collects problems and notes and ranks them.

    The same finding at several places (blocks, configurations) becomes one message: findings are
    merged by ``key`` (by default the text; the first text is kept) and ``{where}`` in the text is
    replaced by all the places it was seen.
    """

    def __init__(self, every: list[str] | None = None) -> None:
        self.problems: dict[str, tuple[str, list[str], tuple[int, int, int]]] = {}
        self.notes: dict[str, list[str]] = {}
        self.every = every or []  # all the places tried: a finding seen at all of them says so

    def problem(
        self, text: str, where: str = "", *, key: str = "", tier: int = _MISTAKE, pos: int = 0
    ) -> None:
        """Adds a problem found at op ``pos`` of the graph; see the class docstring."""
        key = key or text
        if key in self.problems:
            first, wheres, rank = self.problems[key]
            self.problems[key] = (first, [*wheres, where], min(rank, (tier, pos, rank[2])))
        else:
            self.problems[key] = (text, [where], (tier, pos, len(self.problems)))

    def note(self, text: str, where: str = "") -> None:
        """Adds a note, merged like problems."""
        self.notes.setdefault(text, []).append(where)

    def count(self) -> int:
        """Number of problems found so far, repeats included."""
        return sum(len(wheres) for _, wheres, _ in self.problems.values())

    def has(self, key: str) -> bool:
        """True if a problem with this key was found."""
        return key in self.problems

    def report(self, title: str, summary: str = "") -> Report:
        """Turns the findings into a ``Report``, most likely cause first."""
        ranked = sorted(self.problems.values(), key=lambda found: found[2])

        def places(wheres: list[str]) -> str:
            if self.every and set(wheres) == set(self.every):
                return "every configuration tried"
            return _places(wheres)

        problems = [text.replace("{where}", places(wheres)) for text, wheres, _ in ranked]
        notes = [text.replace("{where}", places(wheres)) for text, wheres in self.notes.items()]
        return Report(title, problems, notes, summary)


def _quote(name: str) -> str:
    """A module name in backticks; a description ("the identity case") as it is."""
    return name if " " in name or not name else f"`{name}`"


def _places(wheres: list[str]) -> str:
    """``["`a`", "`b`", ...]`` -> "`a`, `b` and `c`", shortened when long."""
    unique = list(dict.fromkeys(w for w in wheres if w))
    if len(unique) > 4:  # a learner needs the pattern, not 30 names
        unique = unique[:3] + [f"{len(unique) - 3} more"]
    return (
        " and ".join([", ".join(unique[:-1]), unique[-1]]) if len(unique) > 1 else "".join(unique)
    )


# ---------------------------------------------------------------------------------------------
# Recording the dataflow graph


@dataclass
class _Op:
    """One recorded torch operation: what it was, which ops produced its inputs, its output."""

    kind: str  # "conv", "bn", "relu", "add", "maxpool", "avgpool", "linear", ... (see _KINDS)
    inputs: list[int]  # indices of the ops that produced its tensor inputs
    shape: tuple[int, ...]  # shape of its output (for a failed op: of its first input)
    module: str = ""  # name of the module whose weights it used, e.g. "layer1.0.conv1"
    params: tuple[str, ...] = ()  # names of the parameters it used
    info: dict[str, Any] = field(default_factory=dict)  # kernel, stride, bias, ... (see _op_info)
    scope: str = ""  # the innermost module running when it ran, e.g. "layer1.0.relu"


# torch function name -> kind; names missing here keep their own name as kind.
_KINDS = {
    "conv2d": "conv", "batch_norm": "bn", "relu": "relu", "relu_": "relu", "linear": "linear",
    "add": "add", "add_": "add", "__add__": "add", "__iadd__": "add", "__radd__": "add",
    "max_pool2d": "maxpool", "_max_pool2d": "maxpool", "max_pool2d_with_indices": "maxpool",
    "avg_pool2d": "avgpool", "adaptive_avg_pool2d": "avgpool", "mean": "mean",
    "pad": "pad", "__getitem__": "slice", "cat": "cat",
}  # fmt: skip
# Operations that only change the layout of a tensor: skipped when comparing structures.
_LAYOUT = {
    "view", "reshape", "flatten", "squeeze", "unsqueeze", "contiguous", "clone", "detach", "to",
    "float", "type_as", "view_as", "reshape_as",
}  # fmt: skip


def _tensors(obj: Any) -> list[Tensor]:
    """The tensors in an argument or result, looking one level into lists, tuples and dicts."""
    items = (
        obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list | tuple) else [obj]
    )
    return [t for t in items if isinstance(t, Tensor)]


def _pair(v: Any) -> tuple[int, ...]:
    """``3`` -> ``(3, 3)``; ``[3, 3]`` -> ``(3, 3)``."""
    return tuple(v) if isinstance(v, list | tuple) else (v, v)


def _arg(args: tuple, kwargs: dict, i: int, name: str, default: Any = None) -> Any:
    """Argument ``name`` of a call, given positionally at ``i`` or by keyword."""
    return args[i] if len(args) > i else kwargs.get(name, default)


def _op_info(name: str, kind: str, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The hyperparameters that matter for ``kind``, read from the call's arguments."""
    a = partial(_arg, args, kwargs)  # a(i, name, default): argument i, or the keyword `name`
    if kind == "conv":
        w, groups = a(1, "weight"), a(6, "groups", 1)
        return dict(
            k=tuple(w.shape[2:]),
            cin=w.shape[1] * groups,
            cout=w.shape[0],
            stride=_pair(a(3, "stride", 1)),
            padding=_pair(a(4, "padding", 0)),
            dilation=_pair(a(5, "dilation", 1)),
            groups=groups,
            bias=a(2, "bias") is not None,
        )
    if kind == "bn":
        stats = a(1, "running_mean")
        return dict(features=stats.shape[0] if isinstance(stats, Tensor) else None)
    if kind == "linear":
        w = a(1, "weight")
        return dict(fin=w.shape[1], fout=w.shape[0], bias=a(2, "bias") is not None)
    if name.startswith("adaptive"):
        return dict(adaptive=True, k=_pair(a(1, "output_size")))
    if kind in ("maxpool", "avgpool"):
        k = a(1, "kernel_size")
        return dict(
            k=_pair(k), stride=_pair(a(2, "stride") or k), padding=_pair(a(3, "padding", 0))
        )
    return {}


_Lazy = nn.parameter.UninitializedTensorMixin  # nn.LazyLinear & co. before their first call


class _Recorder(TorchFunctionMode):
    """Records every torch operation of a forward pass as an ``_Op`` (see the module docstring).

    Tensors are identified by ``id()``: an in-place op (``out += x``, ``relu_``) makes its own op
    the producer of the tensor it changed. When a tensor is freed its entry is dropped, so a new
    tensor that reuses the ``id()`` is never mistaken for it.
    """

    def __init__(self, names: dict[int, str], x: Tensor) -> None:
        super().__init__()
        self.names = names  # id(parameter or buffer) -> qualified name
        self.ops = [_Op("input", [], tuple(x.shape))]
        self.producer = {id(x): 0}  # id(tensor) -> index of the op that last wrote it
        self.used: set[int] = set()  # id() of every Parameter an op used
        self.failed: _Op | None = None  # the op that raised, if one did
        self.broken = ""  # set if recording itself failed (then the graph is incomplete)
        self.scopes = [""]  # names of the modules whose forward is running, innermost last
        self.entered: set[str] = {""}  # names of the modules whose forward ran

    def enter(self, name: str, *_: Any) -> None:
        """Forward pre-hook: ``name``'s forward starts."""
        self.scopes.append(name)
        self.entered.add(name)

    def leave(self, name: str, *_: Any) -> None:
        """Forward hook (also called when the forward raises): ``name``'s forward ends."""
        if len(self.scopes) > 1 and self.scopes[-1] == name:
            self.scopes.pop()

    def __torch_function__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        try:
            out = func(*args, **kwargs)
        except Exception:
            self.failed = self._make_op(func, args, kwargs, None, failed=True)
            raise
        op = self._make_op(func, args, kwargs, out)
        if op is not None:
            for t in _tensors(out):
                self.producer[id(t)] = len(self.ops)
                weakref.finalize(t, self.producer.pop, id(t), None)
            self.ops.append(op)
        return out

    def _make_op(
        self, func: Any, args: tuple, kwargs: dict, out: Any, failed: bool = False
    ) -> _Op | None:
        """The ``_Op`` for one call, or None if it produced no tensor (``x.dim()``, ``x.shape``)."""
        try:
            outs = _tensors(out)
            ins = [t for v in (*args, *kwargs.values()) for t in _tensors(v)]
            if not (outs or failed) or any(isinstance(t, _Lazy) for t in ins):
                return None
            name = getattr(func, "__name__", str(func))
            kind = "reshape" if name in _LAYOUT else _KINDS.get(name, name)
            params = [t for t in ins if isinstance(t, nn.Parameter)]
            self.used.update(id(p) for p in params)
            named = [self.names[id(t)] for t in ins if id(t) in self.names]
            shape = outs[0].shape if outs else ins[0].shape if ins else ()
            info = _op_info(name, kind, args, kwargs)
            info["in_shape"] = tuple(ins[0].shape) if ins else ()
            return _Op(
                kind,
                list(dict.fromkeys(self.producer[id(t)] for t in ins if id(t) in self.producer)),
                tuple(shape),
                named[0].rpartition(".")[0] if named else "",
                tuple(self.names.get(id(p), f"<unnamed {tuple(p.shape)}>") for p in params),
                info,
                self.scopes[-1],
            )
        except Exception as err:  # never let a recording bug look like the learner's bug
            self.broken = f"{type(err).__name__}: {err}"
            return None


# ---------------------------------------------------------------------------------------------
# Analysing the graph: blocks, stages, stem, head


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


def _format_error(err: BaseException) -> str:
    """``"ValueError: message (in forward: `line`)"``: deterministic, first line only."""
    msg = re.sub(r" at 0x[0-9a-fA-F]+", "", str(err).strip().split("\n")[0])[:300]
    text = f"{type(err).__name__}: {msg}" if msg else type(err).__name__
    # Point at the learner's line: the last frame outside torch and this file.
    frames = [
        fr
        for fr in traceback.extract_tb(err.__traceback__)
        if "/torch/" not in fr.filename and fr.filename != __file__
    ]
    if frames and frames[-1].line:
        text += f" (in `{frames[-1].name}`: `{frames[-1].line.strip()}`)"
    return text


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
                error = f"returned a {type(out).__name__}, not a tensor of class scores"
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


# ---------------------------------------------------------------------------------------------
# Describing operations, so that two graphs can be compared and differences shown


def _size(t: tuple[int, ...]) -> str:
    """(3, 3) -> "3"; (1, 2) -> "1x2"."""
    return str(t[0]) if len(set(t)) == 1 else "x".join(map(str, t))


def _is_global_pool(op: _Op) -> bool:
    """An average pool (or mean) that leaves one value per channel."""
    return op.kind in ("avgpool", "mean") and len(op.shape) >= 2 and set(op.shape[2:]) <= {1}


def _describe(op: _Op, strides: bool = True, channels: bool = True) -> str:
    """A short text for an op, e.g. "conv3x3(64->128, stride 2)", "BN", "ReLU", "fc(512->10)"."""
    i = op.info
    if op.kind == "conv":
        extra = [f"{i['cin']}->{i['cout']}" if channels else ""]
        extra.append(f"stride {_size(i['stride'])}" if strides and i["stride"] != (1, 1) else "")
        extra.append(
            f"padding {_size(i['padding'])}"
            if i["padding"] != tuple(k // 2 for k in i["k"])
            else ""
        )
        extra.append(f"groups {i['groups']}" if i["groups"] != 1 else "")
        extra.append(f"dilation {_size(i['dilation'])}" if i["dilation"] != (1, 1) else "")
        extra.append("bias" if i["bias"] and channels else "")
        args = ", ".join(e for e in extra if e)
        return f"conv{'x'.join(map(str, i['k']))}" + (f"({args})" if args else "")
    if op.kind == "linear":
        return (
            f"fc({i['fin']}->{i['fout']}{'' if i['bias'] else ', no bias'})" if channels else "fc"
        )
    if _is_global_pool(op):
        return "global-avgpool"
    if i.get("adaptive"):
        return f"adaptive-{op.kind}(to {_size(i['k'])})"
    if op.kind in ("maxpool", "avgpool"):
        return (
            f"{op.kind}{_size(i['k'])}(stride {_size(i['stride'])}, padding {_size(i['padding'])})"
        )
    return {"bn": "BN", "relu": "ReLU", "pad": "zero-pad", "cat": "concat"}.get(op.kind, op.kind)


def _sequence(
    graph: _Graph, ops: list[int], strides: bool = True, channels: bool = True
) -> list[str]:
    """Descriptions of ``ops``, skipping layout-only operations."""
    return [
        _describe(graph.ops[j], strides, channels) for j in ops if graph.ops[j].kind != "reshape"
    ]


def _shortcut(graph: _Graph, blk: _Block) -> str:
    """ "identity", "zero-pad (no parameters)", or the ops of a projection."""
    seq = _sequence(graph, blk.shortcut)
    if not seq:
        return "identity"
    if not graph.params_of(blk.shortcut) and "ReLU" not in seq:
        return "zero-pad (no parameters)" if {"zero-pad", "concat"} & set(seq) else " -> ".join(seq)
    return " -> ".join(seq)


def _arrow(seq: list[str]) -> str:
    return "`" + " -> ".join(seq) + "`" if seq else "nothing"


# What an op is, in words, for an op no module names.
_WORDS = {
    "bn": "BatchNorm", "relu": "ReLU", "conv": "convolution", "add": "addition",
    "maxpool": "max-pool", "avgpool": "average pool", "linear": "fc layer", "pad": "zero-padding",
    "cat": "concatenation", "mul": "multiplication", "global-avgpool": "global average pool",
}  # fmt: skip


def _token(op: _Op) -> str:
    """What kind of op this is, for aligning two sequences of ops."""
    return "global-avgpool" if _is_global_pool(op) else op.kind


def _rel(name: str, scope: str) -> str:
    """``name`` relative to the block ``scope``: ("layer1.0.conv2", "layer1.0") -> "conv2"."""
    return name[len(scope) + 1 :] if scope and name.startswith(scope + ".") else name


def _label(g: _Graph, j: int, scope: str = "") -> str:
    """An op as the learner wrote it: "`conv2`", or "the ReLU" for an op of no module."""
    op = g.ops[j]
    name = _rel(op.module, scope)
    if name:
        return f"`{name}`"
    return f"the {_WORDS.get(_token(op), op.kind)}"


# ---------------------------------------------------------------------------------------------
# Comparing a sequence of ops with the reference's: the specific difference, in words

# Why an op must be there, for the ops a learner most often leaves out.
_MISSING_HINT: dict[str | tuple[str, str], str] = {
    "bn": "every convolution is followed by its own BatchNorm (`nn.BatchNorm2d`), before any "
    "ReLU or addition",
    "relu": "each BatchNorm is followed by a ReLU, except the last one of a residual branch, "
    "whose output goes into the addition",
    "maxpool": "`nn.MaxPool2d(kernel_size=3, stride=2, padding=1)` halves the height and width "
    "before the first stage",
    "global-avgpool": "pool globally before the fc: `nn.AdaptiveAvgPool2d((1, 1))`",
    ("stem", "relu"): "the stem is conv -> BatchNorm -> ReLU, like every layer of a ResNet",
}
_KERNEL_HINT = {3: "use `conv3x3` (3x3, padding 1)", 1: "use `conv1x1`", 7: "7x7, padding 3"}


@dataclass
class _Diff:
    """One specific difference from the reference: where it is, what it is, in words."""

    pos: int  # index of the op in the learner's graph (for ranking)
    key: str  # the same mistake in several places or configurations has the same key
    text: str  # with "{where}" for the places
    ops: tuple[str, ...] = ()  # the kinds of op it is about (to name an unused module with it)


def _diff(
    mine: _Graph, a: list[int], ref: _Graph, b: list[int], scope: str, part: str, place: str
) -> list[_Diff]:
    """The specific differences between ops ``a`` (mine) and ``b`` (the reference's), in order.

    Args:
        mine, ref: The two graphs.
        a, b: The ops of one part (a residual branch, a shortcut, the stem) in each.
        scope: The block's module name, so that modules are named as in its class (`conv2`).
        part: "residual branch", "shortcut" or "stem", for the wording.
        place: "in {where}" for a block (filled in by the findings), "in the stem" otherwise.
    """
    a = [j for j in a if mine.ops[j].kind != "reshape"]
    b = [j for j in b if ref.ops[j].kind != "reshape"]
    ta, tb = [_token(mine.ops[j]) for j in a], [_token(ref.ops[j]) for j in b]
    want = f" The {part} should be {_arrow(_sequence(ref, b, part == 'stem', False))}."
    found: list[_Diff] = []

    def after(i: int) -> str:  # the place before a[i], in words
        return f"after {_label(mine, a[i - 1], scope)}" if i else f"at the start of the {part}"

    def what(ops: list[int], g: _Graph) -> str:
        return " -> ".join(_WORDS.get(_token(g.ops[j]), g.ops[j].kind) for j in ops)

    pairs = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes():
        if tag == "equal":
            pairs += list(zip(a[i1:i2], b[j1:j2], strict=True))
            continue
        pos = a[min(i1, len(a) - 1)] if a else 0
        if tag == "insert":  # mine lacks b[j1:j2]
            hint = _MISSING_HINT.get((part, tb[j1]), _MISSING_HINT.get(tb[j1], ""))
            hint = hint if j2 - j1 == 1 else ""
            text = f"No {what(b[j1:j2], ref)} {after(i1)} {place}" + (f": {hint}." if hint else ".")
            key = f"{part}: no {tb[j1:j2]} {after(i1)}"
            found.append(_Diff(pos, key, text + want, tuple(tb[j1:j2])))
        elif tag == "delete":  # mine has ops the reference has not
            labels = " -> ".join(_label(mine, j, scope).removeprefix("the ") for j in a[i1:i2])
            text = f"Extra {labels} {after(i1)} {place}: the reference has nothing there."
            found.append(_Diff(pos, f"{part}: extra {ta[i1:i2]} {after(i1)}", text + want))
        else:
            labels = " -> ".join(_label(mine, j, scope) for j in a[i1:i2])
            text = f"{labels} {after(i1)} {place}, where a ResNet has {what(b[j1:j2], ref)}."
            text = text[0].upper() + text[1:]
            found.append(_Diff(pos, f"{part}: {ta[i1:i2]} for {tb[j1:j2]}", text + want))
    found += _diff_convs(mine, ref, pairs, scope, part, place, want)
    return sorted(found, key=lambda d: d.pos)


def _diff_convs(
    mine: _Graph, ref: _Graph, pairs: list[tuple[int, int]], scope: str, part: str, place: str,
    want: str,
) -> list[_Diff]:  # fmt: skip
    """Differences between convs (and pools) that ``_diff`` aligned: stride, kernel, channels."""
    found = []
    convs = [(x, y) for x, y in pairs if mine.ops[x].kind == "conv"]
    m_strided = [x for x, y in convs if mine.ops[x].info["stride"] != (1, 1)]
    r_strided = [(x, y) for x, y in convs if ref.ops[y].info["stride"] != (1, 1)]
    if [x for x, _ in r_strided] != m_strided:
        if r_strided and not m_strided:
            x, y = r_strided[0]
            text = (
                f"No convolution of the {part} {place} has a stride: pass `stride` to "
                f"{_label(mine, x, scope)} (stride {_size(ref.ops[y].info['stride'])}), so that "
                "the branch halves the height and width as the shortcut does."
            )
            found.append(_Diff(x, f"{part}: no stride", text))
        elif r_strided:
            x, y = m_strided[0], r_strided[0][0]
            text = (
                f"The stride is on {_label(mine, x, scope)} instead of {_label(mine, y, scope)} "
                f"{place}: the reference strides its "
                f"{'x'.join(map(str, ref.ops[r_strided[0][1]].info['k']))} convolution. "
                f"Pass `stride` to {_label(mine, y, scope)} and leave the other convs at "
                "stride 1."
            )
            found.append(_Diff(x, f"{part}: stride on {_label(mine, x, scope)}", text))
        else:
            x = m_strided[0]
            text = (
                f"{_label(mine, x, scope)} has stride {_size(mine.ops[x].info['stride'])} {place}, "
                "where the reference keeps the height and width (stride 1)."
            )
            found.append(_Diff(x, f"{part}: stride on {_label(mine, x, scope)}", text))
    last_conv = convs[-1][0] if convs else -1
    for x, y in pairs:
        m, r = mine.ops[x].info, ref.ops[y].info
        name = _label(mine, x, scope)
        pool = [(i.get("k"), i.get("stride"), i.get("padding")) for i in (m, r)]
        if mine.ops[x].kind in ("maxpool", "avgpool"):
            if "k" in m and "k" in r and pool[0] != pool[1]:
                text = (
                    f"{name} {place} is `{_describe(mine.ops[x])}`, expected "
                    f"`{_describe(ref.ops[y])}`."
                )
                found.append(_Diff(x, f"{part}: {name} pool", text))
            continue
        if mine.ops[x].kind != "conv":
            continue
        if m["k"] != r["k"]:
            k, rk = "x".join(map(str, m["k"])), "x".join(map(str, r["k"]))
            hint = _KERNEL_HINT.get(r["k"][0], "") if len(set(r["k"])) == 1 else ""
            text = f"{name} is a {k} convolution {place}, expected {rk}" + (
                f": {hint}." if hint else "."
            )
            found.append(_Diff(x, f"{part}: kernel of {name}", text + want))
        elif m["padding"] != r["padding"]:
            text = (
                f"{name} has padding {_size(m['padding'])} {place}, expected "
                f"{_size(r['padding'])}: a {_size(m['k'])}x{_size(m['k'])} convolution needs "
                f"padding {_size(r['padding'])} to keep the height and width."
            )
            found.append(_Diff(x, f"{part}: padding of {name}", text))
        if m["cout"] != r["cout"]:
            hint = (
                " The last convolution of a residual branch outputs `planes * expansion` channels."
                if x == last_conv and part == "residual branch"
                else ""
            )
            text = (
                f"{name} outputs the wrong number of channels {place}: {m['cout']} instead of "
                f"{r['cout']}{' (in {first})' if place == 'in {where}' else ''}.{hint}"
            )
            found.append(_Diff(x, f"{part}: channels of {name}", text))
        elif (m["groups"], m["dilation"]) != (r["groups"], r["dilation"]):
            text = (
                f"{name} {place} is `{_describe(mine.ops[x], False)}`, expected "
                f"`{_describe(ref.ops[y], False)}`."
            )
            found.append(_Diff(x, f"{part}: settings of {name}", text))
    return found


# ---------------------------------------------------------------------------------------------
# The checks: rules every ResNet (v1) follows, then a comparison with the reference


def _unused_in(g: _Graph, scope: str, kinds: tuple[str, ...]) -> str:
    """Names unused modules of ``kinds`` inside block ``scope``, as a sentence ("" if none)."""
    classes = {"bn": "BatchNorm", "conv": "Conv", "relu": "ReLU", "linear": "Linear"}
    found = [
        m
        for m in g.unused
        if (not scope or _within(m, scope))
        and any(classes.get(k, "?") in g.types.get(m, "") for k in kinds)
    ]
    g.mentioned.update(found)
    names = _places([f"`{_rel(m, scope)}`" for m in found])
    return (
        f" ({names} {'is' if len(found) == 1 else 'are'} created but never called.)"
        if found
        else ""
    )


def _check_rules(g: _Graph, f: _Findings) -> set[int]:
    """Rules every ResNet (v1) follows, whatever its names; returns the ops they flagged."""
    if g.output is not None and not g.blocks:
        f.problem(
            "No residual connection: nothing adds a block's input back to its output, so this is a "
            "plain network, not a ResNet. Each block must compute `out = F(x) + shortcut(x)` "
            "(`out += identity`) and then apply the ReLU.",
            pos=len(g.ops),
        )
    flagged = _check_shared_blocks(g, f) if g.context == "model" else set()
    for blk in g.blocks:
        if not flagged & set(blk.residual):
            flagged |= _check_block_rules(g, blk, f)
    return flagged | _check_conv_bn_rules(g, f, flagged)


def _check_shared_blocks(g: _Graph, f: _Findings) -> set[int]:
    """Blocks that use the same weights are one module repeated, as `[block(...)] * n` does."""
    owner: dict[str, int] = {}
    shared: set[int] = set()
    for k, blk in enumerate(g.blocks):
        for p in {p for j in blk.residual for p in g.ops[j].params}:
            if owner.setdefault(p, k) != k:
                shared.update((owner[p], k))
    names = [g.blocks[k].name for k in sorted(shared)]
    for name in dict.fromkeys(names):
        f.problem(
            "Blocks share their weights ({where}): `[block(...)] * n` repeats one module n times. "
            "Create a new block for each position, in a loop or a list comprehension.",
            f"`{name}` used {names.count(name)} times" if names.count(name) > 1 else f"`{name}`",
            pos=min(g.blocks[k].add for k in shared),
        )
    return {j for k in shared for j in g.blocks[k].residual + g.blocks[k].shortcut}


def _check_block_rules(g: _Graph, blk: _Block, f: _Findings) -> set[int]:
    """What comes before the split, ReLUs around the addition, needless projections."""
    ops, where, flagged = g.ops, _quote(blk.name), set()
    label = partial(_label, g, scope=blk.scope)
    if blk.pre:
        flagged.update(blk.pre + blk.residual)
        kinds = [ops[j].kind for j in blk.pre]
        if "conv" in kinds:
            f.problem(
                f"The shortcut starts after {_arrow(_sequence(g, blk.pre, False, False))} in "
                "{where}, not at the block's input: take `identity = x` first thing in `forward`, "
                "and write the branch as `out = self.conv1(x)`, `out = ...` so that `x` is never "
                "overwritten.",
                where,
                pos=blk.pre[0],
            )
        elif kinds == ["relu"]:
            f.problem(
                f"ReLU on the shortcut in {{where}}: {label(blk.pre[0])} is applied to the block's "
                "input `x` itself, so the shortcut no longer carries x unchanged. A ReLU with "
                "`inplace=True` overwrites `x` even when its result gets another name "
                "(`identity = self.relu(x)`). Apply the ReLU only to `out`.",
                where,
                pos=blk.pre[0],
            )
        else:
            f.problem(
                f"Operations on the block's input before it splits in {{where}}: "
                f"{_arrow(_sequence(g, blk.pre))}. The block's input `x` must go unchanged into "
                "both the residual branch and the shortcut.",
                where,
                pos=blk.pre[0],
            )
    body = [j for j in blk.residual if ops[j].kind != "reshape"]
    if body and ops[body[-1]].kind == "relu" and body[-1] not in flagged:
        flagged.update(blk.residual)
        f.problem(
            "ReLU before the addition in {where}: the residual branch ends with a ReLU, so "
            "F(x) can never be negative. Feed the last BatchNorm's output straight into "
            "`out += identity` and apply the ReLU only after the addition.",
            where,
            pos=body[-1],
        )
    if any(ops[j].kind == "relu" for j in blk.shortcut):
        flagged.update(blk.shortcut)
        f.problem(
            "ReLU on the shortcut in {where}: the shortcut must carry x unchanged (identity) "
            "or through a 1x1 conv + BatchNorm only, so that the signal and the gradient pass "
            "straight through. Remove the ReLU from the shortcut path.",
            where,
            pos=min(j for j in blk.shortcut if ops[j].kind == "relu"),
        )
    flagged |= _check_tail(g, blk, f)
    same_shape = ops[blk.start].shape == ops[blk.add].shape
    if same_shape and any(ops[j].kind == "conv" for j in blk.shortcut):
        flagged.update(blk.shortcut)
        f.problem(
            "Projection shortcut where the shape does not change in {where}: a 1x1 conv + "
            "BatchNorm on the shortcut is needed only where a block changes the shape (stride "
            "2 or more channels: the first block of a stage); elsewhere the shortcut must be "
            "the identity (`downsample=None`). The extra convs add parameters and block the "
            "clean identity path.",
            where,
            pos=blk.shortcut[0],
        )
    return flagged


def _check_tail(g: _Graph, blk: _Block, f: _Findings) -> set[int]:
    """After the addition comes exactly one thing, the ReLU."""
    ops, where, tail = g.ops, _quote(blk.name), blk.tail
    kinds = [ops[j].kind for j in tail]
    bns = [j for j in tail if ops[j].kind == "bn"]
    if bns:
        bn, name = bns[0], _label(g, bns[0], blk.scope)
        body = [j for j in blk.residual if ops[j].kind != "reshape"]
        in_branch = ops[bn].module and any(ops[j].module == ops[bn].module for j in body)
        if in_branch:
            text = (
                f"{name} is applied a second time, after the addition, in {{where}}: the block "
                "must return `relu(bn(conv(...)) + identity)`, with no BatchNorm after "
                "`out += identity` (it would re-normalise the shortcut too, and share "
                f"{name}'s statistics between two different tensors). Delete the BatchNorm after "
                "the addition and keep only the ReLU."
            )
        elif body and ops[body[-1]].kind == "conv":
            text = (
                f"The addition comes before {name} in {{where}}: BatchNorm the residual branch "
                f"first, then add the shortcut, then apply the ReLU: `out = {name.strip('`')}"
                "(conv(out))`, `out += identity`, `out = relu(out)`."
            )
            text = (
                text.replace(f"{name.strip('`')}(conv(out))", "bn(conv(out))")
                if not ops[bn].module
                else text
            )
            flagged = set(blk.residual)
            f.problem(text, where, key=f"bn after add {name}", pos=bn)
            return flagged | set(tail)
        else:
            text = (
                f"BatchNorm ({name}) after the addition in {{where}}: a block returns "
                "relu(F(x) + shortcut(x)); the BatchNorm belongs at the end of the residual "
                "branch, before `out += identity`."
            )
        f.problem(text, where, key=f"bn after add {name}", pos=bn)
        return set(tail)
    if "relu" not in kinds:
        f.problem(
            "No ReLU after the addition in {where}: a block returns relu(F(x) + shortcut(x)). "
            "Add `out = self.relu(out)` after `out += identity`.",
            where,
            pos=blk.add,
        )
    elif kinds[0] != "relu":
        extra = " -> ".join(_label(g, j, blk.scope) for j in tail[: kinds.index("relu")])
        f.problem(
            f"Extra {extra} after the addition in {{where}}: a block returns "
            "relu(F(x) + shortcut(x)), nothing between the addition and the ReLU.",
            where,
            pos=tail[0],
        )
    return set(tail)


def _check_conv_bn_rules(g: _Graph, f: _Findings, flagged: set[int]) -> set[int]:
    """Conv biases before BatchNorm, two BatchNorms in a row, one BatchNorm used twice."""
    ops, users, found, bn_uses = g.ops, _users(g.ops), set(), {}
    for j, op in enumerate(ops):
        if (
            op.kind == "conv"
            and op.info["bias"]
            and {ops[u].kind for u in users.get(j, [])} & {"bn"}
        ):
            found.add(j)
            f.problem(
                "Convolution bias before BatchNorm in {where}: `bias=True` is wasted, because the "
                "BatchNorm right after subtracts the mean (removing any bias) and adds its own "
                "shift (beta). Use `bias=False`, as `conv3x3` and `conv1x1` do.",
                f"`{op.module}`",
                pos=j,
            )
        if op.kind != "bn":
            continue
        bn_uses.setdefault(op.module, []).append(j)
        src = op.inputs[0] if op.inputs else 0
        while ops[src].kind == "reshape" and ops[src].inputs:  # look through views
            src = ops[src].inputs[0]
        if ops[src].kind == "bn" and j not in flagged:
            found.update((j, src))
            same = ops[src].module == op.module
            f.problem(
                "BatchNorm applied twice in a row ({where}): the second BatchNorm re-normalises a "
                "tensor that is already normalised. Apply exactly one BatchNorm after each "
                "convolution.",
                f"`{op.module}` twice" if same else f"`{ops[src].module}` then `{op.module}`",
                pos=j,
            )
    for module, uses in bn_uses.items():
        uses = [j for j in uses if j not in flagged]
        if module and len(uses) > 1 and not set(uses) & found:
            found.update(uses)
            after = " and ".join(_label(g, ops[j].inputs[0]) for j in uses[:2] if ops[j].inputs)
            scope = next((b.scope for b in g.blocks if uses[0] in b.residual), "")
            f.problem(
                "The same BatchNorm module is applied twice: {where}. Each convolution needs its "
                "own BatchNorm (its own statistics, scale and shift): create one "
                "`nn.BatchNorm2d` per convolution." + _unused_in(g, scope, ("bn",)),
                f"`{module}` (after {after})",
                key="same bn twice",
                pos=uses[1],
            )
    return found


def _conv_count(g: _Graph, blk: _Block) -> int:
    """Convolutions on a block's residual branch: 2 for a BasicBlock, 3 for a Bottleneck."""
    return sum(g.ops[j].kind == "conv" for j in blk.pre + blk.residual)


def _is_v1(mine: _Graph, mb: _Block, ref: _Graph, rb: _Block) -> bool:
    """True if ``mb`` is the v1.5 Bottleneck ``rb`` with the stride moved to the first 1x1 conv."""
    mc = [mine.ops[j] for j in mb.residual if mine.ops[j].kind == "conv"]
    rc = [ref.ops[j] for j in rb.residual if ref.ops[j].kind == "conv"]
    return (
        len(mc) == len(rc) == 3
        and rc[1].info["stride"] != (1, 1)
        and mc[0].info["stride"] == rc[1].info["stride"]
        and mc[1].info["stride"] == (1, 1)
        and _sequence(mine, mb.residual, False) == _sequence(ref, rb.residual, False)
    )


_V1_NOTE = (
    "ResNet v1 stride placement in {where}: the Bottleneck puts the stride on its first 1x1 conv, "
    'as in the paper, while torchvision (and this course) put it on the 3x3 conv ("v1.5"). Both '
    "are correct ResNets with the same parameters; v1.5 sees every pixel and is about 0.5% more "
    "accurate on ImageNet."
)
_KIND_NAMES = {2: "BasicBlocks (two 3x3 convs)", 3: "Bottlenecks (1x1, 3x3, 1x1 convs)"}


def _compare_kinds(mine: _Graph, ref: _Graph, f: _Findings, flagged: set[int]) -> bool:
    """BasicBlock vs Bottleneck; returns True if they differ."""
    kinds = {_conv_count(mine, b) for b in mine.blocks if not flagged & set(b.pre)}
    want = _conv_count(ref, ref.blocks[0])
    if kinds <= {want}:
        return False
    got = " and ".join(_KIND_NAMES.get(k, f"blocks with {k} convs") for k in sorted(kinds))
    f.problem(
        f"Wrong kind of block: the residual branches are {got}, expected {_KIND_NAMES[want]}.",
        pos=mine.blocks[0].start,
    )
    return True


def _report_diffs(f: _Findings, diffs: list[_Diff], where: str, g: _Graph, scope: str) -> None:
    """Reports the first two differences of one part (later ones are often their consequences)."""
    for d in diffs[:2]:
        text = d.text.replace("{first}", where) + (_unused_in(g, scope, d.ops) if d.ops else "")
        f.problem(text, where, key=d.key, pos=d.pos)


def _compare_blocks(
    mine: _Graph, ref: _Graph, f: _Findings, flagged: set[int], cifar: bool, skip: set[int]
) -> None:
    """Compares each block's residual branch and shortcut with the reference block in its place.

    Stages in ``skip`` are left out: their shape is already wrong, and every block would say so.
    """
    for s, (stage, ref_stage) in enumerate(zip(mine.stages, ref.stages, strict=True)):
        if s in skip:
            continue
        for k, blk in enumerate(stage):
            rb = ref_stage[min(k, 1, len(ref_stage) - 1)]  # all blocks after the first are alike
            where = _quote(blk.name)
            if not flagged & set(blk.residual):
                if _is_v1(mine, blk, ref, rb):
                    f.note(_V1_NOTE, where)
                else:
                    diffs = _diff(
                        mine, blk.residual, ref, rb.residual, blk.scope, "residual branch",
                        "in {where}",
                    )  # fmt: skip
                    _report_diffs(f, diffs, where, mine, blk.scope)
            got_s, want_s = _shortcut(mine, blk), _shortcut(ref, rb)
            if got_s == want_s or flagged & set(blk.shortcut + blk.pre):
                continue
            if got_s.startswith("zero-pad") and want_s != "identity" and not cifar:
                f.problem(
                    "Zero-padding shortcut (option A) in {where}: the ImageNet ResNets use a 1x1 "
                    "conv + BatchNorm projection (option B) where the shape changes.",
                    where,
                    pos=blk.add,
                )
            elif cifar and got_s.startswith("zero-pad"):  # CIFAR: A and B both fine
                continue
            elif blk.shortcut and rb.shortcut:
                diffs = _diff(
                    mine, blk.shortcut, ref, rb.shortcut, blk.scope, "shortcut", "in {where}"
                )
                _report_diffs(f, diffs, where, mine, blk.scope)
            else:
                f.problem(
                    f"Wrong shortcut in {{where}}: `{got_s}`, expected `{want_s}`.",
                    where,
                    key=f"shortcut {got_s.split('(')[0]} for {want_s.split('(')[0]}",
                    pos=blk.add,
                )


def _hw(shape: tuple[int, ...]) -> str:
    """(N, C, H, W) -> "HxW"."""
    return "x".join(map(str, shape[2:]))


def _compare_stages(mine: _Graph, ref: _Graph, f: _Findings, arch: str) -> tuple[bool, set[int]]:
    """Compares stages: count, blocks, what each does to the shape.

    Returns True if the blocks cannot be paired with the reference's, and the stages whose
    output differs.

    Each stage is judged on what it does to its input (channels out, height and width halved or
    kept), so that a mistake before it (a missing max-pool) is not blamed on every stage after.
    """
    ops, block = mine.ops, mine.context == "block"
    got = [len(s) for s in mine.stages]
    want = [len(s) for s in ref.stages]
    if len(got) != len(want):
        shapes = [[_stage_out(g, s) for s in g.stages] for g in (mine, ref)]
        f.problem(
            f"{len(got)} stages of blocks (outputs {', '.join(shapes[0])}), expected {len(want)} "
            f"for {arch} (outputs {', '.join(shapes[1])}).",
            pos=mine.blocks[0].start,
        )
        return True, set()
    if got != want:
        f.problem(
            f"The stage has {got[0]} blocks, expected {want[0]}."
            if len(got) == 1
            else f"Wrong number of blocks per stage: {got}, expected {want} for {arch}.",
            pos=mine.blocks[0].start,
        )
    bad: set[int] = set()
    for k, (stage, ref_stage) in enumerate(zip(mine.stages, ref.stages, strict=True)):
        name = "The block" if block else _stage_name(stage, k, len(got))
        first = stage[0]
        m_in = ops[first.pre[0]].info["in_shape"] if first.pre else ops[first.start].shape
        m_out = ops[stage[-1].end].shape
        r_in, r_out = ref.ops[ref_stage[0].start].shape, ref.ops[ref_stage[-1].end].shape
        pos = stage[0].add
        if m_out[1] != r_out[1]:
            bad.add(k)
            hint = (
                "check `expansion` and the last conv of the block"
                if block
                else "a block outputs `planes * expansion` channels (expansion 1 for a "
                "BasicBlock, 4 for a Bottleneck): check `planes` for this stage and `expansion`"
            )
            f.problem(f"{name} outputs {m_out[1]} channels, expected {r_out[1]}: {hint}.", pos=pos)
        halves = [len(s) > 2 and s[2] < i[2] for i, s in ((m_in, m_out), (r_in, r_out))]
        if len(m_out) > 2 and halves[0] != halves[1]:
            bad.add(k)
            does = "halves" if halves[0] else "keeps"
            should = (
                "its first block must have stride 2 (on the residual branch and the shortcut)"
                if halves[1]
                else "it must keep them (stride 1)"
            )
            f.problem(
                f"{name} {does} the height and width ({_hw(m_in)} -> {_hw(m_out)}), where the "
                f"reference's {'block' if block else 'stage'} goes {_hw(r_in)} -> {_hw(r_out)}: "
                f"{should}.",
                pos=pos,
            )
    return got != want, bad


def _stage_out(g: _Graph, stage: list[_Block]) -> str:
    """ "256x56x56": channels x height x width of a stage's output."""
    return "x".join(map(str, g.ops[stage[-1].end].shape[1:]))


def _stage_name(stage: list[_Block], k: int, n: int) -> str:
    """ "`layer2`" (the module holding the stage's blocks), else "Stage 2" or "The stage"."""
    prefix = _prefix([b.scope for b in stage if b.scope])
    if prefix and len(stage) == 1:
        prefix = stage[0].scope.rpartition(".")[0]
    return f"`{prefix}`" if prefix else f"Stage {k + 1}" if n > 1 else "The stage"


def _compare_ends(
    mine: _Graph, ref: _Graph, f: _Findings, flagged: set[int], structure_differs: bool
) -> None:
    """Compares the stem (before the first block), the head (after the last) and any op between."""
    if mine.context == "model" and not flagged & set(mine.stem):
        diffs = _diff(mine, mine.stem, ref, ref.stem, "", "stem", "in the stem")
        _report_diffs(f, diffs, "", mine, "")
    got, want = _sequence(mine, mine.head, channels=False), _sequence(ref, ref.head, channels=False)
    fc = [mine.ops[j].info["fin"] for j in mine.head if mine.ops[j].kind == "linear"]
    ref_fc = [ref.ops[j].info["fin"] for j in ref.head if ref.ops[j].kind == "linear"]
    wrong_fc = fc and ref_fc and fc[0] != ref_fc[0] and not structure_differs
    if mine.context == "model" and (got != want or wrong_fc):
        got = _sequence(mine, mine.head)
        want = _sequence(ref, ref.head)
        hints = [f"The head (after the last block) is {_arrow(got)}, expected {_arrow(want)}."]
        if wrong_fc:
            hints.append(
                f"The fc layer takes {fc[0]:,} features instead of {ref_fc[0]:,} (= 512 x "
                "expansion, after global average pooling)."
            )
        if "global-avgpool" not in got:
            hints.append("Pool globally before the fc: `nn.AdaptiveAvgPool2d((1, 1))`.")
        if "softmax" in got:
            hints.append("Return the logits: `nn.CrossEntropyLoss` applies the softmax itself.")
        f.problem(" ".join(hints), pos=mine.head[0] if mine.head else len(mine.ops))
    for k, gap in mine.gaps.items():
        if gap:
            f.problem(
                f"Extra operations between blocks, before {{where}}: "
                f"{_arrow(_sequence(mine, gap))}. Each block's output should go straight into the "
                "next block.",
                _quote(mine.blocks[k].name),
                key=f"gap {_sequence(mine, gap)}",
                pos=gap[0],
            )


def _explain_failure(g: _Graph, ref: _Graph | None, f: _Findings, where: str, given: bool) -> None:
    """Says why the forward pass failed: the mistake that caused it if it can, else the crash.

    Args:
        g, ref: The learner's graph (up to the op that raised) and the reference's.
        f: Where the problem goes.
        where: The place for a block check (its configuration), else "".
        given: True if the block was given a ``downsample`` that it never used.
    """
    crash = f"the forward pass {g.error}"
    op = g.failed
    pos = len(g.ops)
    if op is None:
        f.problem(f"The forward pass {g.error}.", where, key="crash", tier=_MISTAKE, pos=pos)
        return
    i = op.info
    name = f"`{op.module}`" if op.module else f"a `{op.kind}` operation"
    if re.search(r"\bdevices?\b", g.error):
        f.problem(
            f"The forward pass {g.error}. Tensors on different devices meet in {name}: move the "
            "whole model with `model.to(device)` (so every submodule goes along), and create any "
            "tensor inside `forward` on the input's device, e.g. `torch.zeros(..., "
            "device=x.device)`.",
            where,
            key="device",
            pos=pos,
        )
        return
    if op.kind == "add" and len(op.inputs) == 2:
        _explain_failed_add(g, ref, f, where, given, crash)
        return
    text = f"The forward pass {g.error}."
    if op.kind == "linear" and i["in_shape"] and i["in_shape"][-1] != i["fin"]:
        if len(i["in_shape"]) != 2:  # (N, C, 1, 1) not flattened, or the batch flattened too
            text += (
                f" The fc layer {name} receives a tensor of shape {i['in_shape']}, expected "
                "(batch, features): flatten the pooled features with `torch.flatten(x, 1)`."
            )
        else:
            ref_fc = (
                [ref.ops[j].info["fin"] for j in ref.head if ref.ops[j].kind == "linear"]
                if ref
                else []
            )
            want = (
                f" = 512 * block.expansion = {ref_fc[0]:,}"
                if ref_fc
                else " = 512 * block.expansion"
            )
            text += (
                f" The fc layer {name} expects {i['fin']:,} input features but receives "
                f"{i['in_shape'][-1]:,}: set `in_features{want}`, not a hard-coded number."
            )
    elif op.kind == "conv" and len(i["in_shape"]) == 4 and i["in_shape"][1] != i["cin"]:
        wrong = _wrong_input(g, ref, op)
        if wrong:
            f.problem(f"{wrong} Because of this, {crash}.", where, key=wrong, pos=pos)
            return
        text += (
            f" Conv {name} expects {i['cin']} input channels but receives {i['in_shape'][1]} "
            "(the output of the layer before it). Check the channel bookkeeping: after "
            "the first block of a stage, `inplanes = planes * block.expansion`."
        )
    elif op.kind == "bn" and len(i["in_shape"]) >= 2 and i["in_shape"][1] != i.get("features"):
        text += (
            f" BatchNorm {name} is made for {i.get('features')} channels but receives "
            f"{i['in_shape'][1]}: give each BatchNorm the channel count of the conv before it."
        )
    elif i.get("in_shape"):
        text += f" It failed in {name}, on an input of shape {i['in_shape']}."
    f.problem(text, where, key=f"crash in {op.kind}", pos=pos)


def _wrong_input(g: _Graph, ref: _Graph | None, op: _Op) -> str:
    """ "`downsample.0` is applied to the output of `bn2` instead of ..." if the reference's module
    of the same name takes another input; else ""."""
    twins = [j for j, r in enumerate(ref.ops) if r.module == op.module] if ref and op.module else []
    rb = next((b for b in ref.blocks if twins and twins[0] in b.residual + b.shortcut), None)
    if rb is None or not op.inputs or not ref.ops[twins[0]].inputs:
        return ""
    x = "the block's input `x`"
    theirs = ref.ops[twins[0]].inputs[0]
    want = x if theirs == rb.start else f"the output of {_label(ref, theirs, rb.scope)}"
    p = op.inputs[0]
    inside = g.ops[p].module and (not rb.scope or _within(g.ops[p].module, rb.scope))
    got = f"the output of {_label(g, p, rb.scope)}" if p and inside else x
    if got == want:
        return ""
    return (
        f"`{_rel(op.module, rb.scope)}` is applied to {got} instead of {want}"
        + (f" in `{rb.scope}`" if rb.scope else "")
        + (
            ": the shortcut is `identity = self.downsample(x)`."
            if "downsample" in op.module
            else "."
        )
    )


def _explain_failed_add(
    g: _Graph, ref: _Graph | None, f: _Findings, where: str, given: bool, crash: str
) -> None:
    """A residual addition of two different shapes: names the branch that is wrong, if it can."""
    op = g.failed
    split = _split_branches(g.ops, *op.inputs)
    start, residual, shortcut = split or (0, op.inputs[:1], op.inputs[1:])
    scope = op.scope if g.context != "block" else ""
    block = where or (f"`{scope}`" if scope else "a block")

    def out(branch: list[int]) -> str:  # the shape that branch delivers to the addition
        return "x".join(map(str, g.ops[(branch or [start])[-1]].shape[1:]))

    shapes = f"the residual branch gives {out(residual)} but the shortcut gives {out(shortcut)}"
    because = f" Because of this, {crash}: {shapes}."
    pos = len(g.ops)
    if given:
        f.problem(
            "The `downsample` you were given is never used in {where}: where one is given, the "
            "shortcut must be `identity = self.downsample(x)`. Without it the block adds its "
            f"input `x` itself, of another shape than the residual branch's output.{because}",
            where,
            key="given downsample unused",
            pos=pos,
        )
        return
    # Modules of this block that were created but never called (its `downsample`, most often).
    idle = []
    for m in g.unused:
        if scope and _within(m, scope) and m not in g.entered:
            while m.rpartition(".")[0] not in g.entered | {scope, ""}:
                m = m.rpartition(".")[0]  # the outermost module never called, e.g. `downsample`
            idle.append(m)
    idle = list(dict.fromkeys(idle))
    if idle:
        g.mentioned.update(u for u in g.unused if any(_within(u, m) for m in idle))
        names = _places([f"`{m}`" for m in idle])
        f.problem(
            f"{names} {'is' if len(idle) == 1 else 'are'} created but never called in "
            f"`forward`: where a block is given a `downsample`, the shortcut must be "
            f"`identity = self.downsample(x)`.{because}",
            key="idle downsample",
            pos=pos,
        )
        return
    rb = None
    if ref is not None and ref.blocks:
        rb = ref.blocks[min(len(g.blocks), len(ref.blocks) - 1)]
    if rb is not None:
        diffs = _diff(g, residual, ref, rb.residual, scope, "residual branch", f"in {block}")
        diffs = [d for d in diffs if "channels" in d.key or "stride" in d.key or "padding" in d.key
                 or "kernel" in d.key or d.ops]  # fmt: skip
        if diffs:
            d = diffs[0]
            text = d.text.replace(f"in {block}", "in {where}").replace("{first}", block)
            f.problem(text + because, where or block, key=d.key, pos=d.pos)
            return
        if not shortcut and rb.shortcut and g.context != "block":
            f.problem(
                f"Block {block} changes the shape, but its shortcut is the identity: {shapes}. "
                "Where a block changes the shape (stride 2 or a new channel count), `_make_layer` "
                "must give it a projection, `downsample = nn.Sequential(conv1x1(inplanes, planes "
                "* block.expansion, stride), nn.BatchNorm2d(planes * block.expansion))`, and "
                f"the block must use it. Because of this, {crash}.",
                key="no projection",
                pos=pos,
            )
            return
    f.problem(
        f"The forward pass {g.error}. The residual addition in "
        f"{f'block {block}' if scope or where else 'a block'} fails: {shapes}. Where a block "
        "changes the shape (stride 2 or a new channel count), the shortcut needs a projection "
        "(`conv1x1(inplanes, planes * expansion, stride)` + BatchNorm) to the same shape; check "
        "`expansion` and when `downsample` is created.",
        where,
        key="crash in add",
        pos=pos,
    )


def _private_copy(model: nn.Module, f: _Findings) -> nn.Module:
    """A deep copy, so the learner's weights and state are never touched."""
    try:
        return copy.deepcopy(model)
    except Exception as err:
        f.note(
            f"Could not copy the model ({type(err).__name__}); checked the original in eval mode "
            "without gradients (its train/eval mode is restored)."
        )
        return model


def _images(n: int, channels: int, size: int, like: nn.Module) -> Tensor:
    """A fixed random batch on the model's device and dtype."""
    p = next(iter(like.parameters()), None)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, channels, size, size, generator=gen)
    return x.to(p.device, p.dtype) if p is not None and p.is_floating_point() else x


def _run(model: nn.Module, x: Tensor) -> tuple[tuple[int, ...] | None, str]:
    """Output shape of ``model(x)`` in eval mode, or None and the formatted error."""
    with _modes_kept(model), torch.no_grad():
        model.eval()
        try:
            out = model(x)
        except Exception as err:
            return None, _format_error(err)
    return (tuple(out.shape), "") if isinstance(out, Tensor) else (None, "it returned no tensor")


def _check_sizes(work: nn.Module, g: _Graph, f: _Findings, size: int, other: int) -> None:
    """The model must work at another input size and for a single image, as it did at ``size``."""
    shape, err = _run(work, _images(1, 3, other, work))
    if shape == (1, *g.output[1:]):
        return
    shape2, err2 = _run(work, _images(2, 3, other, work))
    pos = len(g.ops)
    if shape2 == g.output:
        f.problem(
            f"Fails for a single image (batch size 1): {err or f'the output has shape {shape}'}. "
            "Probably `squeeze()` removed the batch dimension too; use `torch.flatten(x, 1)`.",
            pos=pos,
        )
        return
    result = err2 or f"the output has shape {shape2}"
    pools = [g.ops[j] for j in g.head if g.ops[j].kind in ("avgpool", "maxpool")]
    fixed = [
        op for op in pools if "adaptive" not in op.info and op.info["k"] == op.info["in_shape"][2:]
    ]
    if fixed:
        k = _size(fixed[0].info["k"])
        f.problem(
            f"Fixed-size pooling: the pool before the fc has a fixed {k}x{k} window, which is "
            f"global only when the last feature map is {k}x{k}, i.e. for {size}x{size} inputs. "
            f"At {other}x{other} inputs: {result}. Use `nn.AdaptiveAvgPool2d((1, 1))`, which "
            "averages whatever size arrives.",
            pos=pos,
        )
    else:
        f.problem(
            f"Works only at {size}x{size} inputs: at {other}x{other}, {result}. A ResNet "
            "accepts any input size; look for a size hard-coded in `__init__` or `forward` "
            "(a fixed pooling window, `view(-1, 512 * 7 * 7)`, ...).",
            tier=_RESULT,
            pos=pos,
        )


def _find_unused(g: _Graph, skip: set[str]) -> None:
    """Fills ``g.unused``: modules created in ``__init__`` whose parameters no op used."""
    for name, n in g.numel.items():
        if name not in g.used and name not in skip:
            module = name.rpartition(".")[0] or name
            g.unused[module] = g.unused.get(module, 0) + n


def _check_unused(g: _Graph, f: _Findings) -> None:
    """Modules created but never called, that no other problem already named."""
    for module, n in g.unused.items():
        if module not in g.mentioned:
            f.problem(
                "Created but never used in `forward`: {where}. Their parameters get no gradient "
                "and still count in the total: call them in `forward` or delete them.",
                f"`{module}` ({n:,} parameters)",
                pos=len(g.ops),
            )


def _judge(
    mine: _Graph,
    ref: _Graph,
    f: _Findings,
    arch: str,
    cifar: bool = False,
    skip_unused: set[str] | None = None,
    where: str = "",
    given: bool = False,
) -> None:
    """All checks of a graph against the reference's graph (models, stages and blocks alike).

    Args:
        mine, ref: The learner's graph and the reference's.
        f: Where the findings go.
        arch: What is checked, in words ("resnet50", "this stage", "Bottleneck").
        cifar: Option A (zero-padding) shortcuts are as right as projections.
        skip_unused: Parameters not to report as unused (a ``downsample`` judged elsewhere).
        where: The configuration of a block check (its problems say "in the identity case").
        given: True if a block was given a ``downsample`` it never used.
    """
    _find_unused(mine, skip_unused or set())
    if mine.error:
        _explain_failure(mine, ref, f, where, given)
    elif mine.output != ref.output:
        fc = [mine.ops[j] for j in mine.head if mine.ops[j].kind == "linear"]
        hint = f" The last layer `{fc[-1].module}` has {fc[-1].info['fout']} outputs." if fc else ""
        f.problem(
            f"Output shape {mine.output} for a batch of 2, expected {ref.output}.{hint}",
            tier=_RESULT,
            pos=len(mine.ops),
        )
    try:
        if not mine.broken:
            flagged = _check_rules(mine, f)  # even after a failure: what was seen before it
            if mine.blocks and ref.blocks and not mine.error:
                differs = _compare_structure(mine, ref, f, flagged, arch, cifar)
                _compare_ends(mine, ref, f, flagged, differs)
            if not mine.error:
                _check_unused(mine, f)
    except Exception as err:  # a limit of this checker must not look like the learner's bug
        mine.broken = f"{type(err).__name__}: {err}"
    if mine.broken:
        f.note(
            "This checker could not follow every operation of the forward pass "
            f"({mine.broken}), so some structural checks were skipped."
        )


def _compare_structure(
    mine: _Graph, ref: _Graph, f: _Findings, flagged: set[int], arch: str, cifar: bool
) -> bool:
    """Kinds of block, stages, then each block; True if the blocks or stages differ.

    In a model a wrong stage shape is named once for the stage (a stride or width passed to
    `_make_layer`), not again in each block; in a block check the block's own parts say more.
    """
    if _compare_kinds(mine, ref, f, flagged):
        return True
    if mine.context == "block":
        before = f.count()
        _compare_blocks(mine, ref, f, flagged, cifar, set())
        if f.count() > before:
            return True
        counts_differ, bad = _compare_stages(mine, ref, f, arch)
        return counts_differ or bool(bad)
    counts_differ, bad = _compare_stages(mine, ref, f, arch)
    if not counts_differ:
        _compare_blocks(mine, ref, f, flagged, cifar, bad)
    return counts_differ or bool(bad)


def _count(mine: _Graph, ref: _Graph) -> str:
    """ "11,689,512 parameters", and the reference's number when it differs."""
    if mine.total == ref.total:
        return f"{mine.total:,} parameters"
    return f"{mine.total:,} parameters (the reference has {ref.total:,})"


# ---------------------------------------------------------------------------------------------
# check_model


@lru_cache(maxsize=16)
def _reference_graph(arch: str, classes: int, small: bool, shortcut: str, size: int) -> _Graph:
    """The analysed graph of the package's model, built on the meta device (shapes only: fast)."""
    with torch.device("meta"):
        if arch in _CIFAR:
            model = CifarResNet(_CIFAR[arch], num_classes=classes, shortcut=shortcut)
        else:
            model = _IMAGENET[arch](num_classes=classes, small_input=small)
    return _analyse(model, torch.empty(2, 3, size, size, device="meta"))


def _positive_int(value: Any, name: str) -> None:
    """Raises a ValueError unless ``value`` is an int of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_model(
    model: nn.Module, arch: str, num_classes: int | None = None, small_input: bool = False
) -> Report:
    """Checks that ``model`` is a correct ResNet of architecture ``arch``.

    It judges behaviour and structure, not names: residual additions, what is on each branch,
    blocks per stage, parameters per stage, stem, head, output shape, and the output at a second
    input size. The model is deep-copied and run in eval mode without gradients, so its weights
    and train/eval mode are left as they were. A model whose forward raises gets a report too.

    Args:
        model: The learner's network (an instance, not the class).
        arch: ``"resnet18"``, ``"resnet34"``, ``"resnet50"``, ``"resnet101"``, ``"resnet152"``
            (ImageNet, 224x224 inputs) or ``"resnet20"``, ``"resnet32"``, ``"resnet44"``,
            ``"resnet56"``, ``"resnet110"`` (CIFAR, 32x32 inputs; option A or B shortcuts).
        num_classes: Size of the output (a positive int); None means 1000 for ImageNet and 10
            for CIFAR.
        small_input: The model uses the 3x3 stem without max-pool for 32x32 inputs
            (``resnet18(small_input=True)``); ImageNet architectures only.

    Returns:
        A ``Report``; ``report.passed`` is True if no problem was found.

    Raises:
        ValueError: If ``arch`` is not one of the names above, or ``num_classes`` is not a
            positive int.
    """
    if arch not in _IMAGENET and arch not in _CIFAR:
        raise ValueError(f"unknown arch {arch!r}; use one of {[*_IMAGENET, *_CIFAR]}")
    cifar = arch in _CIFAR
    small_input = small_input and not cifar
    if num_classes is None:
        num_classes = 10 if cifar else 1000
    _positive_int(num_classes, "num_classes")
    size = 32 if cifar or small_input else 224
    other = 64 if size == 224 else 16  # smaller: a pool or fc sized for `size` fails there
    title = f"check_model: {arch}, {num_classes} classes{', small-input stem' * small_input}"
    f = _Findings()
    if not isinstance(model, nn.Module):
        hint = " (the class itself: create the model first)" if isinstance(model, type) else ""
        f.problem(f"Expected a `torch.nn.Module`, got {type(model).__name__}{hint}.")
        return f.report(title)
    work = _private_copy(model, f)
    mine = _analyse(work, _images(2, 3, size, work))
    # CIFAR accepts option A (zero-padding) and B (projection) shortcuts: compare with the same one.
    projection = any(mine.ops[j].kind == "conv" for b in mine.blocks for j in b.shortcut)
    ref = _reference_graph(arch, num_classes, small_input, "B" if projection else "A", size)
    _judge(mine, ref, f, arch, cifar)
    if not mine.error:
        _check_sizes(work, mine, f, size, other)
    if mine.total != ref.total and not f.problems:  # else a problem above explains the count
        diff = mine.total - ref.total
        f.problem(
            f"{mine.total:,} parameters in total, expected {ref.total:,} ({diff:+,}): compare "
            "each layer's size with the reference's.",
            tier=_RESULT,
        )
    if cifar and mine.blocks and not mine.error:
        f.note(_OPTION_B if projection else _OPTION_A)
    if mine.error:
        return f.report(title, f"{_count(mine, ref)}; the forward pass failed.")
    counts = [len(s) for s in mine.stages]
    return f.report(
        title,
        f"{len(mine.blocks)} residual blocks in {len(counts)} stages {counts}, "
        f"{_count(mine, ref)}; run at {size}x{size} and {other}x{other} inputs.",
    )


_OPTION_A = "Option A shortcuts: zero-padding where the shape changes, no parameters (the paper's)."
_OPTION_B = "Option B shortcuts: a 1x1 conv + BatchNorm projection where the shape changes."


# ---------------------------------------------------------------------------------------------
# check_block, check_make_layer, check_conv_helpers


@contextmanager
def _seeded(seed: int = 0) -> Iterator[None]:
    """Fixed random numbers inside; the caller's random state is untouched outside."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _randomise_bn(model: nn.Module) -> None:
    """Random BatchNorm statistics and affine weights, so that eval-mode outputs are informative."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.running_var.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5)


def _copy_weights(mine: nn.Module, ref: nn.Module, gm: _Graph, gr: _Graph) -> bool:
    """Copies ``ref``'s weights into ``mine``; False if the two don't pair up.

    By name if the state_dict keys match; else module by module, in the order the residual
    branch and then the shortcut use them (so names and registration order don't matter).
    """
    ms, rs = mine.state_dict(), ref.state_dict()
    if ms.keys() == rs.keys() and all(ms[k].shape == rs[k].shape for k in ms):
        mine.load_state_dict(rs)
        return True

    def in_use(g: _Graph, model: nn.Module) -> list[nn.Module]:
        mods = dict(model.named_modules())
        names = [g.ops[j].module for b in g.blocks for j in b.residual + b.shortcut]
        return [mods[n] for n in dict.fromkeys(names) if n and n in mods]

    pairs = list(zip(in_use(gm, mine), in_use(gr, ref), strict=False))
    if not pairs or len(pairs) != len(in_use(gm, mine)) or len(pairs) != len(in_use(gr, ref)):
        return False
    try:
        for m, r in pairs:
            m.load_state_dict(r.state_dict())
    except (RuntimeError, KeyError):
        return False
    return True


def _differing_modes(mine: nn.Module, ref: nn.Module, x: Tensor) -> list[str]:
    """The modes ("eval", "train") in which ``mine(x)`` differs from ``ref(x)``."""
    differs = []
    for mode in ("eval", "train"):
        mine.train(mode == "train")
        ref.train(mode == "train")
        try:
            with torch.no_grad():
                same = torch.allclose(mine(x), ref(x), rtol=1e-4, atol=1e-5)
        except Exception:
            same = False
        if not same:
            differs.append(mode)
    return differs


# The configurations check_block tries: (label, inplanes / expansion, planes, stride, projection).
# The channel change has 64 input channels and planes * expansion = 256 (Bottleneck) or 128 outputs.
_BLOCK_CONFIGS = [
    ("the identity case", 64, 64, 1, False),
    ("the stride-2 case with a projection", 64, 128, 2, True),
    ("the channel-change case with a projection", 64, 64, 1, True),
]


def check_block(block_cls: type[nn.Module], kind: str | None = None) -> Report:
    """Checks a learner's ``BasicBlock`` or ``Bottleneck`` class against the package's.

    The block is built as ``block_cls(inplanes, planes, stride, downsample)`` (torchvision's
    signature) in the configurations a ResNet uses: identity shortcut, stride 2 with a projection
    ``downsample``, and a channel change with a projection. Each is compared with the package's
    block: structure of both branches, output shape, parameters, ``expansion``, and the outputs
    with the same weights, in eval and in train mode.

    Args:
        block_cls: The learner's block class (the class, not an instance).
        kind: ``"basic"`` or ``"bottleneck"``; None infers it from ``block_cls.expansion``.

    Returns:
        A ``Report``; ``report.passed`` is True if no problem was found.

    Raises:
        ValueError: If ``kind`` is not ``"basic"``, ``"bottleneck"`` or None.
    """
    if kind not in (None, "basic", "bottleneck"):
        raise ValueError(f"kind must be 'basic', 'bottleneck' or None, got {kind!r}")
    if isinstance(block_cls, nn.Module):
        name = type(block_cls).__name__
        f = _Findings()
        f.problem(
            f"Pass the block class itself, `check_block({name})`, not an instance "
            f"(`{name}(...)`): the check builds the block in several configurations.",
            tier=_FATAL,
        )
        return f.report(f"check_block: {name}")
    name = getattr(block_cls, "__name__", None) or type(block_cls).__name__
    title, f = f"check_block: {name}", _Findings(every=[c[0] for c in _BLOCK_CONFIGS])
    if not isinstance(block_cls, type) or not issubclass(block_cls, nn.Module):
        f.problem(
            f"Expected a block class (an `nn.Module` subclass such as `MyBasicBlock`), got "
            f"{type(block_cls).__name__} {block_cls!r:.60}.",
            tier=_FATAL,
        )
        return f.report(title)
    expansion = getattr(block_cls, "expansion", None)
    how = f"kind={kind!r}" if kind else "from its `expansion`"
    kind = kind or {1: "basic", 4: "bottleneck"}.get(expansion)
    if kind not in ("basic", "bottleneck"):
        f.problem(
            f"`{name}.expansion` is {expansion!r}: a BasicBlock has the class attribute "
            "`expansion = 1` and a Bottleneck `expansion = 4` (output channels = planes * "
            "expansion). Set it, or pass `kind='basic'` or `kind='bottleneck'`."
        )
        return f.report(title)
    ref_cls = BasicBlock if kind == "basic" else Bottleneck
    exp = ref_cls.expansion
    if expansion != exp:
        f.problem(
            f"`{name}.expansion` is {expansion!r}, expected {exp} for a {ref_cls.__name__}: "
            "`_make_layer` uses it to size the shortcut and the next block's input, so it must "
            "equal the block's output channels divided by `planes`."
        )
    for label, inplanes, planes, stride, project in _BLOCK_CONFIGS:
        planes = planes if exp > 1 or label != _BLOCK_CONFIGS[2][0] else 128
        inplanes = inplanes * exp if label != _BLOCK_CONFIGS[2][0] else inplanes
        _check_block_config(block_cls, ref_cls, f, label, inplanes, planes, stride, project)
    return f.report(
        title,
        f"Judged as a {ref_cls.__name__} ({how}) in 3 configurations: identity shortcut, "
        "stride 2 with a projection, channel change with a projection.",
    )


def _check_block_config(
    block_cls: type[nn.Module],
    ref_cls: type[BasicBlock | Bottleneck],
    f: _Findings,
    label: str,
    inplanes: int,
    planes: int,
    stride: int,
    project: bool,
) -> None:
    """One configuration of ``check_block``: build, trace and judge, then compare outputs."""
    outplanes = planes * ref_cls.expansion
    with _seeded():
        given = nn.Sequential(conv1x1(inplanes, outplanes, stride), nn.BatchNorm2d(outplanes))
        given = given if project else None
        ref = ref_cls(inplanes, planes, stride, copy.deepcopy(given))
        _randomise_bn(ref)
        x = torch.randn(2, inplanes, 8, 8)
    try:
        with _seeded():  # the learner's random state stays as it was
            mine = block_cls(inplanes, planes, stride, given)
    except Exception as err:
        f.problem(
            f"Could not build the block as `{block_cls.__name__}(inplanes, planes, stride, "
            f"downsample)` ({{where}}): {_format_error(err)}. It must accept torchvision's "
            "`(inplanes, planes, stride=1, downsample=None)`.",
            label,
            key="could not build",
            tier=_FATAL,
        )
        return
    before = f.count()
    gm = _analyse(mine, x, label, context="block")
    gr = _analyse(ref, x, label, context="block")
    given_ids = {id(p) for p in given.parameters()} if given else set()
    skip = {n for n, p in mine.named_parameters() if id(p) in given_ids}  # reported below
    ignored = bool(given) and not given_ids & gm.used_ids
    _judge(gm, gr, f, ref_cls.__name__, skip_unused=skip, where=label, given=ignored)
    if ignored and not gm.error:
        f.problem(
            "The `downsample` you were given is never used in {where}: where one is given, the "
            "shortcut must be `identity = self.downsample(x)`.",
            label,
            key="given downsample unused",
            pos=len(gm.ops),
        )
    if gm.total != gr.total and not gm.error and f.count() == before:
        f.problem(
            "Wrong number of parameters: {where}. Compare each layer with the reference's "
            "(3x3 and 1x1 convs without bias, one BatchNorm per conv).",
            f"{gm.total:,} instead of {gr.total:,} in {label}",
            tier=_RESULT,
        )
    if f.count() > before or gm.error:
        return  # the structure is already wrong: comparing outputs would add nothing
    if len(gm.blocks) == len(gr.blocks) == 1 and _is_v1(gm, gm.blocks[0], gr, gr.blocks[0]):
        ref.conv1.stride, ref.conv2.stride = (stride, stride), (1, 1)  # compare with v1 instead
    if not _copy_weights(mine, ref, gm, gr):
        f.note(
            "Could not pair the block's weights with the reference's (different modules), so "
            "the outputs were not compared; the structure was."
        )
        return
    for mode in _differing_modes(mine, ref, x):
        f.problem(
            f"With the same weights, the output differs from `{ref_cls.__name__}`'s in {mode} "
            "mode ({where}): compare your `forward` with `relu(F(x) + shortcut(x))` line by line.",
            label,
            tier=_RESULT,
        )


def check_make_layer(
    stage: nn.Module,
    block: type[nn.Module],
    inplanes: int,
    planes: int,
    blocks: int,
    stride: int = 1,
) -> Report:
    """Checks a stage built by a learner's ``_make_layer`` against the package's ``_make_layer``.

    Args:
        stage: The learner's stage (usually an ``nn.Sequential`` of blocks).
        block: The block class it was built with (its ``expansion`` says BasicBlock or Bottleneck).
        inplanes: Channels entering the stage.
        planes: Planes of the stage's blocks.
        blocks: Number of blocks the stage should have.
        stride: Stride of the stage's first block.

    Returns:
        A ``Report``; ``report.passed`` is True if no problem was found.

    Raises:
        ValueError: If ``inplanes``, ``planes``, ``blocks`` or ``stride`` is not a positive int.
    """
    for value, name in ((inplanes, "inplanes"), (planes, "planes"), (blocks, "blocks")):
        _positive_int(value, name)
    _positive_int(stride, "stride")
    ref_cls = Bottleneck if getattr(block, "expansion", 1) == 4 else BasicBlock
    title = (
        f"check_make_layer: {blocks} {ref_cls.__name__}s ({inplanes} -> {planes}, stride {stride})"
    )
    f = _Findings()
    if not isinstance(stage, nn.Module):
        f.problem(f"Expected the stage, an `nn.Module`, got {type(stage).__name__}.")
        return f.report(title)
    with _seeded():  # the package's _make_layer needs only these attributes of its ResNet
        owner = SimpleNamespace(inplanes=inplanes, groups=1, base_width=64)
        ref = ResNet._make_layer(owner, ref_cls, planes, blocks, stride)  # type: ignore[arg-type]
        _randomise_bn(ref)
        x = torch.randn(2, inplanes, 16, 16)
    work = _private_copy(stage, f)
    gm, gr = _analyse(work, x, context="stage"), _analyse(ref, x, context="stage")
    _judge(gm, gr, f, "this stage")
    if gm.total != gr.total and not f.problems:
        f.problem(
            f"{gm.total:,} parameters, expected {gr.total:,} ({gm.total - gr.total:+,}).",
            tier=_RESULT,
        )
    if not f.problems and _copy_weights(work, ref, gm, gr):
        for mode in _differing_modes(work, ref, x):
            f.problem(
                f"With the same weights, the output differs from the reference's ({mode} mode)."
            )
    return f.report(
        title,
        f"Compared with the package's `_make_layer` on {inplanes}x16x16 inputs; {_count(gm, gr)}.",
    )


def check_conv_helpers(
    conv3x3_fn: Callable[..., nn.Module], conv1x1_fn: Callable[..., nn.Module]
) -> Report:
    """Checks a learner's ``conv3x3`` and ``conv1x1`` against the package's.

    Each is called as ``fn(16, 32)`` and ``fn(16, 32, 2)`` and compared with ``resnet_course``'s:
    parameters (no bias) and output sizes on 8x8 and 7x7 inputs.

    Args:
        conv3x3_fn: The learner's ``conv3x3(in_planes, out_planes, stride=1)``.
        conv1x1_fn: The learner's ``conv1x1(in_planes, out_planes, stride=1)``.

    Returns:
        A ``Report``; ``report.passed`` is True if no problem was found.
    """
    f = _Findings()
    for fn, ref_fn, name in ((conv3x3_fn, conv3x3, "conv3x3"), (conv1x1_fn, conv1x1, "conv1x1")):
        if isinstance(fn, type):
            f.problem(
                f"Pass your function `{name}`, not the class `{fn.__name__}`: write "
                f"`def {name}(in_planes, out_planes, stride=1):` returning the `nn.Conv2d`.",
                tier=_FATAL,
            )
            continue
        for stride in (1, 2):
            call = f"{name}(16, 32{', 2' * (stride == 2)})"
            try:
                with _seeded():  # the learner's random state stays as it was
                    mine = fn(16, 32, stride) if stride == 2 else fn(16, 32)
                    ref = ref_fn(16, 32, stride)
            except Exception as err:
                f.problem(
                    f"`{call}` raised {_format_error(err)}; the helper takes "
                    "`(in_planes, out_planes, stride=1)`."
                )
                continue
            if not isinstance(mine, nn.Module):
                f.problem(f"`{call}` returned a {type(mine).__name__}, not an `nn.Conv2d`.")
                continue
            with _seeded():
                _compare_conv(mine, ref, name, call, f)
    return f.report(
        "check_conv_helpers", "Called with (16, 32) and (16, 32, 2); run on 8x8 and 7x7."
    )


def _compare_conv(mine: nn.Module, ref: nn.Conv2d, name: str, call: str, f: _Findings) -> None:
    """Compares a conv built by a learner's helper with the package's: parameters, output sizes."""
    bias = getattr(mine, "bias", None)
    if isinstance(bias, Tensor):
        f.problem(
            f"`{name}` gives the conv a bias ({bias.numel():,} extra parameters in `{call}`): a "
            "BatchNorm follows every conv in a ResNet and its shift makes the bias useless. Pass "
            "`bias=False`."
        )
    n_mine = sum(p.numel() for p in mine.parameters() if p is not bias)
    n_ref = sum(p.numel() for p in ref.parameters())
    kernel = getattr(mine, "kernel_size", ref.kernel_size)
    if kernel != ref.kernel_size:
        f.problem(
            f"`{call}` builds a {_size(kernel)}x{_size(kernel)} convolution, expected "
            f"{_size(ref.kernel_size)}x{_size(ref.kernel_size)}: pass "
            f"`kernel_size={ref.kernel_size[0]}`."
        )
        return
    if n_mine != n_ref:
        f.problem(
            f"`{call}` has {n_mine:,} weights, expected {n_ref:,}: a conv from `in_planes` to "
            "`out_planes` channels."
        )
    for size in (8, 7):
        x = torch.randn(1, 16, size, size)
        try:
            with torch.no_grad():
                got, want = tuple(mine(x).shape[1:]), tuple(ref(x).shape[1:])
        except Exception as err:
            f.problem(f"`{call}` fails on a 16x{size}x{size} input: {_format_error(err)}.")
            return
        if got != want:
            hints = [  # which setting of the nn.Conv2d is off
                f" It has `{key}={getattr(mine, key)[0]}`, use `{key}={getattr(ref, key)[0]}`."
                for key in ("kernel_size", "padding", "stride")
                if isinstance(mine, nn.Conv2d) and getattr(mine, key) != getattr(ref, key)
            ]
            f.problem(
                f"`{call}` turns a 16x{size}x{size} input into {'x'.join(map(str, got))}, expected "
                f"{'x'.join(map(str, want))}: stride 1 keeps the size and stride 2 halves it "
                f"(rounding up).{''.join(hints)}"
            )
            return
