"""What each traced operation does to a receptive field: the :class:`Op` record and the
:class:`OpRecorder` that classifies module and function calls into ops, following tensors by
identity. The front ends that feed it are in :mod:`layerscope.architecture.tracing`; the
arithmetic over ops is in :mod:`layerscope.architecture.growth`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
from torch import nn

__all__ = [
    "CONVOLUTIONS",
    "HANDLED_MODULES",
    "IGNORED_FUNCTIONS",
    "Op",
    "OpRecorder",
    "Trace",
    "normalize_name",
]


@dataclass(frozen=True)
class Op:
    """One operation as far as receptive fields are concerned.

    kind: ``"input"``, ``"window"`` (convolution / pooling: kernel, stride, dilation per axis),
    ``"transposed"`` (transposed convolution), ``"resample"`` (interpolation: ``stride`` holds
    the scale out/in, ``kernel`` the interpolation taps), ``"merge"`` (element-wise combination
    of paths: add, concatenation, ...), ``"mul"`` (element-wise product: a possible gate),
    ``"identity"`` or ``"global"`` (``axes`` marks the axes whose every output sees the whole
    input, e.g. after global pooling or flattening).
    """

    index: int
    kind: str
    inputs: tuple[int, ...]
    name: str
    type: str
    module: bool = False
    source: int | None = None  # op that produced the layer's own input (its first tensor arg)
    kernel: tuple[int, ...] = ()
    stride: tuple[Fraction, ...] = ()
    dilation: tuple[int, ...] = ()
    axes: tuple[bool, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Trace:
    ops: tuple[Op, ...]
    num_axes: int
    tracer: str  # "fx" or "hooks"
    fallback_reason: str  # why fx was not used ("" when it was)


_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_POOL = (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd, nn.modules.pooling._LPPoolNd)
_ADAPTIVE = (nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)
_PAD = (
    nn.modules.padding._ConstantPadNd,
    nn.modules.padding._ReflectionPadNd,
    nn.modules.padding._ReplicationPadNd,
    nn.ZeroPad2d,
)
_SOFTMAX = (nn.Softmax, nn.LogSoftmax, nn.Softmin)
#: Convolutions and transposed convolutions (the first one tells an example input's channels).
CONVOLUTIONS = (*_CONV, *_CONV_T)
#: Module types whose calls the hook tracer records as one operation (their insides are hidden).
HANDLED_MODULES = (
    *_CONV, *_CONV_T, *_POOL, *_ADAPTIVE, *_PAD, *_SOFTMAX,
    nn.Upsample, nn.PixelShuffle, nn.PixelUnshuffle, nn.Flatten,
)  # fmt: skip

_BINARY = {"add", "sub", "mul", "div", "truediv", "floordiv", "matmul", "pow", "and", "or", "xor"}
_MUL = {"mul", "div", "truediv"}
_CONV_FN = {f"conv{d}d" for d in (1, 2, 3)}
_CONV_T_FN = {f"conv_transpose{d}d" for d in (1, 2, 3)}
_MAXPOOL_FN = {f"max_pool{d}d" for d in (1, 2, 3)} | {
    f"max_pool{d}d_with_indices" for d in (1, 2, 3)
}
_AVGPOOL_FN = {f"avg_pool{d}d" for d in (1, 2, 3)}
_LPPOOL_FN = {f"lp_pool{d}d" for d in (1, 2, 3)}
_ADAPTIVE_FN = {
    f"adaptive_{kind}_pool{d}d{suffix}"
    for kind in ("avg", "max")
    for d in (1, 2, 3)
    for suffix in ("", "_with_indices")
}
_RESAMPLE_FN = {"interpolate", "upsample", "upsample_nearest", "upsample_bilinear"}
_REDUCE_FN = {
    "mean", "sum", "amax", "amin", "max", "min", "std", "var", "logsumexp", "norm", "prod",
    "softmax", "log_softmax", "softmin", "cumsum", "cumprod", "argmax", "argmin", "median",
    "nansum", "nanmean", "all", "any", "std_mean", "var_mean",
}  # fmt: skip
_SHAPE_FN = {
    "flatten", "view", "reshape", "unflatten", "squeeze", "unsqueeze", "contiguous", "expand",
    "expand_as", "view_as", "reshape_as", "repeat", "clone", "detach", "to", "float", "half",
    "double", "type", "type_as",
}  # fmt: skip
_LAYOUT_FN = {"permute", "transpose", "t", "movedim", "swapaxes", "swapdims"}
#: Calls that never carry data between tensors.
IGNORED_FUNCTIONS = {
    "size",
    "dim",
    "numel",
    "__get__",
    "__set__",
    "__len__",
    "__bool__",
    "item",
    "tolist",
}


def normalize_name(name: str) -> str:
    """``"__iadd__"``, ``"add_"``, ``"iadd"``, ``"radd"`` -> ``"add"``; ``"__getitem__"`` ->
    ``"getitem"``; ``"truediv"`` -> ``"div"``."""
    stripped = name.strip("_")
    if stripped[:1] in ("i", "r") and stripped[1:] in _BINARY:
        stripped = stripped[1:]
    return "div" if stripped == "truediv" else stripped


def _per_axis(value: Any, n: int) -> tuple[int, ...] | None:
    if isinstance(value, int):
        return (value,) * n
    values = tuple(int(v) for v in value)
    if len(values) == 1:
        return values * n
    return values if len(values) == n else None


def _bind(args: tuple, kwargs: dict, names: tuple[str, ...], defaults: dict) -> dict:
    bound = dict(defaults)
    bound.update(zip(names, args, strict=False))
    bound.update({k: v for k, v in kwargs.items() if k in names})
    return bound


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _adaptive_window(size_in: int, size_out: int) -> tuple[int, Fraction]:
    """Largest window and mean step of adaptive pooling from ``size_in`` to ``size_out``."""
    kernel = max(
        math.ceil((i + 1) * size_in / size_out) - math.floor(i * size_in / size_out)
        for i in range(size_out)
    )
    return kernel, Fraction(size_in, size_out)


_TAPS = {"nearest": 1, "nearest-exact": 1, "linear": 2, "bilinear": 2, "trilinear": 2, "bicubic": 4}


class OpRecorder:
    """Collects :class:`Op` records, following tensors by identity."""

    def __init__(self, num_axes: int) -> None:
        self.num_axes = num_axes
        self.ops: list[Op] = []
        self._producer: dict[int, int] = {}
        self._alive: list[torch.Tensor] = []  # keeps ids unique while tracing
        self._counts: dict[str, int] = {}

    def producer(self, value: Any) -> int | None:
        return self._producer.get(id(value)) if isinstance(value, torch.Tensor) else None

    def fresh_name(self, base: str) -> str:
        count = self._counts.get(base, 0)
        self._counts[base] = count + 1
        return base if count == 0 else f"{base}_{count}"

    def add(self, result: Any, **fields: Any) -> None:
        op = Op(index=len(self.ops), **fields)
        self.ops.append(op)
        for tensor in _tensors(result):
            self._producer[id(tensor)] = op.index
            self._alive.append(tensor)

    def add_input(self, tensor: torch.Tensor) -> None:
        self.add(tensor, kind="input", inputs=(), name="input", type="input")

    def alias(self, name: str, type_name: str, output: Any, first_input: Any) -> None:
        """Name the tensor a recorded container returned (an identity operation)."""
        produced = [self.producer(t) for t in _tensors(output)]
        produced = [p for p in produced if p is not None]
        if produced:
            source = self.producer(first_input)
            self.add(
                output,
                kind="identity",
                inputs=(produced[0],),
                name=name,
                type=type_name,
                module=True,
                source=source if source is not None else produced[0],
            )

    def record(
        self,
        *,
        name: str,
        type_name: str,
        module: nn.Module | None,
        function: str,
        args: tuple,
        kwargs: dict,
        result: Any,
    ) -> None:
        operands = [
            (t, self.producer(t)) for t in _tensors((args, kwargs)) if self.producer(t) is not None
        ]
        outputs = list(_tensors(result))
        if not operands or not outputs:
            return  # constants, shapes, parameters: nothing to follow
        spec = self._classify(module, function, args, kwargs, operands, outputs)
        inputs = tuple(dict.fromkeys(op for _, op in operands))
        source = self.producer(args[0]) if args else None
        self.add(
            result,
            inputs=inputs,
            name=name,
            type=type_name,
            module=module is not None,
            source=source if source is not None else inputs[0],
            **spec,
        )

    # -- classification ------------------------------------------------------------------------

    def _spatial(self, tensor: torch.Tensor) -> tuple[int, ...] | None:
        return tuple(tensor.shape[2:]) if tensor.dim() == 2 + self.num_axes else None

    def _window(self, kernel, stride, dilation) -> dict:
        n = self.num_axes
        kernel, dilation = _per_axis(kernel, n), _per_axis(dilation, n)
        stride = _per_axis(kernel if stride is None or stride == [] else stride, n)
        if kernel is None or stride is None or dilation is None:
            return {}
        return {
            "kind": "window",
            "kernel": kernel,
            "stride": tuple(Fraction(s) for s in stride),
            "dilation": dilation,
        }

    def _classify(self, module, function, args, kwargs, operands, outputs) -> dict:
        first, out = operands[0][0], outputs[0]
        spatial_in, spatial_out = self._spatial(first), self._spatial(out)
        spec: dict = {}
        if spatial_in is not None and module is not None:
            spec = self._classify_module(module, spatial_in, spatial_out)
        elif spatial_in is not None:
            spec = self._classify_function(function, args, kwargs, first, spatial_in, spatial_out)
        if spec:
            return spec
        if (function in _REDUCE_FN and len(operands) == 1) or isinstance(module, _SOFTMAX):
            dims = (
                getattr(module, "dim", None) if module is not None else _reduce_dims(args, kwargs)
            )
            return self._reduce(first, out, dims)
        return self._generic(function, operands, out, spatial_out)

    def _classify_module(self, module, spatial_in, spatial_out) -> dict:
        if isinstance(module, _CONV):
            return self._window(module.kernel_size, module.stride, module.dilation)
        if isinstance(module, _CONV_T):
            spec = self._window(module.kernel_size, module.stride, module.dilation)
            return {**spec, "kind": "transposed"} if spec else {}
        if isinstance(module, _POOL):
            dilation = getattr(module, "dilation", 1)
            return self._window(module.kernel_size, module.stride, dilation)
        if isinstance(module, _ADAPTIVE) and spatial_out is not None:
            return self._adaptive(spatial_in, spatial_out)
        if isinstance(module, nn.Upsample) and spatial_out is not None:
            return self._resample(module.mode, spatial_in, spatial_out)
        if isinstance(module, nn.PixelShuffle) and spatial_out is not None:
            return self._resample("nearest", spatial_in, spatial_out)
        if isinstance(module, nn.PixelUnshuffle):
            factor = module.downscale_factor
            return self._window(factor, factor, 1)
        if isinstance(module, _PAD):
            return {"kind": "identity"}
        return {}

    def _classify_function(self, function, args, kwargs, first, spatial_in, spatial_out) -> dict:
        if function in _CONV_FN:
            b = _bind(args, kwargs, ("input", "weight", "bias", "stride", "padding", "dilation"),
                      {"stride": 1, "dilation": 1})  # fmt: skip
            return self._window(tuple(b["weight"].shape[2:]), b["stride"], b["dilation"])
        if function in _CONV_T_FN:
            names = ("input", "weight", "bias", "stride", "padding", "output_padding", "groups",
                     "dilation")  # fmt: skip
            b = _bind(args, kwargs, names, {"stride": 1, "dilation": 1})
            spec = self._window(tuple(b["weight"].shape[2:]), b["stride"], b["dilation"])
            return {**spec, "kind": "transposed"} if spec else {}
        if function in _MAXPOOL_FN:
            names = ("input", "kernel_size", "stride", "padding", "dilation")
            b = _bind(args, kwargs, names, {"stride": None, "dilation": 1})
            return self._window(b["kernel_size"], b["stride"], b["dilation"])
        if function in _AVGPOOL_FN:
            b = _bind(args, kwargs, ("input", "kernel_size", "stride"), {"stride": None})
            return self._window(b["kernel_size"], b["stride"], 1)
        if function in _LPPOOL_FN:
            names = ("input", "norm_type", "kernel_size", "stride")
            b = _bind(args, kwargs, names, {"stride": None})
            return self._window(b["kernel_size"], b["stride"], 1)
        if function in _ADAPTIVE_FN and spatial_out is not None:
            return self._adaptive(spatial_in, spatial_out)
        if function in _RESAMPLE_FN and spatial_out is not None:
            b = _bind(args, kwargs, ("input", "size", "scale_factor", "mode"), {"mode": "nearest"})
            mode = {"upsample_bilinear": "bilinear", "upsample_nearest": "nearest"}.get(
                function, b["mode"]
            )
            return self._resample(mode, spatial_in, spatial_out)
        if function == "pad":
            return {"kind": "identity"}
        if function == "getitem" and spatial_out is not None:
            return self._slice(args[1] if len(args) > 1 else None, first)
        return {}

    def _adaptive(self, spatial_in, spatial_out) -> dict:
        if all(o == 1 for o in spatial_out):
            return {"kind": "global", "axes": (True,) * self.num_axes}
        windows = [_adaptive_window(i, o) for i, o in zip(spatial_in, spatial_out, strict=True)]
        note = ""
        if any(i % o for i, o in zip(spatial_in, spatial_out, strict=True)):
            note = (
                f"adaptive pooling {spatial_in} -> {spatial_out} has uneven windows; counted as "
                f"its largest window with the mean step"
            )
        return {
            "kind": "window",
            "kernel": tuple(k for k, _ in windows),
            "stride": tuple(s for _, s in windows),
            "dilation": (1,) * self.num_axes,
            "note": note,
        }

    def _resample(self, mode, spatial_in, spatial_out) -> dict:
        taps = _TAPS.get(str(mode))
        if taps is None:  # "area" is adaptive average pooling
            return self._adaptive(spatial_in, spatial_out) if mode == "area" else {}
        return {
            "kind": "resample",
            "kernel": (taps,) * self.num_axes,
            "stride": tuple(Fraction(o, i) for i, o in zip(spatial_in, spatial_out, strict=True)),
        }

    def _slice(self, index, first) -> dict:
        index = index if isinstance(index, tuple) else (index,)
        if any(i is Ellipsis or i is None or not isinstance(i, slice) for i in index):
            return {}
        steps = [(s.step or 1) for s in index[2 : 2 + self.num_axes]]
        steps += [1] * (self.num_axes - len(steps))
        if all(s == 1 for s in steps):
            return {"kind": "identity"}
        return self._window(1, tuple(steps), 1)

    def _reduce(self, first, out, dims) -> dict:
        ndim = first.dim()
        if dims is None:
            return {"kind": "global", "axes": (True,) * self.num_axes}
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        axes = tuple(any(d % ndim == 2 + a for d in dims) for a in range(self.num_axes))
        if not any(axes):
            return {"kind": "merge"} if out.dim() == ndim else {"kind": "identity"}
        if out.dim() != ndim:
            return {"kind": "global", "axes": (True,) * self.num_axes}
        return {"kind": "global", "axes": axes}

    def _aligned(self, tensor: torch.Tensor, spatial_out: tuple[int, ...]) -> bool:
        """Same positions as the output, or broadcast over all of them (e.g. a gate (N, C, 1, 1))."""
        spatial = self._spatial(tensor)
        if spatial is not None:
            return spatial == spatial_out or all(v == 1 for v in spatial)
        return tensor.dim() < 2 or all(v == 1 for v in tensor.shape[-self.num_axes :])

    def _generic(self, function, operands, out, spatial_out) -> dict:
        kind = "mul" if function in _MUL else "merge"
        if spatial_out is not None and function not in _LAYOUT_FN:
            if all(self._aligned(t, spatial_out) for t, _ in operands):
                return {"kind": kind}
        elif all(self._spatial(t) is None for t, _ in operands):
            return {"kind": kind}  # (N, C) and the like: already collapsed, nothing changes
        quiet = function in _SHAPE_FN or function in {"linear", "matmul"}
        note = (
            ""
            if quiet
            else (
                f"{function or 'an operation'} changed the spatial layout "
                f"{tuple(operands[0][0].shape)} -> {tuple(out.shape)}; treated as global"
            )
        )
        return {"kind": "global", "axes": (True,) * self.num_axes, "note": note}


def _reduce_dims(args: tuple, kwargs: dict) -> Any:
    if "dim" in kwargs:
        return kwargs["dim"]
    if len(args) > 1 and isinstance(args[1], (int, tuple, list)):
        return args[1]
    return None
