"""Parameter counts and multiply-accumulates per forward pass (dissertation 3.1, 11.4).

A small counter of our own rather than fvcore, ptflops or thop (none is a dependency, and each
has a gap that matters here): fvcore needs ``torch.jit.trace``, which fails on models with
Python control flow; ptflops and thop hook modules and so miss functional calls in a custom
``forward`` (``F.conv2d``, ``x @ w``). This counter runs the model once with a
:class:`~torch.overrides.TorchFunctionMode` that sees every convolution, linear map, matrix
product and attention call, module or functional, and attributes it to the innermost module
running. The pass uses meta tensors where possible (shapes only, no arithmetic).

Convention (as fvcore's default): one multiply-accumulate (MAC) per weight use in
convolutions, transposed convolutions, linear layers, matrix products (``@``, ``mm``, ``bmm``,
``addmm``, ``torch.einsum``), attention and recurrent layers; element-wise work (normalisation,
activations, pooling, additions) is not counted. ``flops`` is ``2 * macs``. Counts are for one
input (batch of 1).

``torch.einsum`` with two operands costs the product of the sizes of all its distinct indices
(``"bij,bjk->bik"``: b i j k). More operands are counted as pairwise contractions from left to
right, torch's own order when the optional ``opt_einsum`` package is absent (with it, torch may
pick a cheaper order); one operand (a sum, trace or transpose) costs nothing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from layerscope.architecture.ops import normalize_name
from layerscope.architecture.tracing import example_input as _example_input
from layerscope.architecture.tracing import shape_run
from layerscope.errors import OptionError, TraceError
from layerscope.tracking.hooks import Hooks
from layerscope.tracking.modes import evaluation_mode

__all__ = ["FlopCount", "ParameterCount", "count_flops", "count_parameters"]


@dataclass(frozen=True)
class ParameterCount:
    """Parameters of a model.

    Attributes:
        total: all parameters (shared ones once).
        trainable: those with ``requires_grad``.
        per_module: parameters each module owns directly (not through children), by module path;
            modules without parameters are left out.
    """

    total: int
    trainable: int
    per_module: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FlopCount:
    """Multiply-accumulates of one forward pass of one input.

    Attributes:
        macs: total multiply-accumulates.
        per_module: MACs by the innermost module that ran them (``""``: the model's own forward).
        input_shape: shape of the input counted, (1, C, *spatial).
    """

    macs: int
    per_module: dict[str, int]
    input_shape: tuple[int, ...]

    @property
    def flops(self) -> int:
        """Floating-point operations, ``2 * macs`` (a multiply and an add each)."""
        return 2 * self.macs


def count_parameters(model: nn.Module) -> ParameterCount:
    """Total, trainable and per-module parameter counts.

    Example:
        >>> count_parameters(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)))
        ParameterCount(total=26, trainable=26, per_module={'0': 16, '2': 10})
    """
    seen: set[int] = set()
    per_module: dict[str, int] = {}
    for name, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for p in own)
        if own:
            per_module[name] = sum(_numel(p, name) for p in own)
    parameters = list(model.parameters())
    return ParameterCount(
        total=sum(_numel(p, "") for p in parameters),
        trainable=sum(_numel(p, "") for p in parameters if p.requires_grad),
        per_module=per_module,
    )


def _numel(parameter: torch.Tensor, name: str) -> int:
    if isinstance(parameter, nn.parameter.UninitializedParameter):
        raise OptionError(
            f"module {name!r} has uninitialised (lazy) parameters; run one forward pass first"
        )
    return parameter.numel()


def _macs(name: str, args: tuple, kwargs: dict, result) -> int:
    """Multiply-accumulates of one call of a torch function (0 for everything not counted)."""
    out = result[0] if isinstance(result, (tuple, list)) and result else result
    if not isinstance(out, torch.Tensor):
        return 0
    if name in ("conv1d", "conv2d", "conv3d"):
        weight = args[1] if len(args) > 1 else kwargs["weight"]
        return out.numel() * weight.shape[1] * math.prod(weight.shape[2:])
    if name.startswith("conv_transpose"):
        weight = args[1] if len(args) > 1 else kwargs["weight"]
        return args[0].numel() * weight.shape[1] * math.prod(weight.shape[2:])
    if name == "linear":
        weight = args[1] if len(args) > 1 else kwargs["weight"]
        return out.numel() * weight.shape[-1]
    if name in ("matmul", "mm", "bmm"):
        return out.numel() * args[0].shape[-1]
    if name in ("addmm", "baddbmm", "addbmm"):
        return out.numel() * args[1].shape[-1]
    if name == "einsum":
        return _einsum_macs(args[0], args[1:])
    if name == "scaled_dot_product_attention":
        query, key, value = args[:3]
        return query.shape[:-1].numel() * key.shape[-2] * (query.shape[-1] + value.shape[-1])
    if name == "multi_head_attention_forward":
        query, key = args[0], args[1]  # (L, N, E), (S, N, E)
        length, batch, embed = query.shape[0], query.shape[1], query.shape[-1]
        source = key.shape[0]
        projections = (length + 2 * source) * batch * embed * embed + length * batch * embed**2
        return projections + 2 * batch * length * source * embed
    return 0


def _einsum_labels(term: str, tensor: torch.Tensor) -> list:
    """The index labels of one einsum term, with ``...`` spelled out as ("...", k) labels
    counted from the right (broadcasting aligns ellipsis dimensions from the right)."""
    if "..." not in term:
        return list(term)
    left, right = term.split("...")
    count = tensor.dim() - len(left) - len(right)
    return [*left, *(("...", k) for k in reversed(range(count))), *right]


def _einsum_macs(equation, operands) -> int:
    """Multiply-accumulates of ``torch.einsum(equation, *operands)`` (see the module docstring)."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])  # torch.einsum("ij,jk", [a, b])
    if not isinstance(equation, str) or len(operands) < 2:
        return 0
    inputs, arrow, output = equation.replace(" ", "").partition("->")
    terms = [_einsum_labels(t, x) for t, x in zip(inputs.split(","), operands, strict=True)]
    sizes: dict = {}
    for labels, tensor in zip(terms, operands, strict=True):
        for label, size in zip(labels, tensor.shape, strict=True):
            sizes[label] = max(sizes.get(label, 1), int(size))  # size-1 dims broadcast
    every = [label for labels in terms for label in labels]
    if arrow:
        kept = {label for label in output if label != "."} | {
            label for label in every if isinstance(label, tuple)
        }
    else:  # implicit output: the indices that appear once, and the ellipsis
        kept = {label for label in every if every.count(label) == 1 or isinstance(label, tuple)}
    macs, current = 0, set(terms[0])
    for position in range(1, len(terms)):
        joined = current | set(terms[position])
        macs += math.prod(sizes[label] for label in joined)
        later = {label for labels in terms[position + 1 :] for label in labels}
        current = joined & (kept | later)
    return macs


def _recurrent_macs(module: nn.RNNBase, args: tuple) -> int:
    data = args[0].data if isinstance(args[0], nn.utils.rnn.PackedSequence) else args[0]
    steps = data.shape[:-1].numel()  # time x batch (or the packed tokens)
    gates = {"LSTM": 4, "GRU": 3}.get(module.mode, 1)
    directions = 2 if module.bidirectional else 1
    hidden = module.hidden_size
    total = 0
    for layer in range(module.num_layers):
        inputs = module.input_size if layer == 0 else hidden * directions
        total += directions * steps * gates * (inputs * hidden + hidden * hidden)
    return total


class _Counter(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = [""]
        self.opaque = 0  # > 0 inside a module counted as a whole (recurrent layers)
        self.macs: dict[str, int] = defaultdict(int)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if not self.opaque:
            macs = _macs(normalize_name(getattr(func, "__name__", "")), args, kwargs, result)
            if macs:
                self.macs[self.stack[-1]] += int(macs)
        return result


@contextmanager
def _module_stack(model: nn.Module, counter: _Counter) -> Iterator[None]:
    def before(module, args, name):
        counter.stack.append(name)
        if isinstance(module, nn.RNNBase):
            counter.opaque += 1

    def after(module, args, output, name):
        counter.stack.pop()
        if isinstance(module, nn.RNNBase):
            counter.opaque -= 1
            if not counter.opaque:
                counter.macs[name] += _recurrent_macs(module, args)

    with Hooks() as hooks:
        for name, module in model.named_modules():
            hooks.forward_pre(module, lambda m, a, name=name: before(m, a, name))
            hooks.forward(module, lambda m, a, o, name=name: after(m, a, o, name))
        yield


def count_flops(
    model: nn.Module,
    input_size: int | tuple[int, ...] | None = None,
    *,
    in_channels: int | None = None,
    example_input: torch.Tensor | None = None,
) -> FlopCount:
    """Multiply-accumulates of one forward pass at ``input_size``, per module and in total.

    ``input_size`` is the spatial size (an int means square); the channels come from
    ``in_channels``, the model's ``in_channels`` attribute or its first convolution. Or pass an
    ``example_input`` of batch size 1. The model runs in evaluation mode; its modes are restored.

    Example:
        >>> conv = nn.Conv2d(3, 8, 3, padding=1)     # 8 x 32 x 32 outputs, 27 MACs each
        >>> count_flops(conv, 32).macs
        221184
        >>> count_flops(conv, 32).flops
        442368
    """
    if example_input is None:
        if input_size is None:
            raise OptionError("count_flops needs input_size= (or example_input=)")
        example_input = _example_input(model, input_size, in_channels)

    def run(x: torch.Tensor) -> dict[str, int]:
        counter = _Counter()
        with _module_stack(model, counter), counter:
            model(x)
        return dict(counter.macs)

    with evaluation_mode(model):
        try:
            macs = shape_run(model, run, example_input)
        except Exception as error:
            raise TraceError(
                f"{type(model).__name__} failed a forward pass on an input of shape "
                f"{tuple(example_input.shape)} ({type(error).__name__}: {error}); pass the "
                f"input_size / in_channels the model expects"
            ) from error
    return FlopCount(
        macs=sum(macs.values()), per_module=macs, input_shape=tuple(example_input.shape)
    )
