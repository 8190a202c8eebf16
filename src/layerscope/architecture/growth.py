"""How receptive fields grow along traced operations (dissertation 4.4, eq. 9).

``r_l = r_{l-1} + (k_l - 1) * prod(s)`` with dilation folded into k (``k_eff = (k - 1) * d + 1``),
from ``r_0 = 1``. Every tensor carries, per spatial axis, the smallest and largest r of its paths
for each distinct product of strides ("jump"), so paths with different downsampling grow
correctly afterwards: :func:`propagate` gives the state after every operation and
:func:`bounds` its (r_min, r_max) per axis. Global operations make every later output see the
whole input (r = inf).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from layerscope.architecture.ops import Op

__all__ = ["INF", "AxisState", "bounds", "is_global", "propagate"]

INF = math.inf

# An axis state maps a jump (product of strides, in input pixels; None for global paths) to the
# (smallest, largest) receptive field of the paths with that jump.

AxisState = dict


def _put(state: AxisState, jump, low, high) -> None:
    if jump in state:
        old_low, old_high = state[jump]
        state[jump] = (min(old_low, low), max(old_high, high))
    else:
        state[jump] = (low, high)


def _union(states: Sequence[tuple[AxisState, ...]]) -> tuple[AxisState, ...]:
    merged: list[AxisState] = [{} for _ in states[0]]
    for state in states:
        for axis, entries in enumerate(state):
            for jump, (low, high) in entries.items():
                _put(merged[axis], jump, low, high)
    return tuple(merged)


def _grow(state: tuple[AxisState, ...], growth, step) -> tuple[AxisState, ...]:
    """Every path grows by ``growth[axis] * jump`` and its jump is multiplied by ``step[axis]``."""
    out = []
    for axis, entries in enumerate(state):
        new: AxisState = {}
        for jump, (low, high) in entries.items():
            if jump is None:
                _put(new, None, INF, INF)
            else:
                extra = growth[axis] * jump
                _put(new, jump * step[axis], low + extra, high + extra)
        out.append(new)
    return tuple(out)


def is_global(state: tuple[AxisState, ...]) -> bool:
    return all(set(entries) == {None} for entries in state)


def _apply(op: Op, inputs: list[tuple[AxisState, ...]], gates: str) -> tuple[AxisState, ...]:
    if op.kind == "mul" and gates == "ignore":
        inputs = [s for s in inputs if not is_global(s)] or inputs
    state = _union(inputs)
    n = len(state)
    if op.kind == "window":
        growth = [(k - 1) * d for k, d in zip(op.kernel, op.dilation, strict=True)]
        return _grow(state, growth, op.stride)
    if op.kind == "transposed":
        # Each output sees floor((k_eff - 1) / s) + 1 neighbouring inputs.
        taps = [
            ((k - 1) * d) // s + 1
            for k, d, s in zip(op.kernel, op.dilation, op.stride, strict=True)
        ]
        return _grow(state, [t - 1 for t in taps], [1 / s for s in op.stride])
    if op.kind == "resample":  # stride holds the scale out/in, kernel the interpolation taps
        return _grow(state, [t - 1 for t in op.kernel], [1 / s for s in op.stride])
    if op.kind == "global":
        return tuple({None: (INF, INF)} if op.axes[a] else state[a] for a in range(n))
    return state  # identity, merge, mul


def propagate(ops: Sequence[Op], num_axes: int, gates: str) -> list[tuple[AxisState, ...]]:
    states: list[tuple[AxisState, ...]] = []
    for op in ops:
        if op.kind == "input":
            states.append(tuple({Fraction(1): (Fraction(1), Fraction(1))} for _ in range(num_axes)))
        else:
            states.append(_apply(op, [states[i] for i in op.inputs], gates))
    return states


def bounds(state: tuple[AxisState, ...]) -> tuple[tuple, tuple]:
    def size(value) -> int | float:
        return value if value == INF else math.ceil(value)

    low = tuple(size(min(lo for lo, _ in entries.values())) for entries in state)
    high = tuple(size(max(hi for _, hi in entries.values())) for entries in state)
    return low, high
