"""The contract every streaming statistic follows (the shape of torchmetrics' ``Metric``).

A subclass declares its state once with :meth:`StreamingStatistic.add_state`, naming how the state
combines across processes; it then writes ``update`` (fold in a batch), ``merge`` (fold in another
accumulator of the same kind) and ``compute`` (read the result). ``reset``, ``state_dict``,
``load_state_dict`` and moving between devices are written here, once.
"""

from __future__ import annotations

from typing import Self

import torch

from layerscope.errors import StateMismatchError

__all__ = ["StreamingStatistic"]


class StreamingStatistic:
    """Base class for statistics accumulated batch by batch in constant memory.

    State tensors are plain attributes registered with :meth:`add_state`; each carries a
    *reduction*, a short name documenting how per-process states combine (``"sum"``, or a
    statistic-specific rule that the subclass's ``sync`` implements).

    Example:
        >>> import torch
        >>> class Total(StreamingStatistic):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.add_state("total", torch.zeros((), dtype=torch.float64), "sum")
        ...     def update(self, x):
        ...         self.total += x.sum()
        ...     def merge(self, other):
        ...         self.total += other.total
        ...         return self
        ...     def compute(self):
        ...         return float(self.total)
        >>> t = Total()
        >>> t.update(torch.tensor([1.0, 2.0])); t.compute()
        3.0
        >>> t.reset(); t.compute()
        0.0
    """

    def __init__(self) -> None:
        self._defaults: dict[str, torch.Tensor] = {}
        self._reductions: dict[str, str] = {}

    def add_state(self, name: str, default: torch.Tensor, reduction: str) -> None:
        """Declare a state tensor with its default value and cross-process reduction.

        ``default`` is kept as given, so a large constant default can be passed as an expanded
        view (``torch.zeros(()).expand(d, d)``) that costs no memory; the state itself is a
        dense copy.
        """
        if name in self._defaults:
            raise ValueError(f"state {name!r} is already declared on {type(self).__name__}")
        self._defaults[name] = default.detach()
        self._reductions[name] = reduction
        setattr(self, name, self._fresh(default, default.device))

    @staticmethod
    def _fresh(default: torch.Tensor, device: torch.device) -> torch.Tensor:
        state = torch.empty(default.shape, dtype=default.dtype, device=device)
        return state.copy_(default)

    @property
    def reductions(self) -> dict[str, str]:
        """How each state combines across processes, by state name."""
        return dict(self._reductions)

    @property
    def device(self) -> torch.device:
        """The device the state currently lives on."""
        first = next(iter(self._defaults))
        return getattr(self, first).device

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

    def update(self, *args, **kwargs) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def merge(self, other: Self) -> Self:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self):  # pragma: no cover - abstract
        raise NotImplementedError
