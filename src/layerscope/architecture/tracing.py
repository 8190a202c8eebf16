"""Tracing a model into the operations that shape receptive fields.

Two front ends record one list of :class:`~layerscope.architecture.ops.Op` (what each operation
does to a receptive field):

- ``"fx"``: ``torch.fx`` symbolic tracing, then an :class:`torch.fx.Interpreter` runs the graph on
  an example input so that every node has real shapes (adaptive pooling and interpolation need
  them). Module calls keep their module path as name.
- ``"hooks"``: where symbolic tracing fails (data-dependent control flow, unsupported Python),
  the model runs once with forward hooks on the modules that shape receptive fields and a
  :class:`~torch.overrides.TorchFunctionMode` that sees every functional call in between
  (``x + y``, ``F.max_pool2d``, ``torch.cat``, ...). Tensors are followed by identity.

Both run the model in evaluation mode without gradients and restore every module's mode
(:func:`layerscope.tracking.modes.evaluation_mode`, which every analysis that runs a model
shares). The receptive-field arithmetic lives in :mod:`layerscope.architecture.growth`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import fx, nn
from torch.overrides import TorchFunctionMode

from layerscope.architecture.ops import (
    CONVOLUTIONS,
    HANDLED_MODULES,
    IGNORED_FUNCTIONS,
    Op,
    OpRecorder,
    Trace,
    normalize_name,
)
from layerscope.errors import OptionError, TraceError
from layerscope.tracking.hooks import Hooks
from layerscope.tracking.modes import evaluation_mode

__all__ = ["example_input", "shape_run", "trace"]


class _Interpreter(fx.Interpreter):
    def __init__(self, module: fx.GraphModule, recorder: OpRecorder) -> None:
        super().__init__(module)
        self.recorder = recorder
        self._seen_input = False

    def run_node(self, node: fx.Node) -> Any:
        result = super().run_node(node)
        if node.op == "placeholder" and not self._seen_input:
            self._seen_input = True
            self.recorder.add_input(result)
        elif node.op in ("call_module", "call_function", "call_method"):
            args, kwargs = self.fetch_args_kwargs_from_env(node)
            module = self.fetch_attr(node.target) if node.op == "call_module" else None
            if module is not None:
                function = type(module).__name__.lower()
            elif node.op == "call_function":
                function = normalize_name(getattr(node.target, "__name__", str(node.target)))
            else:
                function = normalize_name(str(node.target))
            self.recorder.record(
                name=node.target if module is not None else node.name,
                type_name=type(module).__name__ if module is not None else function,
                module=module,
                function=function,
                args=args,
                kwargs=kwargs,
                result=result,
            )
        return result


class _FunctionMode(TorchFunctionMode):
    def __init__(self, recorder: OpRecorder) -> None:
        super().__init__()
        self.recorder = recorder
        self.depth = 0  # > 0 inside a module recorded as a whole

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if self.depth == 0 and name not in IGNORED_FUNCTIONS:
            function = normalize_name(name)
            self.recorder.record(
                name=self.recorder.fresh_name(function),
                type_name=function,
                module=None,
                function=function,
                args=tuple(args),
                kwargs=kwargs,
                result=result,
            )
        return result


def _interpret(graph_module: fx.GraphModule, x: torch.Tensor, num_axes: int) -> list[Op]:
    recorder = OpRecorder(num_axes)
    _Interpreter(graph_module, recorder).run(x)
    return recorder.ops


class _Runner(nn.Module):
    """Runs ``function(x)`` with ``model`` as submodule, so torch.func can swap its tensors."""

    def __init__(self, model: nn.Module, function) -> None:
        super().__init__()
        self.model = model
        self.function = function

    def forward(self, x):
        return self.function(x)


#: Inputs with at most this many positions (256 x 256) run on real tensors: one forward pass of
#: a ResNet-50 at 224 px takes about half a second on one CPU thread, while the first meta-tensor
#: pass of a process loads torch's Python meta kernels (2-3 s, once). Larger inputs run on meta
#: tensors, which cost neither arithmetic nor activation memory.
REAL_TENSOR_POSITIONS = 256 * 256


def shape_run(model: nn.Module, function, x: torch.Tensor) -> Any:
    """``function(x)`` where only shapes matter.

    Large inputs run on meta tensors (shapes only, no arithmetic or activation memory), falling
    back to the real tensors
    when an operation has no meta kernel, the model branches on values, or it has uninitialised
    (lazy) parameters. Small inputs run on the real tensors directly.
    """
    if x[0, 0].numel() > REAL_TENSOR_POSITIONS:
        try:
            state = {
                f"model.{name}": torch.empty_like(tensor, device="meta")
                for name, tensor in (*model.named_parameters(), *model.named_buffers())
            }
            return torch.func.functional_call(
                _Runner(model, function), state, (torch.empty_like(x, device="meta"),)
            )
        except Exception:
            pass
    return function(x)


def _trace_hooks(
    model: nn.Module, x: torch.Tensor, num_axes: int, recorded: Iterable[nn.Module]
) -> list[Op]:
    recorder = OpRecorder(num_axes)
    mode = _FunctionMode(recorder)
    recorded = set(recorded)

    def before(module, args):
        mode.depth += 1

    def after(module, args, output, name):
        mode.depth -= 1
        if mode.depth == 0:
            recorder.record(
                name=name,
                type_name=type(module).__name__,
                module=module,
                function=type(module).__name__.lower(),
                args=tuple(args),
                kwargs={},
                result=output,
            )

    def after_container(module, args, output, name):
        # A recorded block: its insides were traced; name the tensor it returns.
        if mode.depth == 0:
            recorder.alias(name, type(module).__name__, output, args[0] if args else None)

    with Hooks() as hooks:
        for name, module in model.named_modules():
            if not name:
                continue
            if module in recorded and any(True for _ in module.children()):
                hooks.forward(module, lambda m, a, o, name=name: after_container(m, a, o, name))
            elif isinstance(module, HANDLED_MODULES) or module in recorded:
                hooks.forward_pre(module, before)
                hooks.forward(module, lambda m, a, o, name=name: after(m, a, o, name))
        recorder.add_input(x)
        with mode:
            model(x)
    return recorder.ops


def trace(
    model: nn.Module,
    x: torch.Tensor,
    *,
    tracer: str = "auto",
    recorded: Iterable[nn.Module] = (),
) -> Trace:
    """Record the operations of ``model`` on the example input ``x`` (N, C, *spatial).

    ``tracer``: ``"fx"``, ``"hooks"`` or ``"auto"`` (fx, falling back to hooks when symbolic
    tracing fails). ``recorded`` are modules whose calls must appear by name even when they are
    containers (the hook tracer records them as a whole).

    Example:
        >>> model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.Flatten())
        >>> traced = trace(model, torch.zeros(1, 1, 8, 8))
        >>> traced.tracer, [(op.name, op.kind) for op in traced.ops]
        ('fx', [('input', 'input'), ('0', 'window'), ('1', 'window'), ('2', 'global')])
        >>> traced.ops[1].kernel, traced.ops[2].stride
        ((3, 3), (Fraction(2, 1), Fraction(2, 1)))
    """
    if tracer not in ("auto", "fx", "hooks"):
        raise OptionError(f"tracer must be 'auto', 'fx' or 'hooks', got {tracer!r}")
    num_axes = x.dim() - 2
    if num_axes < 1:
        raise TraceError(f"the example input needs (N, C, *spatial) dims, got {tuple(x.shape)}")
    containers = [m for m in recorded if any(True for _ in m.children())]
    reason = ""
    with evaluation_mode(model):
        if tracer != "hooks" and not containers:
            try:
                graph_module = fx.symbolic_trace(model)
            except Exception as error:  # symbolic tracing fails in many model-specific ways
                if tracer == "fx":
                    raise TraceError(f"torch.fx could not trace the model: {error}") from error
                reason = f"torch.fx failed ({type(error).__name__}: {error})"
            else:
                try:
                    ops = shape_run(model, lambda t: _interpret(graph_module, t, num_axes), x)
                    return Trace(tuple(ops), num_axes, "fx", "")
                except Exception as error:
                    if tracer == "fx":
                        raise TraceError(f"the fx graph failed to run: {error}") from error
                    reason = f"the fx graph failed to run ({type(error).__name__}: {error})"
        elif containers:
            reason = "recorded container modules need the hook tracer"
        try:
            ops = shape_run(model, lambda t: _trace_hooks(model, t, num_axes, recorded), x)
        except Exception as error:
            raise TraceError(
                f"{type(model).__name__} failed a forward pass on an input of shape "
                f"{tuple(x.shape)} ({type(error).__name__}: {error}). If the model needs a fixed "
                f"input size or channel count, pass trace_size= / in_channels= (or example_input=)"
            ) from error
    return Trace(tuple(ops), num_axes, "hooks", reason)


def _first_conv(model: nn.Module) -> nn.Module | None:
    for module in model.modules():
        if isinstance(module, CONVOLUTIONS):
            return module
    return None


def example_input(
    model: nn.Module, input_size: int | tuple[int, ...], in_channels: int | None = None
) -> torch.Tensor:
    """A (1, C, *spatial) zero tensor for ``model`` on the parameters' device and dtype.

    ``input_size`` is the spatial size (an int repeats over the axes of the first convolution,
    or two axes); C comes from ``in_channels``, the model's ``in_channels`` attribute or its first
    convolution.

    Example:
        >>> example_input(nn.Conv1d(4, 8, 3), 16).shape
        torch.Size([1, 4, 16])
    """
    conv = _first_conv(model)
    if isinstance(input_size, int):
        axes = len(conv.kernel_size) if conv is not None else 2
        sizes: tuple[int, ...] = (input_size,) * axes
    else:
        sizes = tuple(int(s) for s in input_size)
    if not sizes or any(s < 1 for s in sizes):
        raise OptionError(f"input_size must be positive spatial size(s), got {input_size!r}")
    channels = in_channels or getattr(model, "in_channels", None)
    if not isinstance(channels, int) and conv is not None:
        channels = conv.in_channels
    if not isinstance(channels, int):
        raise OptionError(
            f"cannot tell how many input channels {type(model).__name__} takes (no convolution "
            f"and no in_channels attribute); pass in_channels= or example_input="
        )
    parameter = next(model.parameters(), None)
    options = (
        {"device": parameter.device, "dtype": parameter.dtype} if parameter is not None else {}
    )
    return torch.zeros(1, channels, *sizes, **options)
