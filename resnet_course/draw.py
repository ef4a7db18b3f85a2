"""Pictures of blocks and networks, drawn from the modules themselves.

Tools tier: the notebooks import it but never copy it, so it is free to change (the tests
say what must hold).

``trace`` runs ``torch.fx`` on a module and records every layer it calls, with the shape of its
output and the layers it reads from; ``draw_graph`` draws that graph with matplotlib: the longest
path from input to output runs down a column, and the shortcuts run beside it. Because the
picture is made from the traced module, it cannot disagree with the code.
"""

import copy
import operator
from dataclasses import dataclass, field

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.path import Path
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

COLOURS = {
    "input": "#e8e8e8",
    "output": "#e8e8e8",
    "conv": "#cfe2f3",
    "bn": "#fff2cc",
    "relu": "#d9ead3",
    "add": "#f4cccc",
    "pool": "#e4d7f0",
    "linear": "#fce5cd",
}


@dataclass
class Node:
    """One layer of a traced module.

    Attributes:
        name: Unique name in the graph (torch.fx's name for the call).
        module: The module's path in the traced module (``"layer1.0.conv1"``); ``""`` for a
            function such as the addition.
        kind: ``"input"``, ``"conv"``, ``"bn"``, ``"relu"``, ``"pool"``, ``"add"``, ``"linear"``,
            ``"flatten"``, ``"output"``, or ``"other"``.
        label: What it does, e.g. ``"3x3 conv, 128, /2"``; fused nodes (see ``fuse``) hold
            several, one per layer.
        shape: Shape of its output for one input, without the batch dimension.
        inputs: Names of the nodes it reads from.
    """

    name: str
    module: str
    kind: str
    label: list[str]
    shape: tuple[int, ...]
    inputs: list[str] = field(default_factory=list)


@dataclass
class Graph:
    """The layers of a module in the order they run (a topological order), and their inputs."""

    nodes: list[Node]

    @property
    def edges(self) -> list[tuple[str, str]]:
        """``(from, to)`` for every input of every node."""
        return [(i, n.name) for n in self.nodes for i in n.inputs]

    def __getitem__(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def of_kind(self, kind: str) -> list[Node]:
        """The nodes of one kind, in order."""
        return [n for n in self.nodes if n.kind == kind]


class _Tracer(fx.Tracer):
    """torch.fx's tracer, with every module that has no submodules kept as one call."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return not any(True for _ in m.children()) or super().is_leaf_module(m, qualname)


def _pair(v: int | tuple[int, ...]) -> int:
    return v[0] if isinstance(v, tuple) else v


def _describe(m: nn.Module) -> tuple[str, str]:
    """(kind, label) of a leaf module, in the words of the paper's figures."""
    if isinstance(m, nn.Conv2d):
        k, s = _pair(m.kernel_size), _pair(m.stride)
        groups = f", {m.groups} groups" if m.groups > 1 else ""
        return "conv", f"{k}x{k} conv, {m.out_channels}{', /' + str(s) if s > 1 else ''}{groups}"
    if isinstance(m, nn.BatchNorm2d):
        return "bn", "BatchNorm"
    if isinstance(m, nn.ReLU):
        return "relu", "ReLU"
    if isinstance(m, nn.MaxPool2d):
        return "pool", f"{_pair(m.kernel_size)}x{_pair(m.kernel_size)} max-pool, /{_pair(m.stride)}"
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return "pool", "global avg-pool"
    if isinstance(m, nn.AvgPool2d):
        return "pool", f"{_pair(m.kernel_size)}x{_pair(m.kernel_size)} avg-pool"
    if isinstance(m, nn.Linear):
        return "linear", f"linear, {m.in_features}→{m.out_features}"
    if isinstance(m, nn.Flatten):
        return "flatten", "flatten"
    return "other", type(m).__name__


_ADD = {operator.add, operator.iadd, torch.add}
_RELU = {torch.relu, nn.functional.relu}


def trace(module: nn.Module, input_shape: tuple[int, ...]) -> Graph:
    """Traces ``module`` with torch.fx and records each layer, its output shape and its inputs.

    The module is copied to the ``meta`` device first: nothing is computed, and the module itself
    is left untouched. ``nn.Identity`` layers (the small-input stem's max-pool) pass their input
    through and do not appear.

    Args:
        module: A block, a stage or a whole network whose ``forward`` torch.fx can trace (no
            Python ``if`` on the values of tensors).
        input_shape: The shape of one input without the batch dimension, e.g. ``(64, 56, 56)``.

    Returns:
        The ``Graph``: one ``Node`` per layer call (a module used twice appears twice).

    Shape:
        - input_shape: ``(C, H, W)``.
    """
    work = copy.deepcopy(module).eval().to("meta")
    gm = fx.GraphModule(work, _Tracer().trace(work))
    ShapeProp(gm).propagate(torch.empty(1, *input_shape, device="meta"))
    nodes: list[Node] = []
    alias: dict[str, str] = {}  # an fx node that passes its input through -> that input's node

    def inputs(n: fx.Node) -> list[str]:
        found: list[str] = []
        fx.node.map_arg((n.args, n.kwargs), lambda a: found.append(alias.get(a.name, a.name)))
        known = {m.name for m in nodes}
        return [a for a in dict.fromkeys(found) if a in known]

    for n in gm.graph.nodes:
        meta = n.meta.get("tensor_meta")
        shape = tuple(meta.shape[1:]) if meta is not None and hasattr(meta, "shape") else ()
        if n.op == "placeholder":
            nodes.append(Node(n.name, "", "input", ["input"], shape))
            continue
        if n.op == "output":
            nodes.append(Node(n.name, "", "output", ["output"], nodes[-1].shape, inputs(n)))
            continue
        module_name, kind, label = "", "other", str(n.target)
        if n.op == "call_module":
            m = gm.get_submodule(n.target)
            if isinstance(m, nn.Identity):
                alias[n.name] = alias.get(n.args[0].name, n.args[0].name)
                continue
            module_name = n.target
            kind, label = _describe(m)
        elif n.op == "call_function":
            if n.target in _ADD:
                kind, label = "add", "+"
            elif n.target in _RELU:
                kind, label = "relu", "ReLU"
            elif n.target is torch.flatten:
                kind, label = "flatten", "flatten"
            else:
                label = getattr(n.target, "__name__", str(n.target))
        elif n.op == "call_method":
            kind = {"add": "add", "add_": "add", "relu": "relu", "relu_": "relu"}.get(
                n.target, "flatten" if n.target in ("flatten", "view", "reshape") else "other"
            )
            label = {"add": "+", "relu": "ReLU"}.get(kind, str(n.target))
        else:  # get_attr: a parameter read directly, not a layer
            continue
        nodes.append(Node(n.name, module_name, kind, [label], shape, inputs(n)))
    return Graph(nodes)


def fuse(graph: Graph) -> Graph:
    """Merges each convolution with the BatchNorm and ReLU right after it, and each addition with
    its ReLU, into one node, as the paper's figures draw them.

    Args:
        graph: A graph from ``trace``.

    Returns:
        A new graph; a fused node keeps the first layer's name and the last layer's shape.
    """
    users: dict[str, int] = {}
    for a, _ in graph.edges:
        users[a] = users.get(a, 0) + 1
    nodes: dict[str, Node] = {}
    merged: dict[str, str] = {}  # original name -> name of the node it was merged into
    tail: dict[str, str] = {}  # fused node -> the original name of its last layer
    for n in graph.nodes:
        ins = [merged.get(i, i) for i in n.inputs]
        p = nodes.get(ins[0]) if len(ins) == 1 else None
        mergeable = p is not None and users.get(tail[p.name], 0) == 1
        if mergeable and (
            (n.kind == "bn" and p.kind == "conv" and len(p.label) == 1)
            or (n.kind == "relu" and p.kind in ("conv", "add") and "ReLU" not in p.label)
        ):
            p.label.append("BN" if n.kind == "bn" else n.label[0])
            p.shape = n.shape
            merged[n.name], tail[p.name] = p.name, n.name
            continue
        nodes[n.name] = Node(n.name, n.module, n.kind, list(n.label), n.shape, ins)
        tail[n.name] = n.name
    return Graph(list(nodes.values()))


def _main_path(graph: Graph) -> list[str]:
    """The longest path from the input to the output, by number of nodes."""
    length: dict[str, int] = {}
    best: dict[str, str | None] = {}
    for n in graph.nodes:
        before = [i for i in n.inputs if i in length]
        prev = max(before, key=lambda i: length[i]) if before else None
        length[n.name], best[n.name] = (length[prev] + 1 if prev else 1), prev
    path, name = [], graph.nodes[-1].name
    while name is not None:
        path.append(name)
        name = best[name]
    return path[::-1]


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layout(graph: Graph, breaks: tuple[str, ...] = ()) -> dict[str, tuple[int, float, bool]]:
    """Where each node goes: ``{name: (column, row, on_main_path)}``.

    The longest path from input to output runs down column 0; ``breaks`` names the modules
    (e.g. ``("layer2", "layer3")``) at which it continues at the top of the next column. A node off
    that path (a projection shortcut) goes beside it, between the rows of the nodes it joins.

    Args:
        graph: A graph from ``trace`` or ``fuse``.
        breaks: Module names, or their prefixes, that start a new column.

    Returns:
        The column, row (0 at the top, may be fractional for side nodes) and whether the node is
        on the main path, for every node.
    """
    main = _main_path(graph)
    starts = sorted(
        {next(i for i, name in enumerate(main) if _matches(graph[name].module, b)) for b in breaks}
        - {0}
    )
    place: dict[str, tuple[int, float, bool]] = {}
    for i, name in enumerate(main):
        column = sum(i >= s for s in starts)
        place[name] = (column, float(i - ([0, *starts][column])), True)
    side = [n for n in graph.nodes if n.name not in place]
    for n in side:  # group each chain of side nodes by the main node it leads to
        if n.name in place:
            continue
        chain, last = [n], n
        while (after := [m for m in graph.nodes if last.name in m.inputs]) and after[0] in side:
            last = after[0]
            chain.append(last)
        if not after:
            continue
        column, end, _ = place[after[0].name]
        first = next((place[i] for i in n.inputs if i in place), None)
        start = first[1] if first is not None and first[0] == column else -1.0
        for k, m in enumerate(chain, 1):
            place[m.name] = (column, start + (end - start) * k / (len(chain) + 1), False)
    return place


def draw_graph(
    graph: Graph,
    breaks: tuple[str, ...] = (),
    names: bool = True,
    shapes: bool = True,
    title: str | None = None,
    ax: Axes | None = None,
    box_width: float = 1.9,
    fontsize: float = 7.5,
) -> Figure:
    """Draws a traced graph: boxes for the layers, arrows for the tensors between them.

    The main path runs down the page, continued in a new column at each of ``breaks``; shortcuts
    run to its right, projections in their own boxes, identity shortcuts as a bare line. Every box
    has the node's name as its ``gid`` and every arrow ``"from->to"``, so a test can compare the
    drawing with the graph.

    Args:
        graph: From ``trace`` (every layer) or ``fuse`` (conv + BN + ReLU in one box).
        breaks: Module names at which the main path continues in a new column.
        names: Write each layer's module name in its box.
        shapes: Write each layer's output shape (channels x height x width) in its box.
        title: A title above the drawing.
        ax: Axes to draw into, as large as ``graph_size`` says (text and boxes are sized in
            inches); by default a new figure of that size.
        box_width: Width of a box in inches, at least (a box is as wide as its text needs).
        fontsize: Size of the text in the boxes.

    Returns:
        The figure.
    """
    place = layout(graph, breaks)
    text = {n.name: _text(n, names, shapes) for n in graph.nodes}
    lines = max(t.count("\n") + 1 for t in text.values())
    bh = 0.06 + lines * fontsize / 72 * 0.6

    def needed(main: bool) -> float:  # half the width of the widest text in a lane, or more
        chars = [
            len(line)
            for n in graph.nodes
            if place[n.name][2] == main
            for line in text[n.name].splitlines()
        ]
        return max([box_width, max(chars, default=0) * fontsize / 72 * 0.56 + 0.16]) / 2

    bw, sw = needed(True), needed(False)
    row_h, side, col_w = 2 * bh + 0.16, bw + 0.25 + sw, 2 * bw + 0.6 + 2 * sw
    # Identity shortcuts run in a lane of their own, between the main path and the projections,
    # and leave and enter a little off the centre, so that no line is shared with a projection's.
    lane, dy = bw + 0.125, 0.4 * bh
    if all(main for _, _, main in place.values()):  # no projection: a narrow shortcut lane
        side, col_w = bw + 0.3, 2 * bw + (0.65 if _has_skips(graph, place) else 0.35)
        lane, dy = side, 0.0
    columns = 1 + max(c for c, _, _ in place.values())
    rows = 1 + max(r for _, r, _ in place.values())
    x0, top = bw + 0.3, bh + 0.25

    def centre(name: str) -> tuple[float, float]:
        c, r, main = place[name]
        return x0 + c * col_w + (0 if main else side), -r * row_h

    width, height = columns * col_w + 0.1, rows * row_h + top + (0.3 if title else 0.05)
    if ax is None:
        from matplotlib import pyplot as plt

        ax = plt.figure(figsize=(width, height)).add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(-height + top + (0.3 if title else 0), top + (0.3 if title else 0))
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.text(0.05, top + 0.25, title, fontsize=fontsize + 2, va="top")
    for n in graph.nodes:
        x, y = centre(n.name)
        w = bw if place[n.name][2] else sw
        ax.add_patch(
            FancyBboxPatch(
                (x - w, y - bh),
                2 * w,
                2 * bh,
                boxstyle="round,pad=0,rounding_size=0.06",
                facecolor=COLOURS.get(n.kind, "white"),
                edgecolor="0.35",
                lw=0.8,
                gid=n.name,
            )
        )
        ax.text(
            x,
            y,
            text[n.name],
            ha="center",
            va="center",
            fontsize=fontsize,
            linespacing=1.15,
            gid=f"text:{n.name}",
        )
    for a, b in graph.edges:
        ax.add_patch(
            FancyArrowPatch(
                path=_route(place, centre, a, b, bw, bh, row_h, side, top, lane, dy),
                arrowstyle="-|>",
                mutation_scale=7,
                lw=0.9,
                color="0.25",
                gid=f"{a}->{b}",
                shrinkA=0,
                shrinkB=0,
            )
        )
    return ax.figure


def graph_size(graph: Graph, breaks: tuple[str, ...] = (), **kwargs) -> tuple[float, float]:
    """Width and height in inches of ``draw_graph(graph, breaks, **kwargs)``."""
    from matplotlib import pyplot as plt

    fig = draw_graph(graph, breaks, **kwargs)
    size = tuple(fig.get_size_inches())
    plt.close(fig)
    return size


def draw_blocks(
    blocks: dict[str, nn.Module], input_shapes: dict[str, tuple[int, ...]], **kwargs
) -> Figure:
    """Draws several blocks side by side, each with its title, at the same scale.

    Args:
        blocks: ``{title: block}``.
        input_shapes: ``{title: shape of one input}``, e.g. ``(64, 56, 56)``.
        **kwargs: Passed to ``draw_graph``.

    Returns:
        The figure.
    """
    from matplotlib import pyplot as plt

    graphs = {title: trace(block, input_shapes[title]) for title, block in blocks.items()}
    sizes = {t: graph_size(g, title=t, **kwargs) for t, g in graphs.items()}
    width, height = sum(w for w, _ in sizes.values()), max(h for _, h in sizes.values())
    fig = plt.figure(figsize=(width, height))
    left = 0.0
    for title, graph in graphs.items():
        w, h = sizes[title]
        ax = fig.add_axes((left / width, 1 - h / height, w / width, h / height))
        draw_graph(graph, title=title, ax=ax, **kwargs)
        left += w
    return fig


def _text(n: Node, names: bool, shapes: bool) -> str:
    """A box's text: name and what it does, then the fused layers and the output shape."""
    first = f"{n.module}: {n.label[0]}" if names and n.module else n.label[0]
    shape = "×".join(map(str, n.shape)) if shapes and n.kind != "output" and n.shape else ""
    second = " · ".join(t for t in (", ".join(n.label[1:]), shape) if t)
    return f"{first}\n{second}" if second else first


def _has_skips(graph: Graph, place: dict[str, tuple[int, float, bool]]) -> bool:
    """True if some edge joins two main-path nodes that are not next to each other."""
    return any(place[a][0] == place[b][0] and place[b][1] - place[a][1] > 1 for a, b in graph.edges)


def _route(
    place, centre, a: str, b: str, bw: float, bh: float, row_h, side, top, lane=None, dy=0.0
) -> Path:
    """The path of the arrow from node ``a`` to node ``b`` (see ``draw_graph``).

    Projections sit ``side`` to the right of the main path; identity shortcuts run at ``lane``
    (``side`` by default), leaving ``dy`` below a node's centre and entering ``dy`` above it.
    """
    lane = side if lane is None else lane
    (ca, _, main_a), (cb, _, main_b) = place[a], place[b]
    (xa, ya), (xb, yb) = centre(a), centre(b)
    if ca != cb:  # down, right into the gap, up to the top, then into b from above or the side
        gap = (xb if main_b else xb - side) - bw - 0.2
        low, high = ya - bh - (row_h - 2 * bh) / 2, top - 0.12
        vertices = [(xa, ya - bh), (xa, low), (gap, low), (gap, high)]
        if main_b and place[b][1] > 0:  # a shortcut: down the lane beside the main path
            vertices += [(xb + lane, high), (xb + lane, yb + dy), (xb + bw, yb + dy)]
        else:
            vertices += [(xb, high), (xb, yb + bh)]
    elif main_a and main_b and place[b][1] - place[a][1] <= 1:  # the next layer down
        vertices = [(xa, ya - bh), (xb, yb + bh)]
    elif main_a and main_b:  # an identity shortcut, in the lane beside the main path
        vertices = [
            (xa + bw, ya - dy),
            (xa + lane, ya - dy),
            (xa + lane, yb + dy),
            (xb + bw, yb + dy),
        ]
    elif main_a:  # into a projection beside the main path
        vertices = [(xa + bw, ya), (xb, ya), (xb, yb + bh)]
    elif main_b:  # out of a projection, into the addition
        vertices = [(xa, ya - bh), (xa, yb), (xb + bw, yb)]
    else:
        vertices = [(xa, ya - bh), (xb, yb + bh)]
    return Path(vertices)


def draw_block(block: nn.Module, input_shape: tuple[int, ...], **kwargs) -> Figure:
    """Draws every layer of a block with its output shape (``draw_graph(trace(...))``).

    Args:
        block: A residual block (or any traceable module).
        input_shape: The shape of one input, e.g. ``(64, 56, 56)``.
        **kwargs: Passed to ``draw_graph``.

    Returns:
        The figure.

    Shape:
        - input_shape: ``(C, H, W)``.
    """
    return draw_graph(trace(block, input_shape), **kwargs)


def draw_network(
    model: nn.Module, input_shape: tuple[int, ...], breaks: tuple[str, ...] = (), **kwargs
) -> Figure:
    """Draws a network with each conv + BN + ReLU as one box, and its skip connections.

    Args:
        model: A network, a stage, or a block.
        input_shape: The shape of one input, e.g. ``(3, 224, 224)``.
        breaks: Module names at which the drawing continues in a new column, e.g.
            ``("layer2", "layer3", "layer4")`` for one column per stage.
        **kwargs: Passed to ``draw_graph`` (by default without module names).

    Returns:
        The figure.

    Shape:
        - input_shape: ``(C, H, W)``.
    """
    kwargs.setdefault("names", False)
    return draw_graph(fuse(trace(model, input_shape)), breaks=breaks, **kwargs)
