"""Explaining a forward pass that raised: the mistake that caused it, when it can be found.

A crash is rarely the mistake itself: a residual addition of two shapes, a conv receiving the
wrong number of channels, an fc layer receiving unflattened features. These functions name the
branch, module or setting responsible, using the reference's graph where it helps.
"""

import re

from .describe import _diff, _label, _rel
from .graph import _Graph, _split_branches, _within
from .record import _Op
from .report import _MISTAKE, _Findings, _places


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
            if ref_fc and i["fin"] == ref_fc[0]:  # the fc is right: what feeds it is not
                f.problem(
                    _wrong_features(g, name, i["fin"], i["in_shape"][-1])
                    + f" Because of this, {crash}.",
                    where,
                    key="fc input",
                    pos=pos,
                )
                return
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


def _idle(g: _Graph, scope: str = "") -> list[str]:
    """The outermost modules inside ``scope`` that hold parameters and whose forward never ran."""
    idle = []
    for m in g.unused:
        if (not scope or _within(m, scope)) and m not in g.entered:
            while m.rpartition(".")[0] not in g.entered | {scope, ""}:
                m = m.rpartition(".")[0]  # the outermost module never called, e.g. `layer4`
            idle.append(m)
    return list(dict.fromkeys(idle))


def _wrong_features(g: _Graph, name: str, fin: int, got: int) -> str:
    """Why an fc layer of the right size receives ``got`` features: a stage skipped, no pooling."""
    idle = _idle(g)
    if idle:
        g.mentioned.update(u for u in g.unused if any(_within(u, m) for m in idle))
        names = _places([f"`{m}`" for m in idle])
        return (
            f"{names} {'is' if len(idle) == 1 else 'are'} created but never called in `forward`: "
            f"call every stage in order. The fc layer {name} has the right size ({fin:,} input "
            f"features) but receives {got:,}."
        )
    side = int(round((got / fin) ** 0.5)) if got % fin == 0 else 0
    shape = f" = {fin:,} x {side} x {side}" if side > 1 and side * side * fin == got else ""
    return (
        f"The fc layer {name} has the right size ({fin:,} input features) but receives "
        f"{got:,}{shape}: the last feature map is not averaged to 1x1 before it. Pool globally "
        "with `nn.AdaptiveAvgPool2d((1, 1))` (any input size), then `torch.flatten(x, 1)`."
    )


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
    idle = _idle(g, scope) if scope else []
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
        if not diffs and shortcut and rb.shortcut:  # the branch is right: is the projection?
            diffs = _diff(g, shortcut, ref, rb.shortcut, scope, "shortcut", f"in {block}")
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
