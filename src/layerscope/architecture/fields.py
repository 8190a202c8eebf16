"""Receptive fields from the model graph, border layers and truncation (SPEC C7).

Dissertation 4.4: the receptive field of a layer grows as ``r_l = r_{l-1} + (k_l - 1) * prod(s)``
(eq. 9, dilation folded into k: ``k_eff = (k - 1) * d + 1``), starting from ``r_0 = 1``. A layer
reached along several paths (skip connections, branches, concatenation) sees receptive fields in
an interval: ``r_min`` / ``r_max`` are the smallest and largest over all paths from the input
(4.4.1). Both are exact here: every tensor carries, per spatial axis, the smallest and largest r
of its paths for each distinct product of strides ("jump"), so paths with different downsampling
grow correctly afterwards. Global operations (global pooling, flattening, reductions over
positions) make every later output see the whole input (r = inf, shown as "global").

Border layers for an input of size I (9.3, 10.2): ``b_max`` is the first recorded layer from
which on every layer's input has ``r_{l-1,max} > I``; ``b_min`` likewise with ``r_{l-1,min}``
(10.2 defines b_min as the first layer of the sequence leading to the output that fulfils the
condition). For sequential networks they coincide with "the first layer whose input exceeds I"
and with each other. Only layers that still see local input count (the head after global
pooling does not); per axis, the input must exceed the image along every axis (the dissertation's
I = max(H, W) for square kernels). Layers from b_min on are predicted unproductive (10.3).

Upsampling (interpolation, pixel shuffle, transposed convolutions) divides the jump; after a
strided transposed convolution r is an upper bound (window sizes alternate between positions).

Products with a global factor (squeeze-excitation, CBAM) are gates: they do not widen r_max
by default (``gates="ignore"``, 10.1); ``gates="include"`` makes them global.

The dissertation numbers border layers 1-based among recorded layers: "VGG11: border layer 6".
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import torch
from torch import nn

from layerscope.architecture.borders import check_border_rule, find_border, shortcut_layers
from layerscope.architecture.display import field_html, field_repr
from layerscope.architecture.growth import INF, bounds, is_global, propagate
from layerscope.architecture.ops import Op, Trace
from layerscope.architecture.tracing import example_input, trace
from layerscope.errors import ReceptiveFieldError, UnknownNameError
from layerscope.tracking.layers import LayerInfo, describe_layers, select_layers

__all__ = [
    "DownsamplingOption",
    "LayerField",
    "ReceptiveField",
    "example_input_for",
    "receptive_field",
]

_KINDS_SHOWN = {"window", "transposed", "resample", "global"}


def _number(value: Fraction) -> int | float:
    return int(value) if value.denominator == 1 else float(value)


@dataclass(frozen=True)
class LayerField:
    """Receptive fields of one layer (or pooling / resampling operation).

    Sizes are in input pixels; ``inf`` means global. The ``*_axes`` tuples hold one value per
    spatial axis; the scalar properties give the largest over the axes (the dissertation's scalar
    r for square kernels).

    Attributes:
        name: module path (``features.3``), or the functional call (``max_pool2d``).
        type: module class or function name.
        kind: ``window``, ``transposed``, ``resample``, ``global``, ``merge``, ...
        index: position among the recorded layers (:attr:`LayerInfo.index`), None otherwise.
        kernel, stride, dilation: per axis (for ``transposed`` / ``resample`` the stride is the
            upsampling factor).
        input_r_min_axes, input_r_max_axes: receptive field of the layer's input, r_{l-1}.
        r_min_axes, r_max_axes: receptive field of its output, r_l.
        calls: how often the module ran in one forward pass (shared modules: bounds over calls).
    """

    name: str
    type: str
    kind: str
    index: int | None
    kernel: tuple[int, ...]
    stride: tuple[int | float, ...]
    dilation: tuple[int, ...]
    input_r_min_axes: tuple[int | float, ...]
    input_r_max_axes: tuple[int | float, ...]
    r_min_axes: tuple[int | float, ...]
    r_max_axes: tuple[int | float, ...]
    calls: int = 1

    @property
    def r_min(self) -> int | float:
        return max(self.r_min_axes)

    @property
    def r_max(self) -> int | float:
        return max(self.r_max_axes)

    @property
    def input_r_min(self) -> int | float:
        return max(self.input_r_min_axes)

    @property
    def input_r_max(self) -> int | float:
        return max(self.input_r_max_axes)

    @property
    def local(self) -> bool:
        """True while the layer's input still has a finite receptive field on every axis."""
        return all(v != INF for v in self.input_r_min_axes)

    def combine(self, other: LayerField) -> LayerField:
        """Bounds over two calls of the same module."""
        pick = lambda f, a, b: tuple(map(f, a, b))  # noqa: E731
        return LayerField(
            self.name, self.type, self.kind, self.index, self.kernel, self.stride, self.dilation,
            pick(min, self.input_r_min_axes, other.input_r_min_axes),
            pick(max, self.input_r_max_axes, other.input_r_max_axes),
            pick(min, self.r_min_axes, other.r_min_axes),
            pick(max, self.r_max_axes, other.r_max_axes),
            self.calls + other.calls,
        )  # fmt: skip


def _field(op: Op, states, index: int | None) -> LayerField:
    source = op.source if op.source is not None else op.index
    input_low, input_high = bounds(states[source])
    low, high = bounds(states[op.index])
    return LayerField(
        name=op.name,
        type=op.type,
        kind=op.kind,
        index=index,
        kernel=op.kernel,
        stride=tuple(_number(s) for s in op.stride),
        dilation=op.dilation,
        input_r_min_axes=input_low,
        input_r_max_axes=input_high,
        r_min_axes=low,
        r_max_axes=high,
    )


@dataclass(frozen=True)
class DownsamplingOption:
    """What removing one downsampling operation would do to the border layers.

    ``action`` is ``"remove the layer"`` for pooling and ``"set stride to 1"`` for strided
    convolutions; ``border_min`` / ``border_max`` are the border layers' names afterwards (None:
    no border, every layer sees less than the input).
    """

    name: str
    type: str
    stride: tuple[int | float, ...]
    action: str
    border_min: str | None
    border_max: str | None


# -- the estimator -----------------------------------------------------------------------------


def _sizes(value: Any, what: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    values = (value,) if isinstance(value, int) else tuple(value)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ReceptiveFieldError(f"{what} must be a positive int or tuple of ints, got {value!r}")
    return values


class ReceptiveField:
    """Receptive fields of every layer of a model, and its border layers for an input size.

    Follows scikit-learn's estimator conventions: the constructor stores its arguments, ``fit``
    traces the model and sets the attributes ending in ``_``.

    Args:
        input_size: the image size I the border layers are computed for (int: square; or one
            int per spatial axis).
        in_channels: input channels, when neither the model's ``in_channels`` attribute nor
            its first convolution says.
        trace_size: size of the example input the model runs on (default ``input_size``); set it
            for models with a fixed-size head, e.g. ``trace_size=224`` for a VGG whose classifier
            expects 7x7 maps. Receptive fields do not depend on it except through adaptive
            pooling and interpolation.
        include, exclude: which layers count as recorded layers (see
            :func:`~layerscope.tracking.layers.select_layers`; default: convolutions, linear,
            recurrent and attention layers, as the tracker records them).
        gates: ``"ignore"`` (default) or ``"include"``: whether element-wise products with a
            global factor (attention gates) widen r_max.
        tracer: ``"auto"`` (torch.fx, falling back to hooks), ``"fx"`` or ``"hooks"``.
        border_rule: ``"input"`` (default: each layer's input exceeds I, 10.2; figures 52, 53)
            or ``"output"`` (the layer's own r exceeds I, 1x1 shortcut convolutions not counted:
            figure 60's ResNet labels); see :mod:`layerscope.architecture.borders`.

    Attributes:
        layers_: list[LayerInfo], the recorded layers in forward order.
        fields_: list[LayerField], one per recorded layer (same order).
        operations_: list[LayerField], every call that changes receptive fields (convolutions,
            pooling, resampling, global operations) and every recorded layer, in forward order.
        input_field_: LayerField of the input (r = 1).
        border_min_, border_max_: LayerInfo of b_min / b_max, or None.
        unproductive_: list[LayerInfo], the recorded layers from ``border_min_`` on.
        counted_: list[LayerInfo], the layers the border rule numbers (``layers_`` without the
            shortcut convolutions for ``"output"``); :meth:`border_number` is a border's label.
        input_size_: tuple of ints, I per spatial axis.
        trace_size_: tuple of ints, the spatial size the model ran at (``trace_size``, or the
            example input's).
        tracer_: ``"fx"`` or ``"hooks"``; ``notes_``: list[str], approximations and fallbacks.

    Example:
        >>> model = nn.Sequential(
        ...     nn.Conv2d(1, 4, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1),
        ...     nn.Conv2d(4, 4, 3, padding=1), nn.Flatten(), nn.Linear(36, 2))
        >>> rf = ReceptiveField(input_size=6).fit(model)
        >>> [(f.name, f.r_max) for f in rf.fields_]
        [('0', 3), ('2', 8), ('3', 12), ('5', inf)]
        >>> rf.border_min_.name, rf.border_min_.index
        ('3', 2)
    """

    def __init__(
        self,
        input_size: int | tuple[int, ...] = 32,
        *,
        in_channels: int | None = None,
        trace_size: int | tuple[int, ...] | None = None,
        include: Iterable[str | type] | None = None,
        exclude: Iterable[str | type] | None = None,
        gates: str = "ignore",
        tracer: str = "auto",
        border_rule: str = "input",
    ) -> None:
        self.input_size = input_size
        self.in_channels = in_channels
        self.trace_size = trace_size
        self.include = include
        self.exclude = exclude
        self.gates = gates
        self.tracer = tracer
        self.border_rule = border_rule

    # -- fitting

    def fit(self, model: nn.Module, example_input: torch.Tensor | None = None) -> ReceptiveField:
        """Trace ``model`` (on ``example_input`` if given) and compute every receptive field."""
        if self.gates not in ("ignore", "include"):
            raise ReceptiveFieldError(f"gates must be 'ignore' or 'include', got {self.gates!r}")
        check_border_rule(self.border_rule)
        sizes = _sizes(self.input_size, "input_size")
        if example_input is None:
            example_input = example_input_for(model, self.trace_size or sizes, self.in_channels)
        if len(sizes) == 1:
            sizes = sizes * (example_input.dim() - 2)
        if len(sizes) != example_input.dim() - 2:
            raise ReceptiveFieldError(
                f"input_size {self.input_size!r} has {len(sizes)} axes but the example input "
                f"{tuple(example_input.shape)} has {example_input.dim() - 2} spatial axes"
            )
        selected = select_layers(model, self.include, self.exclude)
        traced = trace(model, example_input, tracer=self.tracer, recorded=[m for _, m in selected])
        self._trace: Trace = traced
        self._model_selection = selected
        self.input_size_ = sizes
        self.tracer_ = traced.tracer
        notes = (
            [f"torch.fx was not used: {traced.fallback_reason}"] if traced.fallback_reason else []
        )
        notes += list(dict.fromkeys(op.note for op in traced.ops if op.note))
        self.trace_size_ = tuple(int(v) for v in example_input.shape[2:])
        if self.trace_size_ != sizes:
            notes.append(
                f"traced at {self.trace_size_}: adaptive pooling and interpolation are as at "
                f"that size"
            )
        self._fill(propagate(traced.ops, traced.num_axes, self.gates))
        missing = [name for name, _ in selected if name not in self._by_name]
        if missing:
            notes.append(f"recorded layers that did not run in the forward pass: {missing}")
        self.notes_ = notes
        return self

    def _fill(self, states) -> None:
        ops = self._trace.ops
        order: dict[str, int] = {}
        for op in ops:
            if op.module and op.name not in order:
                order[op.name] = len(order)
        chosen = {name for name, _ in self._model_selection}
        ran = sorted((n for n in chosen if n in order), key=order.__getitem__)
        modules = dict(self._model_selection)
        self.layers_ = describe_layers([(name, modules[name]) for name in ran])
        self.input_field_ = next(_field(op, states, None) for op in ops if op.kind == "input")
        self._by_name = self._fields(ops, states, every_operation=True)
        self.operations_ = list(self._by_name.values())
        self.fields_ = [self._by_name[info.name] for info in self.layers_]
        skipped = shortcut_layers(ops, [x.name for x in self.layers_])
        self._skipped = skipped if self.border_rule == "output" else set()
        self.counted_ = [x for x in self.layers_ if x.name not in self._skipped]
        self.border_min_, self.border_max_ = self._borders(self.fields_)
        start = self.border_min_.index if self.border_min_ is not None else len(self.layers_)
        self.unproductive_ = self.layers_[start:]

    def _fields(self, ops, states, *, every_operation: bool) -> dict[str, LayerField]:
        """The :class:`LayerField` of every recorded layer (and, with ``every_operation``, of
        every operation that changes receptive fields), by name in forward order; the calls
        of a shared module are combined into bounds over them."""
        index = {info.name: info.index for info in self.layers_}
        by_name: dict[str, LayerField] = {}
        for op in ops:
            if op.kind == "input":
                continue
            recorded = op.module and op.name in index
            shown = (
                every_operation
                and op.kind in _KINDS_SHOWN
                and not (op.kind == "global" and is_global(states[op.source]))
            )
            if not (recorded or shown):
                continue
            field = _field(op, states, index.get(op.name) if recorded else None)
            if op.module and field.name in by_name:
                field = by_name[field.name].combine(field)
            by_name[field.name] = field
        return by_name

    def _borders(self, fields: Sequence[LayerField]) -> tuple[LayerInfo | None, LayerInfo | None]:
        counted = [f for f in fields if f.name not in self._skipped]
        found = [
            find_border(counted, self.input_size_, self.border_rule, a) for a in ("min", "max")
        ]
        return tuple(self.layers_[f.index] if f is not None else None for f in found)

    def border_number(self, which: str = "min") -> int | None:
        """The dissertation's 1-based label of ``border_min_`` (``which="min"``) or
        ``border_max_``: its position among :attr:`counted_` (None: no border)."""
        if which not in ("min", "max"):
            raise ReceptiveFieldError(f"which must be 'min' or 'max', got {which!r}")
        border = self.border_min_ if which == "min" else self.border_max_
        return None if border is None else [x.name for x in self.counted_].index(border.name) + 1

    # -- reading results

    __repr__ = field_repr
    _repr_html_ = field_html

    def __getitem__(self, name: str) -> LayerField:
        """The :class:`LayerField` of a recorded layer or operation, by name."""
        try:
            return self._by_name[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._by_name), n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UnknownNameError(f"no layer or operation named {name!r}.{hint}") from None

    def to_records(self, *, all_operations: bool = False) -> list[dict]:
        """One dict per layer (or per operation): the rows of the CLI table and of ``--json``."""
        marks = {}
        for label, border in (("b_min", self.border_min_), ("b_max", self.border_max_)):
            if border is not None:
                marks.setdefault(border.name, []).append(label)
        unproductive = {info.name for info in self.unproductive_}
        rows = []
        for field in self.operations_ if all_operations else self.fields_:
            rows.append({
                "index": field.index,
                "name": field.name,
                "type": field.type,
                "kernel": list(field.kernel),
                "stride": list(field.stride),
                "dilation": list(field.dilation),
                "input_r_min": field.input_r_min,
                "input_r_max": field.input_r_max,
                "r_min": field.r_min,
                "r_max": field.r_max,
                "border": ",".join(marks.get(field.name, [])),
                "unproductive": field.name in unproductive,
            })  # fmt: skip
        return rows

    def to_frame(self, *, all_operations: bool = False):
        """The records as a pandas DataFrame (``inf`` for global receptive fields)."""
        import pandas as pd

        return pd.DataFrame(self.to_records(all_operations=all_operations))

    # -- what if

    def downsampling_options(self) -> list[DownsamplingOption]:
        """For every pooling or strided convolution before ``border_min_``: the borders after
        removing it (pooling) or setting its stride to 1 (convolution). Dissertation 11.4:
        changing the receptive field's growth is the alternative to truncation."""
        if self.border_min_ is None:
            return []
        ops = self._trace.ops
        border_op = next(op.index for op in ops if op.module and op.name == self.border_min_.name)
        options = []
        for op in ops[:border_op]:
            if not _downsamples(op):
                continue
            border_min, border_max = self._borders_without([op.index])
            options.append(
                DownsamplingOption(
                    op.name, op.type, tuple(_number(s) for s in op.stride),
                    "remove the layer" if _pools(op) else "set stride to 1",
                    border_min.name if border_min else None,
                    border_max.name if border_max else None,
                )
            )  # fmt: skip
        return options

    def strides_to_remove(self) -> tuple[str, ...] | None:
        """The downsampling operations to remove so that no border layer remains.

        Greedy: repeatedly removes the pooling layer (or sets the stride of the convolution)
        that moves ``border_min_`` furthest back, preferring later ones (they cost fewer extra
        FLOPs). Returns their names in forward order, ``()`` when there is no border, and None
        when removing every downsampling operation is still not enough.

        Example:
            >>> model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.Conv2d(2, 2, 3),
            ...                       nn.MaxPool2d(2), nn.Conv2d(2, 2, 3), nn.Conv2d(2, 2, 3))
            >>> receptive_field(model, 10, trace_size=32).strides_to_remove()
            ('1',)
        """
        if self.border_min_ is None:
            return ()
        ops = self._trace.ops
        candidates = [op.index for op in ops if _downsamples(op)]
        end = len(self.layers_)

        def reach(removed: list[int]) -> int:
            border = self._borders_without(removed)[0]
            return end if border is None else border.index

        chosen: list[int] = []
        while reach(chosen) < end:
            remaining = [c for c in candidates if c not in chosen]
            if not remaining:
                return None
            chosen.append(max(remaining, key=lambda c: (reach([*chosen, c]), c)))
        return tuple(ops[i].name for i in sorted(chosen))

    def _borders_without(self, removed: Sequence[int]):
        """The borders with the downsampling operations ``removed`` (trace indices) undone:
        pooling removed, a convolution's stride set to 1."""
        ops = list(self._trace.ops)
        for index in removed:
            op = ops[index]
            n = len(op.kernel)
            unit = {"stride": (Fraction(1),) * n}
            if _pools(op):
                unit.update(kernel=(1,) * n)
            ops[index] = replace(op, **unit)
        states = propagate(ops, self._trace.num_axes, self.gates)
        fields = self._fields(ops, states, every_operation=False)
        return self._borders([fields[info.name] for info in self.layers_])


def _downsamples(op: Op) -> bool:
    """A pooling or convolution window with a stride other than 1 (a candidate to undo)."""
    return op.kind == "window" and any(s != 1 for s in op.stride)


def _pools(op: Op) -> bool:
    """Pooling (removed as a whole when undone), as opposed to a strided convolution."""
    return "pool" in op.type.lower()


def example_input_for(
    model: nn.Module, size: tuple[int, ...] | int, in_channels: int | None
) -> torch.Tensor:
    """The zero example input for ``size`` (validated as ``trace_size``)."""
    sizes = _sizes(size, "trace_size")
    return example_input(model, sizes[0] if len(sizes) == 1 else sizes, in_channels)


def receptive_field(
    model: nn.Module,
    input_size: int | tuple[int, ...] = 32,
    *,
    example_input: torch.Tensor | None = None,
    **options: Any,
) -> ReceptiveField:
    """``ReceptiveField(input_size, **options).fit(model, example_input)``.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3, dilation=1), nn.Conv2d(8, 8, 3, dilation=2),
        ...                       nn.Conv2d(8, 8, 3, dilation=4))
        >>> [f.r_max for f in receptive_field(model, 16).fields_]
        [3, 7, 15]
    """
    return ReceptiveField(input_size, **options).fit(model, example_input)
