"""Rules every ResNet (v1) follows, whatever its names; no reference model needed.

A residual addition in each block, nothing on the shortcut but an optional projection, the ReLU
after the addition (not before), one BatchNorm per convolution and no conv bias before it, a new
module for each block, and every module created in ``__init__`` used in ``forward``.
"""

from functools import partial

from .describe import _arrow, _label, _rel, _sequence
from .graph import _Block, _Graph, _users, _within
from .report import _Findings, _places, _quote


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
        cat = any(op.kind == "cat" for op in g.ops)
        f.problem(
            "No residual connection: nothing adds a block's input back to its output, so this is a "
            "plain network, not a ResNet. Each block must compute `out = F(x) + shortcut(x)` "
            "(`out += identity`) and then apply the ReLU."
            + (
                " `torch.cat` stacks the two along the channels (and doubles them): add them "
                "instead."
                if cat
                else ""
            ),
            pos=len(g.ops),
        )
    if g.blocks and all(_pre_activation(g, blk) for blk in g.blocks):
        f.problem(
            'This is a pre-activation ResNet (ResNet v2, from Kaiming He et al. 2016, "Identity '
            'Mappings in Deep Residual Networks"): each block applies BatchNorm -> ReLU before '
            "each conv and nothing after the addition. This checker checks the original ResNet "
            "(v1, as torchvision): conv -> BatchNorm -> ReLU, the addition, then a ReLU.",
            pos=g.blocks[0].start,
        )
        return set(range(len(g.ops)))  # the rest differs because of it: nothing more to say
    flagged = _check_added_twice(g, f)
    flagged |= _check_shared_blocks(g, f) if g.context == "model" else set()
    for blk in g.blocks:
        if not flagged & set(blk.residual):
            flagged |= _check_block_rules(g, blk, f)
    return flagged | _check_conv_bn_rules(g, f, flagged)


def _check_added_twice(g: _Graph, f: _Findings) -> set[int]:
    """One shortcut added twice (`out = bn2(...) + identity`, then `relu(out + identity)`): the
    graph has two additions, which would otherwise read as two blocks."""
    flagged: set[int] = set()
    twice: list[_Block] = []

    def source(blk: _Block) -> int:  # the op whose output the addition takes as its shortcut
        return blk.shortcut[-1] if blk.shortcut else blk.start

    for b1, b2 in zip(g.blocks, g.blocks[1:], strict=False):
        if b1.add in b2.residual and source(b1) == source(b2):
            f.problem(
                "The shortcut is added twice in {where}: the block must add it once, "
                "`out += identity`, then apply the ReLU.",
                _quote(b1.name),
                pos=b2.add,
            )
            flagged |= {j for b in (b1, b2) for j in b.residual + b.shortcut + b.tail}
            flagged |= {b1.add, b2.add}
            twice.append(b2)
    if twice:  # the second addition is part of the first block, not a block of its own
        for b2 in twice:
            k = g.blocks.index(b2)
            b1 = g.blocks[k - 1]
            b1.end, b1.tail = b2.end, b2.tail
        old = list(g.blocks)
        g.blocks = [b for b in old if b not in twice]
        g.stages = [[b for b in stage if b not in twice] for stage in g.stages]
        g.stages = [stage for stage in g.stages if stage]
        g.gaps = {g.blocks.index(old[k]): gap for k, gap in g.gaps.items() if old[k] in g.blocks}
    return flagged


def _pre_activation(g: _Graph, blk: _Block) -> bool:
    """True for a ResNet v2 block: BatchNorm -> ReLU -> conv ..., the branch ends with a conv."""
    ops = g.ops
    body = [j for j in blk.pre + blk.residual if ops[j].kind != "reshape"]
    convs = [j for j in body if ops[j].kind == "conv"]
    if not convs or ops[body[-1]].kind != "conv" or not ops[convs[0]].inputs:
        return False
    relu = ops[convs[0]].inputs[0]  # what feeds the first conv: ReLU(BatchNorm(...))
    return ops[relu].kind == "relu" and any(ops[i].kind == "bn" for i in ops[relu].inputs)


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
    add = ops[blk.add]
    if add.info.get("inplace") and add.inputs and add.inputs[0] == blk.start and blk.residual:
        f.problem(_INPUT_IN_PLACE, where, key="input in place", pos=blk.add)
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


_INPUT_IN_PLACE = (
    "The block changes its input `x` in place ({where}): `identity` is `x` itself, so "
    "`identity += out` (or an in-place op on `x`) overwrites the previous block's output, "
    "which autograd needs for the backward pass. Add into the branch's output instead: "
    "`out += identity`."
)


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
                f"`{module}`" if g.context == "block" else f"`{module}` ({n:,} parameters)",
                pos=len(g.ops),
            )
