"""Border layers under two readings of the dissertation (9.3, 10.2, 10.3), and shortcut layers.

``border_rule="input"`` (the default) applies 10.2's wording to each layer's true input: b_min
is the first recorded layer from which on every layer's input has ``r_{l-1,min} > I`` (b_max
likewise with r_max). For sequential networks (VGG, ResNet without skips, figures 52 and 53) this
is "the first layer whose input exceeds I"; ``"output"`` marks the same layer or the one before
(whose own r already exceeds I: VGG11 5 instead of 6, VGG13 7 for both).

``border_rule="output"`` reproduces the labels of figure 60 (ResNet18: layer 11, ResNet34: layer
17, at 32 px): the layer's *own* receptive field (its output's r_min, before the residual
addition) must exceed I, and the 1x1 convolutions of the shortcut paths are neither tested nor
counted in the layer numbering. Under ``"input"`` the same networks put b_min at the very last
convolution, because every block input keeps the stem's r through the identity paths.

A shortcut layer is a recorded 1x1 convolution whose input also feeds another recorded layer
and whose output reaches a merge of several paths (the residual addition) through element-wise
operations only (batch norm, activations) — the projection shortcut of He et al. 2016.
"""

from __future__ import annotations

from collections.abc import Sequence

from layerscope.architecture.ops import Op
from layerscope.errors import ReceptiveFieldError

__all__ = ["BORDER_RULES", "check_border_rule", "find_border", "shortcut_layers"]

#: The readings of the border-layer definition (module docstring).
BORDER_RULES = ("input", "output")


def check_border_rule(rule: str) -> str:
    """``rule`` if it is one of :data:`BORDER_RULES`, else a :class:`ReceptiveFieldError`.

    Example:
        >>> check_border_rule("output")
        'output'
    """
    if rule not in BORDER_RULES:
        raise ReceptiveFieldError(
            f"border_rule must be 'input' (each layer's input exceeds I, dissertation 10.2) or "
            f"'output' (the layer's own r exceeds I, shortcut convolutions not counted: figure "
            f"60), got {rule!r}; on the command line: --border-rule input|output"
        )
    return rule


def shortcut_layers(ops: Sequence[Op], recorded: Sequence[str]) -> set[str]:
    """Names of the recorded layers that are 1x1 projection shortcuts (module docstring)."""
    consumers: dict[int, list[Op]] = {}
    for op in ops:
        for source in op.inputs:
            consumers.setdefault(source, []).append(op)
    names = set(recorded)
    found = set()
    for op in ops:
        if not (op.module and op.name in names and op.kind == "window" and op.kernel):
            continue
        if any(k != 1 for k in op.kernel) or op.source is None:
            continue
        siblings = [c for c in consumers.get(op.source, []) if c.index != op.index]
        if not any(c.module and c.name in names for c in siblings):
            continue
        if _reaches_join(op.index, consumers):
            found.add(op.name)
    return found


def _reaches_join(index: int, consumers: dict[int, list[Op]]) -> bool:
    """Whether op ``index`` flows into a merge of several inputs through one-input merges only
    (element-wise modules such as batch norm and ReLU trace as one-input merges)."""
    current = index
    while True:
        following = consumers.get(current, [])
        if len(following) != 1 or following[0].kind != "merge":
            return False
        if len(following[0].inputs) > 1:
            return True
        current = following[0].index


def find_border(fields: Sequence, input_size: Sequence[int], rule: str, axes: str):
    """The border among ``fields`` (LayerField, forward order, shortcut layers already left
    out for ``"output"``): the first field from which on every local field exceeds the input
    on every axis. ``axes`` is ``"min"`` or ``"max"``; None when the last one does not."""
    attribute = ("input_r_" if rule == "input" else "r_") + axes + "_axes"
    border = None
    for field in reversed([f for f in fields if f.local]):
        if not all(r > i for r, i in zip(getattr(field, attribute), input_size, strict=True)):
            break
        border = field
    return border
