"""Forward hooks that never leak: the one place layerscope registers and removes them.

Every hook owner (the Tracker, latent extraction, layer-similarity helpers, the FLOP counter, the
graph tracer) collects its handles in a :class:`Hooks` set and removes them all at once: when its
``with`` block ends, also after an exception, or on ``remove()`` for a long-lived owner such as
the Tracker. Hooks registered before a failing registration are removed too (the captum habit:
register in ``try``, remove in ``finally``).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = ["Hooks"]


class Hooks:
    """A set of forward and forward-pre hooks removed together.

    Example:
        >>> import torch
        >>> layer, seen = nn.Linear(2, 2), []
        >>> with Hooks() as hooks:
        ...     hooks.forward(layer, lambda module, args, output: seen.append(output.shape))
        ...     _ = layer(torch.zeros(3, 2))
        >>> seen, len(layer._forward_hooks)     # recorded once, removed afterwards
        ([torch.Size([3, 2])], 0)
    """

    def __init__(self) -> None:
        self._handles: list[RemovableHandle] = []

    def forward(self, module: nn.Module, hook: Callable, *, prepend: bool = False) -> None:
        """``module.register_forward_hook(hook)``, removed with the others."""
        self._handles.append(module.register_forward_hook(hook, prepend=prepend))

    def forward_pre(self, module: nn.Module, hook: Callable) -> None:
        """``module.register_forward_pre_hook(hook)``, removed with the others."""
        self._handles.append(module.register_forward_pre_hook(hook))

    def forward_all(self, pairs) -> Hooks:
        """Register a forward hook for every ``(module, hook)`` pair; if one registration fails,
        every hook of the set is removed before the error propagates. Returns self."""
        try:
            for module, hook in pairs:
                self.forward(module, hook)
        except BaseException:
            self.remove()
            raise
        return self

    def remove(self) -> None:
        """Remove every hook of the set (safe to call twice)."""
        while self._handles:
            self._handles.pop().remove()

    def __len__(self) -> int:
        return len(self._handles)

    def __enter__(self) -> Hooks:
        return self

    def __exit__(self, *exc_info) -> None:
        self.remove()
