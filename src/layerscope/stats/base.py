"""The contract every streaming statistic follows (the shape of torchmetrics' ``Metric``).

A subclass declares its state once, each tensor with the rule by which two states combine:

- :meth:`StreamingStatistic.add_state` with reduction ``"sum"``, ``"max"`` or ``"min"``;
- :meth:`StreamingStatistic.add_moments` for a (count, mean, co-moment) triple, combined with
  Chan et al.'s pairwise formula (:mod:`layerscope.stats.moments`).

It then writes ``update`` (fold in a batch) and ``compute`` (read the result). Everything else is
written here once and driven by the declarations: ``merge`` (fold in another accumulator of the
same kind: equal to updating with its batches), ``sync`` (combine the states of all processes of
a ``torch.distributed`` group in place), ``reset``, ``state_dict`` / ``load_state_dict`` and
``to``. A subclass whose instances can only be merged when some option agrees names those
options in :meth:`StreamingStatistic.merge_key`.
"""

from __future__ import annotations

from typing import Literal, Self

import torch

from layerscope.errors import OptionError, OptionTypeError, StateMismatchError
from layerscope.stats.moments import chan_merge, chan_sync

__all__ = ["Reduction", "StreamingStatistic"]

Reduction = Literal["sum", "max", "min"]
_COMBINE = {"sum": torch.add, "max": torch.maximum, "min": torch.minimum}
_MOMENTS = "chan"


class StreamingStatistic:
    """Base class for statistics accumulated batch by batch in constant memory.

    Example:
        >>> import torch
        >>> class Total(StreamingStatistic):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.add_state("total", torch.zeros((), dtype=torch.float64), "sum")
        ...     def update(self, x):
        ...         self.total += x.sum()
        ...     def compute(self):
        ...         return float(self.total)
        >>> a, b = Total(), Total()
        >>> a.update(torch.tensor([1.0, 2.0])); b.update(torch.tensor([4.0]))
        >>> a.merge(b).compute()          # merge comes from the declared "sum"
        7.0
        >>> a.reset(); a.compute()
        0.0
    """

    def __init__(self) -> None:
        self._defaults: dict[str, torch.Tensor] = {}
        self._reductions: dict[str, str] = {}
        self._moments: list[tuple[str, str, str]] = []

    # ------------------------------------------------------------------ declaring state
    def add_state(self, name: str, default: torch.Tensor, reduction: Reduction = "sum") -> None:
        """Declare a state tensor with its default value and how two states combine.

        ``default`` is kept as given, so a large constant default can be passed as an expanded
        view (``torch.zeros(()).expand(d, d)``) that costs no memory; the state itself is a
        dense copy.
        """
        if reduction not in _COMBINE:
            raise OptionError(
                f"{type(self).__name__}.add_state({name!r}): reduction must be one of "
                f"{', '.join(map(repr, _COMBINE))}, got {reduction!r} (moments: add_moments)"
            )
        self._declare(name, default, reduction)

    def add_moments(
        self, count: str, mean: str, comoment: str, num_features: int, device: torch.device
    ) -> None:
        """Declare a float64 (count, mean (d,), co-moment (d, d)) triple merged by Chan's formula."""
        zero = torch.zeros((), dtype=torch.float64, device=device)
        self._declare(count, zero, _MOMENTS)
        self._declare(mean, zero.expand(num_features), _MOMENTS)
        self._declare(comoment, zero.expand(num_features, num_features), _MOMENTS)
        self._moments.append((count, mean, comoment))

    def _declare(self, name: str, default: torch.Tensor, reduction: str) -> None:
        if name in self._defaults:
            raise OptionError(f"state {name!r} is already declared on {type(self).__name__}")
        self._defaults[name] = default.detach()
        self._reductions[name] = reduction
        setattr(self, name, self._fresh(default, default.device))

    @staticmethod
    def _fresh(default: torch.Tensor, device: torch.device) -> torch.Tensor:
        state = torch.empty(default.shape, dtype=default.dtype, device=device)
        return state.copy_(default)

    @property
    def reductions(self) -> dict[str, str]:
        """How each state combines (``"sum"``, ``"max"``, ``"min"``, or ``"chan"`` for moments)."""
        return dict(self._reductions)

    @property
    def device(self) -> torch.device:
        """The device the state currently lives on."""
        first = next(iter(self._defaults))
        return getattr(self, first).device

    def merge_key(self) -> dict[str, object]:
        """Options that must agree for two instances to merge, by name (subclasses extend it)."""
        return {}

    # ------------------------------------------------------------------ combining
    def merge(self, other: Self) -> Self:
        """Fold another accumulator's state into this one; equal to updating with its batches."""
        if type(other) is not type(self):
            raise OptionTypeError(
                f"can only merge a {type(self).__name__} into a {type(self).__name__}, got "
                f"{type(other).__name__}"
            )
        mine, theirs = self.merge_key(), other.merge_key()
        if mine != theirs:
            show = lambda key: ", ".join(f"{k}={v!r}" for k, v in key.items())  # noqa: E731
            raise StateMismatchError(
                f"cannot merge a {type(self).__name__} with {show(theirs)} into one with "
                f"{show(mine)}; only accumulators with the same options combine"
            )
        shapes = {n: (tuple(getattr(self, n).shape), tuple(getattr(other, n).shape))
                  for n in self._defaults}  # fmt: skip
        differ = {n: pair for n, pair in shapes.items() if pair[0] != pair[1]}
        if differ:
            raise StateMismatchError(
                f"cannot merge {type(self).__name__} states of different shapes: {differ}"
            )
        theirs = {name: getattr(other, name).to(self.device) for name in self._defaults}
        for name, reduction in self._reductions.items():
            if reduction != _MOMENTS:
                setattr(self, name, _COMBINE[reduction](getattr(self, name), theirs[name]))
        for names in self._moments:
            mine = [getattr(self, n) for n in names]
            for name, value in zip(names, chan_merge(*mine, *(theirs[n] for n in names)),
                                   strict=True):  # fmt: skip
                setattr(self, name, value)
        return self

    def sync(self, group=None) -> Self:
        """Combine the state of all processes of ``group`` in place (torch.distributed).

        Sums, maxima and minima are all-reduced; moments go through
        :func:`~layerscope.stats.moments.chan_sync`. Every process must call it, with states
        declared alike. Without an initialised process group this is a no-op.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
        for name, reduction in self._reductions.items():
            if reduction != _MOMENTS:
                dist.all_reduce(getattr(self, name), op=ops[reduction], group=group)

        def add(tensor: torch.Tensor) -> None:
            dist.all_reduce(tensor, group=group)

        for names in self._moments:
            values = chan_sync(*(getattr(self, n) for n in names), add)
            for name, value in zip(names, values, strict=True):
                setattr(self, name, value)
        return self

    # ------------------------------------------------------------------ state handling
    def reset(self) -> None:
        """Return every state to its default, keeping the current device."""
        device = self.device
        for name, default in self._defaults.items():
            setattr(self, name, self._fresh(default, device))

    def to(self, device: torch.device | str) -> Self:
        """Move every state tensor to ``device`` and return ``self``."""
        device = torch.device(device)
        for name in self._defaults:
            setattr(self, name, getattr(self, name).to(device))
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The state as plain tensors (copies), e.g. to save or to send to another process."""
        return {name: getattr(self, name).detach().clone() for name in self._defaults}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Replace the state with ``state`` (as produced by :meth:`state_dict`)."""
        missing = set(self._defaults) - set(state)
        unexpected = set(state) - set(self._defaults)
        if missing or unexpected:
            raise StateMismatchError(
                f"{type(self).__name__}.load_state_dict: missing states {sorted(missing)}, "
                f"unexpected states {sorted(unexpected)}"
            )
        device = self.device
        for name, value in state.items():
            expected = self._defaults[name]
            if value.shape != expected.shape:
                raise StateMismatchError(
                    f"{type(self).__name__}.load_state_dict: state {name!r} has shape "
                    f"{tuple(value.shape)}, expected {tuple(expected.shape)}"
                )
            setattr(self, name, value.detach().to(device=device, dtype=expected.dtype, copy=True))

    # ------------------------------------------------------------------ what subclasses write
    def update(self, *args, **kwargs) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self):  # pragma: no cover - abstract
        raise NotImplementedError
