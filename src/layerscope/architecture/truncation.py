"""Truncation at the border layer (dissertation 11.4): the stump of a model ending in global
average pooling and one linear layer."""

from __future__ import annotations

import copy
import difflib

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from layerscope.architecture.fields import ReceptiveField, example_input_for
from layerscope.errors import ReceptiveFieldError
from layerscope.models._common import init_kaiming_
from layerscope.tracking.layers import LayerInfo
from layerscope.tracking.modes import evaluation_mode

__all__ = ["truncate"]


def _last_linear(model: nn.Module) -> nn.Linear | None:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def truncate(
    model: nn.Module,
    at: str | LayerInfo | ReceptiveField,
    *,
    input_size: int | tuple[int, ...] | None = None,
    in_channels: int | None = None,
    num_classes: int | None = None,
    example_input: torch.Tensor | None = None,
) -> fx.GraphModule:
    """A copy of ``model`` cut before layer ``at``, ending in global average pooling + linear.

    Dissertation 11.4: the border layer and every layer after it are replaced by a classifier of
    global average pooling and one linear (softmax) layer. ``at`` is a layer name, a
    :class:`LayerInfo`, or a fitted :class:`ReceptiveField` (its ``border_min_``). The stump keeps
    the trained weights (a copy); the new linear layer ``head`` is Kaiming-initialised with
    ``num_classes`` outputs (default: those of the model's last linear layer). Needs a model
    torch.fx can trace; Python branches on ``self.training`` are frozen in evaluation mode.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 8, 3),
        ...                       nn.Flatten(), nn.LazyLinear(10))
        >>> small = truncate(model, "2", input_size=8, num_classes=10)
        >>> small(torch.zeros(2, 3, 8, 8)).shape
        torch.Size([2, 10])
        >>> [name for name, _ in small.named_children()]
        ['0', '1', 'head']
    """
    if isinstance(at, ReceptiveField):
        name = _border_name(at)
        input_size = input_size or at.trace_size_
        in_channels = in_channels or at.in_channels
    else:
        name = at.name if isinstance(at, LayerInfo) else at
    graph_module = _traced_copy(model)
    source = _input_of(graph_module, name)
    if example_input is None:
        if input_size is None:
            raise ReceptiveFieldError(
                "truncate needs input_size= (or example_input=) to size the head"
            )
        example_input = example_input_for(model, input_size, in_channels)
    with evaluation_mode(graph_module):
        ShapeProp(graph_module).propagate(example_input)
    shape = source.meta["tensor_meta"].shape
    if num_classes is None:
        last = _last_linear(model)
        if last is None:
            raise ReceptiveFieldError("the model has no linear layer: pass num_classes=")
        num_classes = last.out_features
    _replace_tail(graph_module, source, _head(shape, num_classes))
    graph_module.train(model.training)
    return graph_module


def _border_name(rf: ReceptiveField) -> str:
    if not hasattr(rf, "border_min_"):
        raise ReceptiveFieldError("truncate(at=ReceptiveField) needs a fitted ReceptiveField")
    if rf.border_min_ is None:
        raise ReceptiveFieldError(
            f"no border layer at input size {rf.input_size_}: every layer still sees less "
            f"than the input, nothing to truncate"
        )
    return rf.border_min_.name


def _traced_copy(model: nn.Module) -> fx.GraphModule:
    copied = copy.deepcopy(model)
    try:
        with evaluation_mode(copied):
            return fx.symbolic_trace(copied)
    except Exception as error:
        raise ReceptiveFieldError(
            f"truncate needs a model torch.fx can trace; tracing {type(model).__name__} failed: "
            f"{error}"
        ) from error


def _input_of(graph_module: fx.GraphModule, name: str) -> fx.Node:
    """The graph node feeding the call of module ``name`` (where the head goes)."""
    calls = [n for n in graph_module.graph.nodes if n.op == "call_module"]
    border = next((n for n in calls if n.target == name), None)
    if border is None or not isinstance(border.args[0], fx.Node):
        close = difflib.get_close_matches(name, [str(n.target) for n in calls], n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ReceptiveFieldError(f"no layer {name!r} to truncate at in the model.{hint}")
    return border.args[0]


def _head(shape, num_classes: int) -> nn.Module:
    """Global average pooling (for feature maps) and one Kaiming-initialised linear layer."""
    pool = {3: nn.AdaptiveAvgPool1d, 4: nn.AdaptiveAvgPool2d, 5: nn.AdaptiveAvgPool3d}
    layers = [pool[len(shape)](1), nn.Flatten()] if len(shape) in pool else []
    return init_kaiming_(nn.Sequential(*layers, nn.Linear(int(shape[1]), num_classes)))


def _replace_tail(graph_module: fx.GraphModule, source: fx.Node, head: nn.Module) -> None:
    """Make ``head(source)`` the output; drop everything that no longer feeds it."""
    head_name = "head"
    while hasattr(graph_module, head_name):
        head_name = f"_{head_name}"
    graph_module.add_submodule(head_name, head)
    graph = graph_module.graph
    with graph.inserting_after(source):
        new_output = graph.call_module(head_name, (source,))
    output = next(n for n in graph.nodes if n.op == "output")
    output.args = (new_output,)
    graph.eliminate_dead_code()
    graph_module.delete_all_unused_submodules()
    graph_module.recompile()
