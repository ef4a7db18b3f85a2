"""Checks of the pieces a learner writes before the whole network.

``check_block`` (a ``BasicBlock`` or ``Bottleneck`` class, built in three configurations),
``check_make_layer`` (a stage of blocks) and ``check_conv_helpers`` (``conv3x3`` and ``conv1x1``).
Each compares the learner's piece with the package's: structure, parameters, and outputs with the
same weights.
"""

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import torch
from torch import Tensor, nn

from ..blocks import BasicBlock, Bottleneck
from ..layers import conv1x1, conv3x3
from ..resnet import ResNet
from .compare import _count, _is_v1, _judge
from .describe import _size
from .graph import _analyse, _Graph
from .model import _positive_int, _private_copy
from .report import _FATAL, _RESULT, Report, _Findings, _format_error
from .rules import _INPUT_IN_PLACE


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
        is_ = "is " + repr(expansion) if hasattr(block_cls, "expansion") else "is missing"
        f.problem(
            f"`{name}.expansion` {is_}: a BasicBlock has the class attribute "
            "`expansion = 1` and a Bottleneck `expansion = 4` (output channels = planes * "
            "expansion). Set it, or pass `kind='basic'` or `kind='bottleneck'`."
        )
        return f.report(title)
    if how != f"kind={kind!r}":  # inferred from `expansion`: do the block's convs agree?
        convs = _conv_modules(block_cls)
        if convs == {"basic": 3, "bottleneck": 2}[kind]:
            kind, how = {2: "basic", 3: "bottleneck"}[convs], "from its convolutions"
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


def _conv_modules(block_cls: type[nn.Module]) -> int:
    """How many convolutions ``block_cls(64, 64)`` holds and runs (0 if they differ or it fails).

    Two for a BasicBlock, three for a Bottleneck: what the block is, whatever its ``expansion``.
    """
    try:
        with _seeded():
            block = block_cls(64, 64)
            x = torch.randn(2, 64, 8, 8)
        held = sum(isinstance(m, nn.Conv2d) for m in block.modules())
        ran = sum(op.kind == "conv" for op in _analyse(block, x, context="block").ops)
    except Exception:
        return 0
    return held if held == ran else 0


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
    seen = x.clone()
    try:
        with torch.no_grad():
            mine.eval()
            mine(seen)
    except Exception:
        seen = x
    if not torch.equal(seen, x):
        f.problem(_INPUT_IN_PLACE, label, key="input in place")
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
