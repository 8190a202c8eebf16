"""The delta grids of the dissertation's projection experiments (chapter 7).

- ``"7.3"`` (the default): {0.90, 0.91, ..., 0.99} and {0.991, ..., 0.999}, the 19 values of
  7.3.1 (from the collapse to chance level up to close to 100% explained variance);
- ``"7.4"``: the 7.3 grid refined by {0.9991, ..., 0.9999}: 28 values holding every delta of
  tables 4 and 5 (the relevant-eigenspace search of 7.4);
- ``"7.4-fine"``: 0.99 to 0.9999 in steps of 0.0001, the 100 values 7.4.1's text names.

Values are rounded to 4 decimals so that they are the decimals they look like (0.991, not
0.9910000000000001) and survive a round trip through records and the command line.
"""

from __future__ import annotations

from collections.abc import Iterable

from layerscope.errors import OptionError, fix
from layerscope.projection.layers import check_delta

__all__ = ["GRIDS", "resolve_deltas"]


def _steps(start: float, stop: float, step: float) -> list[float]:
    count = round((stop - start) / step)
    return [round(start + i * step, 4) for i in range(count + 1)]


_GRID_73 = _steps(0.90, 0.99, 0.01) + _steps(0.991, 0.999, 0.001)

#: Named delta grids, each ascending.
GRIDS: dict[str, tuple[float, ...]] = {
    "7.3": tuple(_GRID_73),
    "7.4": tuple(sorted(set(_GRID_73) | set(_steps(0.9991, 0.9999, 0.0001)))),
    "7.4-fine": tuple(_steps(0.99, 0.9999, 0.0001)),
}


def resolve_deltas(deltas: str | float | Iterable[float]) -> tuple[float, ...]:
    """A grid name or delta values as a tuple of distinct deltas in (0, 1], ascending.

    Example:
        >>> len(resolve_deltas("7.3")), resolve_deltas("7.3")[:2], resolve_deltas("7.3")[-1]
        (19, (0.9, 0.91), 0.999)
        >>> resolve_deltas([0.99, 0.9, 0.99])
        (0.9, 0.99)
    """
    if isinstance(deltas, str):
        if deltas not in GRIDS:
            raise OptionError(
                f"unknown delta grid {deltas!r}; choose one of {', '.join(GRIDS)} "
                + fix(
                    python="(deltas='7.3') or give the values (deltas=[0.9, 0.99])",
                    cli="(--grid 7.3) or give the values (--deltas 0.9 0.99)",
                )
            )
        return GRIDS[deltas]
    values = [deltas] if isinstance(deltas, (int, float)) else list(deltas)
    if not values:
        raise OptionError("deltas is empty; give at least one value in (0, 1], e.g. [0.99]")
    return tuple(sorted({check_delta(value, "every delta") for value in values}))
