"""Recording the dataflow graph of one forward pass.

``_Recorder`` is a ``TorchFunctionMode``: while it is active, every torch operation the model
runs (conv, BatchNorm, ReLU, add, pooling, linear, ...) passes through it and becomes an ``_Op``
that remembers which earlier ops produced its inputs. ``_op_info`` reads the hyperparameters that
matter (kernel, stride, channels, bias) from the call's arguments.
"""

import weakref
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from torch import Tensor, nn
from torch.overrides import TorchFunctionMode


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
            if kind == "slice" and len(ins) == 1 and outs and outs[0].shape == ins[0].shape:
                kind = "reshape"  # `x[:, :, ::1, ::1]` takes all of x: a view, not a change
            params = [t for t in ins if isinstance(t, nn.Parameter)]
            self.used.update(id(p) for p in params)
            named = [self.names[id(t)] for t in ins if id(t) in self.names]
            shape = outs[0].shape if outs else ins[0].shape if ins else ()
            info = _op_info(name, kind, args, kwargs)
            info["in_shape"] = tuple(ins[0].shape) if ins else ()
            info["inplace"] = (
                name.endswith("_") and not name.startswith("__") or name.startswith("__i")
            )
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
