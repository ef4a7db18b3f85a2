"""Operations and their differences, in words.

``_describe`` turns an op into a short text ("conv3x3(64->128, stride 2)", "BN", "ReLU"),
``_label`` names it as the learner wrote it ("`conv2`"). ``_diff`` aligns a part of the
learner's network (a residual branch, a shortcut, the stem) with the reference's and says what
differs: a missing op, an extra one, a stride in the wrong place, a wrong kernel or channel count.
"""

import difflib
from dataclasses import dataclass

from .graph import _Block, _Graph
from .record import _Op


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

    differ = [i for i, (p, q) in enumerate(zip(ta, tb, strict=False)) if p != q]
    if len(ta) == len(tb) and len(differ) == 2 and differ[1] == differ[0] + 1:
        i = differ[0]
        if (ta[i], ta[i + 1]) == (tb[i + 1], tb[i]):  # two ops in the wrong order
            first, second = (_label(mine, a[k], scope) for k in (i, i + 1))
            text = f"{first} comes before {second} {place}: swap them." + want
            pairs = [(x, y) for k, (x, y) in enumerate(zip(a, b, strict=True)) if k not in differ]
            return [_Diff(a[i], f"{part}: order {ta[i]} {ta[i + 1]}", text)] + _diff_convs(
                mine, ref, pairs, scope, part, place, want
            )
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
    paired = {x for x, _ in pairs}
    if any(mine.ops[j].info.get("stride", (1, 1)) != (1, 1) for j in a if j not in paired):
        # An extra op already strides (a deep stem's first conv, ResNet-D's pooled shortcut).
        found = [d for d in found if not d.key.endswith(": no stride")]
    if place == f"in the {part}":  # "at the start of the stem in the stem" says it twice
        for d in found:
            d.text = d.text.replace(f"of the {part} {place}", f"of the {part}")
    return sorted(found, key=lambda d: d.pos)


# Why a stride belongs on a part (the residual branch's words are in _diff_convs).
_HALVES = {
    "stem": "the stem reduces the height and width as the reference's does.",
    "shortcut": "the shortcut halves the height and width as the residual branch does.",
}


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
                + _HALVES.get(part, "the branch halves the height and width as the shortcut does.")
            )
            found.append(_Diff(x, f"{part}: no stride", text))
        elif r_strided and set(x for x, _ in r_strided) <= set(m_strided):
            x = next(x for x in m_strided if x not in {x for x, _ in r_strided})
            y = r_strided[0][0]
            text = (
                f"{_label(mine, x, scope)} has stride {_size(mine.ops[x].info['stride'])} {place} "
                f"as well as {_label(mine, y, scope)}, so the branch shrinks the height and width "
                f"twice: only {_label(mine, y, scope)} takes `stride`. Leave "
                f"{_label(mine, x, scope)} at stride 1."
            )
            found.append(_Diff(x, f"{part}: extra stride on {_label(mine, x, scope)}", text))
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
                else " A projection outputs `planes * block.expansion` channels, as the residual "
                "branch does."
                if part == "shortcut"
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
