"""The tidy record: one value per row (SPEC C4).

Every analysis and report reads one shape of table, with the columns of :data:`COLUMNS`.
Model-level values (loss, accuracy, parameter count) have ``layer`` and ``layer_index`` set to
``None``; values that belong to the epoch rather than a phase (weight change) have phase
``"weights"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import astuple, dataclass

__all__ = ["COLUMNS", "Record", "make_records"]

#: Column order of every sink and of :func:`layerscope.load`'s DataFrame.
COLUMNS: tuple[str, ...] = (
    "run",
    "epoch",
    "phase",
    "layer",
    "layer_index",
    "statistic",
    "value",
    "wall_time",
)


@dataclass(frozen=True, slots=True)
class Record:
    """One value of one statistic.

    Attributes:
        run: the run's name.
        epoch: 0-based epoch the value belongs to.
        phase: ``"train"``, an evaluation set's name (``"eval"`` by default), ``"weights"`` for
            weight-snapshot statistics, or ``"run"`` for values of the whole run.
        layer: the layer's module path, or ``None`` for model-level values.
        layer_index: the layer's position in forward order, or ``None``.
        statistic: e.g. ``"saturation"``, ``"loss"``.
        value: a float (``inf``/``-inf`` allowed, NaN is not stored as a number by every sink).
        wall_time: seconds since the epoch (``time.time()``) when the value was computed.

    Example:
        >>> Record("demo", 0, "train", "features.0", 0, "saturation", 0.25, 0.0).as_tuple()[:4]
        ('demo', 0, 'train', 'features.0')
    """

    run: str
    epoch: int
    phase: str
    layer: str | None
    layer_index: int | None
    statistic: str
    value: float
    wall_time: float

    def as_tuple(self) -> tuple:
        return astuple(self)

    def as_dict(self) -> dict:
        return dict(zip(COLUMNS, self.as_tuple(), strict=True))


def make_records(
    run: str,
    epoch: int,
    phase: str,
    wall_time: float,
    *,
    layers: Iterable[tuple[str, int | None, Mapping[str, float]]] = (),
    model: Mapping[str, float] | None = None,
) -> list[Record]:
    """The tidy rows of one (run, epoch, phase): every layer's values, then the model's.

    ``layers`` holds ``(layer name, layer index, {statistic: value})`` triples; ``model`` the
    model-level values (``layer`` and ``layer_index`` None). Values are converted to float.

    Example:
        >>> rows = make_records("r", 0, "train", 0.0, layers=[("fc", 0, {"saturation": 0.5})],
        ...                     model={"average_saturation": 0.5})
        >>> [(r.layer, r.statistic) for r in rows]
        [('fc', 'saturation'), (None, 'average_saturation')]
    """
    rows = [
        Record(run, epoch, phase, name, index, statistic, float(value), wall_time)
        for name, index, values in layers
        for statistic, value in values.items()
    ]
    for statistic, value in (model or {}).items():
        rows.append(Record(run, epoch, phase, None, None, statistic, float(value), wall_time))
    return rows
