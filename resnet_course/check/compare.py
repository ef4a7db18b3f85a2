"""Judging a graph against the reference's: rules first, then a comparison part by part.

``_judge`` runs every check of a learner's graph (a model, a stage or a block) in order: why the
forward pass failed, the rules, then the comparison with the package's graph (kind of block,
stages, each block's branches, stem and head), and finally modules never used.
"""

from .describe import _arrow, _Diff, _diff, _sequence, _shortcut
from .failure import _explain_failure, _idle
from .graph import _Block, _Graph, _prefix, _within
from .report import _RESULT, _Findings, _places, _quote
from .rules import _check_rules, _check_unused, _find_unused, _unused_in


def _judge(
    mine: _Graph,
    ref: _Graph,
    f: _Findings,
    arch: str,
    cifar: bool = False,
    skip_unused: set[str] | None = None,
    where: str = "",
    given: bool = False,
    skip_stem: bool = False,
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
        skip_stem: The stem is judged elsewhere (the small-input stem checked as an ImageNet one).
    """
    _find_unused(mine, skip_unused or set())
    if mine.error:
        _explain_failure(mine, ref, f, where, given)
    elif (
        mine.output != ref.output
        and not (not mine.blocks and any(op.kind == "cat" for op in mine.ops))
        and not (mine.context == "stage" and len(mine.stages) > len(ref.stages) == 1)
    ):  # a `torch.cat` instead of the addition changes the shape: named with the rules below
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
                skipped = set(mine.stem) if skip_stem else set()
                _compare_ends(mine, ref, f, flagged | skipped, differs, arch)
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
    if mine.context == "model" and _compare_widths(mine, ref, f, arch):
        return True
    if mine.context == "block":
        before = f.count()
        _compare_blocks(mine, ref, f, flagged, cifar, set())
        if f.count() > before or any(b.add in flagged for b in mine.blocks):
            return True
        counts_differ, bad = _compare_stages(mine, ref, f, arch)
        return counts_differ or bool(bad)
    counts_differ, bad = _compare_stages(mine, ref, f, arch)
    if not counts_differ:
        _compare_blocks(mine, ref, f, flagged, cifar, bad)
    return counts_differ or bool(bad)


def _compare_widths(mine: _Graph, ref: _Graph, f: _Findings, arch: str) -> bool:
    """A Wide ResNet or a ResNeXt checked as a ResNet: the same network with wider (or grouped)
    Bottlenecks. Named once, as what it is, instead of every inner conv of every block."""
    if [len(s) for s in mine.stages] != [len(s) for s in ref.stages]:
        return False
    found = set()
    for stage, ref_stage in zip(mine.stages, ref.stages, strict=True):
        for k, blk in enumerate(stage):
            rb = ref_stage[min(k, 1, len(ref_stage) - 1)]
            mc = [mine.ops[j].info for j in blk.residual if mine.ops[j].kind == "conv"]
            rc = [ref.ops[j].info for j in rb.residual if ref.ops[j].kind == "conv"]
            if len(mc) != 3 or len(rc) != 3 or [c["k"] for c in mc] != [c["k"] for c in rc]:
                return False
            wide, groups = mc[1]["cout"] / rc[1]["cout"], mc[1]["groups"]
            if mc[0]["cout"] != mc[1]["cout"] or mc[2]["cout"] != rc[2]["cout"]:
                return False
            found.add((wide, groups))
    if len(found) != 1 or found == {(1.0, 1)}:
        return False
    (wide, groups), blk = found.pop(), mine.stages[0][0]
    width = next(mine.ops[j].info["cout"] for j in blk.residual if mine.ops[j].kind == "conv")
    ref_width = next(ref.ops[j].info["cout"] for j in ref.blocks[0].residual)
    widths = (
        f": the first two convs of `{blk.name}` output {width} channels instead of {ref_width}, "
        "and so on in every block"
        if wide != 1
        else ""
    )
    what = (
        f"a ResNeXt ({groups} groups of {width // groups} channels in `{blk.name}`, like "
        f"torchvision's `resnext50_32x4d`)"
        if groups > 1
        else "a Wide ResNet (torchvision's `wide_resnet50_2` is 2 times as wide)"
        if wide > 1
        else "a narrower network"
    )
    f.problem(
        (
            f"The Bottlenecks are {wide:g} times as wide as {arch}'s"
            if wide != 1
            else "The Bottlenecks"
        )
        + (
            f"{', with' if wide != 1 else ' have'} grouped 3x3 convs (`groups={groups}`)"
            if groups > 1
            else ""
        )
        + f"{widths}. This makes it {what}, not {arch}: for {arch}, the inner width of "
        "a Bottleneck is `planes` (`groups=1`, `base_width=64`).",
        pos=blk.start,
    )
    return True


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
    gates = [_se_gate(mine, b) for b in mine.blocks]
    if all(gates) and {
        _conv_count(mine, b) - sum(mine.ops[j].kind == "conv" for j in gate)
        for b, gate in zip(mine.blocks, gates, strict=True)
    } == {want}:
        layer = _prefix([mine.ops[j].module for j in gates[0] if mine.ops[j].module])
        f.problem(
            "The residual branches end in a Squeeze-and-Excitation gate (a global average, two "
            "small layers, a sigmoid, then a product with the branch"
            + (f": `{layer}` in the first block" if layer else "")
            + "), as in SE-ResNet (Hu et al. 2018; timm's `seresnet50`): a real variant, but not "
            f"this network. Without the gates the blocks are {_KIND_NAMES[want]}, as expected.",
            pos=mine.blocks[0].start,
        )
        return True
    if kinds <= {want}:
        return False
    got = " and ".join(_KIND_NAMES.get(k, f"blocks with {k} convs") for k in sorted(kinds))
    f.problem(
        f"Wrong kind of block: the residual branches are {got}, expected {_KIND_NAMES[want]}.",
        pos=mine.blocks[0].start,
    )
    return True


def _se_gate(g: _Graph, blk: _Block) -> list[int]:
    """The ops of a Squeeze-and-Excitation gate on a block's residual branch, [] if it has none:
    from a global average to the product with the branch, a sigmoid between them."""
    kinds = [g.ops[j].kind for j in blk.residual]
    pools = [
        i
        for i, j in enumerate(blk.residual)
        if kinds[i] == "mean" or (kinds[i] == "avgpool" and g.ops[j].info.get("adaptive"))
    ]
    if not pools or "mul" not in kinds:
        return []
    end = len(kinds) - 1 - kinds[::-1].index("mul")
    gate = blk.residual[pools[0] : end + 1]
    return gate if "sigmoid" in kinds[pools[0] : end] else []


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
            if got_s == want_s or flagged & set(blk.shortcut + blk.pre + [blk.add]):
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
            elif _avg_down(mine, blk):  # the reference projects with a strided conv
                f.problem(
                    "Average-pooling shortcut in {where}: `AvgPool2d(2)`, then the 1x1 conv with "
                    "stride 1, where this course and torchvision project with a 1x1 conv of "
                    'stride 2. That is ResNet-D\'s shortcut (He et al. 2019, "Bag of Tricks"; '
                    "timm's `resnet50d`): a real variant, but not this network.",
                    where,
                    key="ResNet-D shortcut",
                    pos=blk.add,
                )
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


def _avg_down(g: _Graph, blk: _Block) -> bool:
    """ResNet-D's shortcut: an average pool that halves the size, then a 1x1 conv of stride 1."""
    ops = [g.ops[j] for j in blk.shortcut]
    return (
        len(ops) > 1
        and ops[0].kind == "avgpool"
        and ops[0].info.get("stride") == (2, 2)
        and ops[1].kind == "conv"
        and ops[1].info["k"] == (1, 1)
        and ops[1].info["stride"] == (1, 1)
    )


def _deep_stem(mine: _Graph, ref: _Graph, f: _Findings, arch: str) -> bool:
    """ResNet-C's deep stem (three 3x3 convs where the reference has one 7x7): named once, as
    what it is, instead of an extra sequence and a wrong kernel. True if found."""
    convs = [mine.ops[j].info for j in mine.stem if mine.ops[j].kind == "conv"]
    ref_convs = [ref.ops[j].info for j in ref.stem if ref.ops[j].kind == "conv"]
    if not (
        len(convs) == 3
        and [c["k"] for c in convs] == [(3, 3)] * 3
        and convs[0]["stride"] == (2, 2)
        and [c["k"] for c in ref_convs] == [(7, 7)]
        and "maxpool" in [mine.ops[j].kind for j in mine.stem]
    ):
        return False
    f.problem(
        f"The stem is a deep stem: three 3x3 convs ({', '.join(str(c['cout']) for c in convs)} "
        "channels, the first with stride 2) instead of one 7x7 conv. That is the stem of "
        'ResNet-C and ResNet-D (He et al. 2019, "Bag of Tricks"; timm\'s `resnet50d`): a real '
        f"variant, but not {arch}, whose stem is {_arrow(_sequence(ref, ref.stem))}.",
        pos=mine.stem[0],
    )
    return True


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
    if len(got) != len(want) and mine.context == "stage" and len(want) == 1:
        later = [b for b in mine.blocks[1:] if ops[b.end].shape[2:] != ops[b.start].shape[2:]]
        if later:  # one stage that shrinks twice: a stride given to a later block
            b = later[0]
            f.problem(
                f"Block {_quote(later[0].name)} changes the height and width again "
                f"({_hw(ops[b.start].shape)} -> {_hw(ops[b.end].shape)}): only the first block "
                "of a stage gets `stride`; build the others with stride 1 (and no `downsample`).",
                pos=b.start,
            )
            return True, set()
    if len(got) != len(want):
        shapes = [[_stage_out(g, s) for s in g.stages] for g in (mine, ref)]
        idle = _idle(mine) if mine.context == "model" else []
        mine.mentioned.update(u for u in mine.unused if any(_within(u, m) for m in idle))
        names = _places([f"`{m}`" for m in idle])
        f.problem(
            f"{len(got)} stages of blocks (outputs {', '.join(shapes[0])}), expected {len(want)} "
            f"for {arch} (outputs {', '.join(shapes[1])})."
            + (
                f" {names} {'is' if len(idle) == 1 else 'are'} created but never called in "
                "`forward`: call every stage in order."
                if idle
                else ""
            ),
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
    channels: list[tuple[str, int, int, int]] = []  # stages whose output channels differ
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
            if not channels:
                f.problem(
                    f"{name} outputs {m_out[1]} channels, expected {r_out[1]}: {hint}.",
                    key="stage channels",
                    pos=pos,
                )
            channels.append((name, m_out[1], r_out[1], pos))
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
    if len(channels) > 1:  # one mistake (`expansion`, `planes`) seen in several stages: once
        names, outs, wants, _ = zip(*channels, strict=True)
        text, rank = f.problems.pop("stage channels")[0::2]
        hint = text.split(": ", 1)[1].replace("for this stage", "for each stage")
        f.problem(
            f"{_places(list(names))} output {_places([str(n) for n in outs])} channels, "
            f"expected {_places([str(n) for n in wants])}: {hint}",
            key="stage channels",
            pos=rank[1],
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
    mine: _Graph,
    ref: _Graph,
    f: _Findings,
    flagged: set[int],
    structure_differs: bool,
    arch: str,
) -> None:
    """Compares the stem (before the first block), the head (after the last) and any op between."""
    if (
        mine.context == "model"
        and not flagged & set(mine.stem)
        and not _deep_stem(mine, ref, f, arch)
    ):
        diffs = _diff(mine, mine.stem, ref, ref.stem, "", "stem", "in the stem")
        _report_diffs(f, diffs, "", mine, "")
    got, want = _sequence(mine, mine.head, channels=False), _sequence(ref, ref.head, channels=False)
    fc = [mine.ops[j].info["fin"] for j in mine.head if mine.ops[j].kind == "linear"]
    ref_fc = [ref.ops[j].info["fin"] for j in ref.head if ref.ops[j].kind == "linear"]
    wrong_fc = fc and ref_fc and fc[0] != ref_fc[0] and not structure_differs
    biases = [
        [g.ops[j].info["bias"] for j in g.head if g.ops[j].kind == "linear"] for g in (mine, ref)
    ]
    if mine.context == "model" and biases[0][:1] == [False] and biases[1][:1] == [True]:
        f.problem(
            "The fc layer has no bias (`bias=False`): the classifier's `nn.Linear` keeps its bias "
            "(no BatchNorm follows it to provide a shift).",
            pos=next(j for j in mine.head if mine.ops[j].kind == "linear"),
        )
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


def _count(mine: _Graph, ref: _Graph) -> str:
    """ "11,689,512 parameters", and the reference's number when it differs."""
    if mine.total == ref.total:
        return f"{mine.total:,} parameters"
    return f"{mine.total:,} parameters (the reference has {ref.total:,})"
