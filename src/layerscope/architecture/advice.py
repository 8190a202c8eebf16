"""Tail patterns, width advice from average saturation, and architecture advice in words.

- Tail pattern (dissertation 8.5): "a subsequence of at least 3 consecutive layers in a
  feed-forward neural architecture with an average saturation that is at least 50% lower relative
  to the average saturation of the rest of the network". :func:`find_tail` returns the most
  pronounced such run (see its docstring for how overlapping candidates are resolved).
- Width (11.3): an average saturation s_mu of about 20-30% performed best; below it the network
  is wider than the data needs (same accuracy at a higher cost), above it too narrow (accuracy
  drops). s_mu averages the saturation of the layers with trainable parameters (8.4).
- :func:`advise` combines these with the receptive-field prediction (9.3, 10.3) and the two
  remedies of 11.4: truncating at the border layer (parameters and FLOPs before and after) or
  removing downsampling so the receptive field grows more slowly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from layerscope.architecture.complexity import count_flops, count_parameters
from layerscope.architecture.fields import DownsamplingOption, ReceptiveField, receptive_field
from layerscope.architecture.truncation import truncate
from layerscope.errors import OptionError, ReceptiveFieldError

__all__ = [
    "SEED_SWEET_SPOT",
    "SWEET_SPOT",
    "Advice",
    "TailPattern",
    "WidthAdvice",
    "advise",
    "find_tail",
    "width_advice",
]

#: The s_mu interval that delivered the best performance in dissertation 11.3: the default.
SWEET_SPOT = (0.2, 0.3)
#: Richter et al. 2021 (seed 000, section 3) name a wider sweet spot, 0.2-0.4, for VGG on Cifar10;
#: ``width_advice(s_mu, low=SEED_SWEET_SPOT[0], high=SEED_SWEET_SPOT[1])`` uses it.
SEED_SWEET_SPOT = (0.2, 0.4)


@dataclass(frozen=True)
class TailPattern:
    """A run of low-saturated layers ``[start, stop)`` in forward order.

    Attributes:
        start, stop: positions in the saturation sequence (``stop`` exclusive).
        layers: the layer names of the run (positions as strings when none were given).
        mean_tail: mean saturation of the run; mean_rest: of all other layers.
        drop: ``1 - mean_tail / mean_rest`` (at least the detector's ``drop``).
    """

    start: int
    stop: int
    layers: tuple[str, ...]
    mean_tail: float
    mean_rest: float
    drop: float

    def __len__(self) -> int:
        return self.stop - self.start


def _sequence(saturation: Sequence[float] | Mapping[str, float]) -> tuple[list[str], list[float]]:
    if isinstance(saturation, Mapping) or hasattr(saturation, "items"):
        names, values = zip(*saturation.items(), strict=True) if len(saturation) else ((), ())
        names = [str(n) for n in names]
    else:
        values = list(saturation)
        names = [str(i) for i in range(len(values))]
    values = [float(v) for v in values]
    bad = [(n, v) for n, v in zip(names, values, strict=True) if not math.isfinite(v) or v < 0]
    if bad:
        raise OptionError(
            f"saturation values must be finite and >= 0; got {bad[:3]}. Drop layers without a "
            f"value (e.g. dead layers) before looking for a tail"
        )
    return names, values


def find_tail(
    saturation: Sequence[float] | Mapping[str, float],
    *,
    min_length: int = 3,
    drop: float = 0.5,
) -> TailPattern | None:
    """The tail pattern in a saturation sequence (forward order), or None.

    A run qualifies when it has at least ``min_length`` layers and its mean is at least ``drop``
    (a fraction) below the mean of the remaining layers. Of the qualifying runs the one with the
    lowest ratio mean_tail / mean_rest is taken, then extended over neighbouring layers that are
    themselves ``drop`` below the mean of the rest, so that a tail whose last layers are the
    lowest is reported whole. (Taking simply the longest qualifying run would swallow productive
    layers: adding one average layer to a strong tail keeps its mean low.)

    Example:
        >>> tail = find_tail({"c1": .5, "c2": .6, "c3": .55, "c4": .5, "c5": .1, "c6": .05,
        ...                   "c7": .04, "c8": .05})
        >>> tail.layers, round(tail.drop, 2)
        (('c5', 'c6', 'c7', 'c8'), 0.89)
        >>> find_tail([0.3, 0.25, 0.3, 0.28, 0.3]) is None
        True
    """
    if not isinstance(min_length, int) or min_length < 1:
        raise OptionError(f"min_length must be a positive int, got {min_length!r}")
    if not 0 < drop < 1:
        raise OptionError(f"drop must be a fraction in (0, 1), got {drop!r}")
    names, values = _sequence(saturation)
    n = len(values)
    prefix = [0.0]
    for value in values:
        prefix.append(prefix[-1] + value)
    total = prefix[-1]

    def stats(start: int, stop: int) -> tuple[float, float] | None:
        rest = n - (stop - start)
        if rest == 0:
            return None
        mean_run = (prefix[stop] - prefix[start]) / (stop - start)
        mean_rest = (total - prefix[stop] + prefix[start]) / rest
        return (mean_run, mean_rest) if mean_rest > 0 else None

    best: tuple[float, int, int] | None = None
    for start in range(n):
        for stop in range(start + min_length, n + 1):
            means = stats(start, stop)
            if means is None or means[0] > (1 - drop) * means[1]:
                continue
            key = (means[0] / means[1], -(stop - start), -start)
            if best is None or key < (best[0], -(best[2] - best[1]), -best[1]):
                best = (means[0] / means[1], start, stop)
    if best is None:
        return None
    _, start, stop = best
    grew = True
    while grew:
        grew = False
        for new_start, new_stop, neighbour in (
            (start - 1, stop, start - 1),
            (start, stop + 1, stop),
        ):
            if neighbour < 0 or neighbour >= n:
                continue
            means = stats(new_start, new_stop)
            if means is None or means[0] > (1 - drop) * means[1]:
                continue
            if values[neighbour] <= (1 - drop) * means[1]:
                start, stop, grew = new_start, new_stop, True
    mean_tail, mean_rest = stats(start, stop)
    return TailPattern(
        start, stop, tuple(names[start:stop]), mean_tail, mean_rest, 1 - mean_tail / mean_rest
    )


@dataclass(frozen=True)
class WidthAdvice:
    """Where the average saturation s_mu lies relative to the sweet spot ``(low, high)``.

    ``verdict`` is ``"too wide"`` (s_mu < low), ``"too narrow"`` (s_mu > high) or ``"in range"``.
    """

    s_mu: float
    low: float
    high: float
    verdict: str
    message: str


def width_advice(
    s_mu: float | Sequence[float] | Mapping[str, float],
    *,
    low: float = SWEET_SPOT[0],
    high: float = SWEET_SPOT[1],
) -> WidthAdvice:
    """Width advice from the average saturation (dissertation 11.3; sweet spot 20-30%).

    ``s_mu`` is the average saturation, or the per-layer saturations of the layers with trainable
    parameters (their mean is taken, 8.4).

    Example:
        >>> width_advice(0.08).verdict
        'too wide'
        >>> width_advice([0.3, 0.5, 0.4]).verdict
        'too narrow'
    """
    if not isinstance(s_mu, (int, float)):
        _, values = _sequence(s_mu)
        if not values:
            raise OptionError("width_advice needs at least one saturation value")
        s_mu = sum(values) / len(values)
    if not 0 <= low < high <= 1:
        raise OptionError(f"the sweet spot must satisfy 0 <= low < high <= 1, got ({low}, {high})")
    s_mu = float(s_mu)
    spot = f"the {low:.0%}-{high:.0%} sweet spot"
    if s_mu < low:
        verdict = "too wide"
        message = (
            f"average saturation {s_mu:.1%} is below {spot}: the network is wider than the data "
            f"needs. Try half the width (a quarter of the convolution FLOPs) and check that "
            f"accuracy holds (dissertation 11.3)."
        )
    elif s_mu > high:
        verdict = "too narrow"
        message = (
            f"average saturation {s_mu:.1%} is above {spot}: the layers are too narrow for the "
            f"data and accuracy suffers. Try double the width (dissertation 11.3)."
        )
    else:
        verdict = "in range"
        message = f"average saturation {s_mu:.1%} is within {spot}: the width fits the data."
    return WidthAdvice(s_mu, low, high, verdict, message)


@dataclass(frozen=True)
class Advice:
    """What the receptive field (and, if given, measured saturation) says about a model.

    Attributes:
        input_size: the I the borders were computed for.
        border_min, border_max: names of b_min / b_max (None: no border).
        unproductive: recorded layers predicted unproductive (from b_min on).
        parameters, macs: of the model; ``*_truncated`` of the model truncated at b_min (None
            without a border, or when the model cannot be truncated: see ``notes``).
        macs_size: the spatial size the MACs are counted at: the size the model was traced
            at (``trace_size``), which may differ from ``input_size`` (``flops`` = 2 x MACs).
        downsampling: what removing each pooling / stride before b_min would do.
        strides_to_remove: greedy set of downsampling operations whose removal leaves no
            border (None: not achievable by removing downsampling alone).
        tail: the tail pattern in the measured saturation; width: the width advice.
        notes: what could not be computed, and why.
    """

    input_size: tuple[int, ...]
    border_min: str | None
    border_max: str | None
    unproductive: tuple[str, ...]
    parameters: int
    macs: int
    parameters_truncated: int | None
    macs_truncated: int | None
    macs_size: tuple[int, ...]
    downsampling: tuple[DownsamplingOption, ...]
    strides_to_remove: tuple[str, ...] | None
    tail: TailPattern | None = None
    width: WidthAdvice | None = None
    notes: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """The advice as sentences for a person."""
        size = "x".join(map(str, self.input_size))
        counted = "x".join(map(str, self.macs_size))
        if self.border_min is None:
            lines = [f"At {size} px every layer still sees less than the whole input: no border "
                     f"layer, no layer is predicted unproductive."]  # fmt: skip
        else:
            lines = [
                f"At {size} px the receptive field outgrows the input from layer "
                f"{self.border_min} on (b_min; b_max = {self.border_max}): "
                f"{len(self.unproductive)} layer(s) are predicted unproductive "
                f"(dissertation 9.3, 10.3).",
            ]
            if self.parameters_truncated is not None and self.macs_truncated is not None:
                lines.append(
                    f"Truncating at {self.border_min} and ending in global average pooling + "
                    f"one linear layer: {self.parameters:,} -> {self.parameters_truncated:,} "
                    f"parameters, {self.macs / 1e6:,.1f} -> {self.macs_truncated / 1e6:,.1f} "
                    f"MMACs per {counted} px image (dissertation 11.4)."
                )
            if self.strides_to_remove:
                lines.append(
                    f"Or keep every layer productive by removing the downsampling of "
                    f"{', '.join(self.strides_to_remove)} (more FLOPs: larger feature maps)."
                )
            elif self.strides_to_remove is None:
                lines.append("Removing downsampling alone cannot keep the receptive field below I.")
        if self.tail is not None:
            lines.append(
                f"Measured tail pattern: {len(self.tail)} layers ({self.tail.layers[0]} .. "
                f"{self.tail.layers[-1]}) at {self.tail.drop:.0%} below the rest (8.5)."
            )
        if self.width is not None:
            lines.append(self.width.message)
        lines += [f"Note: {note}" for note in self.notes]
        return lines

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        """The advice as a list, in a notebook."""
        import html

        return "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in self.lines()) + "</ul>"


def advise(
    model: nn.Module,
    input_size: int | tuple[int, ...] = 32,
    *,
    saturation: Sequence[float] | Mapping[str, float] | None = None,
    rf: ReceptiveField | None = None,
    **options: Any,
) -> Advice:
    """Receptive-field advice for ``model`` at ``input_size``, plus tail and width advice when
    measured per-layer ``saturation`` (forward order, or by layer name) is given.

    ``options`` go to :class:`ReceptiveField` (``trace_size``, ``in_channels``, ...); a fitted
    ``rf`` is used as is.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3),
        ...                       nn.Conv2d(4, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 3))
        >>> advice = advise(model, 6, trace_size=32)
        >>> advice.border_min, advice.unproductive, advice.parameters, advice.parameters_truncated
        ('3', ('3', '6'), 351, 203)
        >>> advice.macs_size          # MACs are counted where the model ran
        (32, 32)
    """
    rf = rf if rf is not None else receptive_field(model, input_size, **options)
    traced = rf.trace_size_  # MACs depend on the size; count them where the model ran
    params = count_parameters(model).total
    macs = count_flops(model, traced, in_channels=rf.in_channels).macs
    params_cut = macs_cut = None
    notes = []
    if rf.border_min_ is not None:
        try:
            small = truncate(model, rf)
        except ReceptiveFieldError as error:  # e.g. a model torch.fx cannot trace
            notes.append(f"no truncation figures: {error}")
        else:
            params_cut = count_parameters(small).total
            macs_cut = count_flops(small, traced, in_channels=rf.in_channels).macs
    tail = width = None
    if saturation is not None:
        tail = find_tail(saturation)
        width = width_advice(saturation)
    return Advice(
        input_size=rf.input_size_,
        border_min=rf.border_min_.name if rf.border_min_ else None,
        border_max=rf.border_max_.name if rf.border_max_ else None,
        unproductive=tuple(info.name for info in rf.unproductive_),
        parameters=params,
        macs=macs,
        parameters_truncated=params_cut,
        macs_truncated=macs_cut,
        macs_size=traced,
        downsampling=tuple(rf.downsampling_options()),
        strides_to_remove=rf.strides_to_remove(),
        tail=tail,
        width=width,
        notes=tuple(notes),
    )
