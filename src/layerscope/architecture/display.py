"""How a :class:`~layerscope.architecture.fields.ReceptiveField` shows itself: a one-line
``repr`` and, in a notebook, the summary above its per-layer table."""

from __future__ import annotations

import html

__all__ = ["field_html", "field_repr"]


def field_repr(rf) -> str:
    """Its arguments and, once fitted, the layers and border layers found.

    Example:
        >>> from torch import nn
        >>> from layerscope.architecture.fields import ReceptiveField
        >>> ReceptiveField(input_size=6)
        ReceptiveField(input_size=6, not fitted)
        >>> convs = [nn.Conv2d(1 if i == 0 else 2, 2, 5, padding=2) for i in range(3)]
        >>> ReceptiveField(input_size=6).fit(nn.Sequential(*convs))
        ReceptiveField(input_size=6, 3 layers, b_min='2', b_max='2', tracer='fx')
    """
    if not hasattr(rf, "fields_"):
        return f"ReceptiveField(input_size={rf.input_size!r}, not fitted)"
    b_min = rf.border_min_.name if rf.border_min_ is not None else None
    b_max = rf.border_max_.name if rf.border_max_ is not None else None
    return (f"ReceptiveField(input_size={rf.input_size!r}, {len(rf.fields_)} layers, "
            f"b_min={b_min!r}, b_max={b_max!r}, tracer={rf.tracer_!r})")  # fmt: skip


def field_html(rf) -> str:
    """The summary and, once fitted, the per-layer table (for notebooks)."""
    summary = f"<p>{html.escape(field_repr(rf))}</p>"
    return summary + (rf.to_frame().to_html(index=False) if hasattr(rf, "fields_") else "")
