"""The one kind of name -> object lookup in layerscope: a decorator and a dict (after timm's
``_registry.py`` / ``_factory.py``).

Every family of named things is a :class:`Registry`: models, datasets, optimizers and metrics
(defined here, because several packages fill or read them), spectrum statistics
(:data:`layerscope.stats.STATISTICS`), sinks (:data:`layerscope.store.SINKS`), probe solvers
(:data:`layerscope.probes.PROBE_SOLVERS`) and similarity measures
(:data:`layerscope.similarity.MEASURES`). A duplicate name is an error, an unknown one says
"did you mean ...?". Users extend a registry without touching layerscope, with the decorator
or through the entry-point group ``layerscope.<kind>`` (e.g. ``layerscope.models``) of an
installed package, whose objects are registered under the entry point's name.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from layerscope.errors import OptionError, OptionTypeError, UnknownNameError

__all__ = ["DATASETS", "METRICS", "MODELS", "OPTIMIZERS", "Registry"]

T = TypeVar("T", bound=Callable[..., Any])


class Registry(Generic[T]):
    """Named factories of one kind.

    Example:
        >>> widgets = Registry("widget")
        >>> @widgets.register("square")
        ... def make_square(size=2):
        ...     return [[0] * size] * size
        >>> widgets.create("square", size=1)
        [[0]]
        >>> widgets.list()
        ['square']
        >>> widgets.create("sqare")
        Traceback (most recent call last):
        ...
        layerscope.errors.UnknownNameError: unknown widget 'sqare'. Did you mean 'square'? Known widgets: square.
    """

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._entries: dict[str, T] = {}
        self._entry_points_loaded = entry_point_group is None

    def register(self, name: str | None = None, *, override: bool = False) -> Callable[[T], T]:
        """Decorator registering a factory under ``name`` (default: its ``__name__``).

        A duplicate name is an error unless ``override=True``.
        """

        def decorator(factory: T) -> T:
            self.add(name or factory.__name__, factory, override=override)
            return factory

        return decorator

    def add(self, name: str, factory: T, *, override: bool = False) -> None:
        """Register ``factory`` under ``name`` (the non-decorator form)."""
        if not isinstance(name, str) or not name:
            raise OptionError(f"{self.kind} names must be non-empty strings, got {name!r}")
        if not callable(factory):
            raise OptionTypeError(f"{self.kind} {name!r}: the registered object must be callable")
        if name in self._entries and not override:
            raise OptionError(
                f"a {self.kind} named {name!r} is already registered; pick another name or pass "
                f"override=True"
            )
        self._entries[name] = factory

    def remove(self, name: str) -> T:
        """Unregister ``name`` and return what was registered under it.

        Example:
            >>> colours = Registry("colour")
            >>> colours.add("red", lambda: "#f00")
            >>> colours.remove("red")()
            '#f00'
            >>> colours.list()
            []
        """
        self.get(name)  # an unknown name fails with suggestions
        return self._entries.pop(name)

    def describe(self, name: str) -> str:
        """One line about ``name``: its ``description`` attribute if it has one, else the first
        line of its docstring (or "")."""
        entry = self.get(name)
        text = getattr(entry, "description", None) or getattr(entry, "__doc__", None) or ""
        lines = text.strip().splitlines()
        return lines[0] if lines else ""

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for entry in entry_points(group=self.entry_point_group):
            if entry.name not in self._entries:
                self._entries[entry.name] = entry.load()

    def list(self, pattern: str = "*") -> list[str]:
        """Sorted registered names matching the ``fnmatch`` pattern."""
        self._load_entry_points()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._entries

    def get(self, name: str) -> T:
        """The factory registered as ``name``; an unknown name suggests the closest ones."""
        self._load_entry_points()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        known = self.list()
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        shown = ", ".join(known[:30]) + (", ..." if len(known) > 30 else "")
        return f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {shown}."

    def check_options(
        self, name: str, options: Iterable[str], error: type[Exception] = OptionTypeError
    ) -> None:
        """Raise ``error`` naming the first keyword the factory ``name`` does not take, with the
        closest valid one and all of them; a factory taking ``**kwargs`` accepts anything.

        Example:
            >>> shapes = Registry("shape")
            >>> shapes.add("square", lambda size=1, colour="red": None)
            >>> shapes.check_options("square", ["colur"])
            Traceback (most recent call last):
            ...
            layerscope.errors.OptionTypeError: shape 'square' has no option 'colur'. Did you mean 'colour'? Its options: size, colour.
        """
        parameters = inspect.signature(self.get(name)).parameters
        if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            return
        known = [n for n, p in parameters.items()
                 if p.kind is not p.VAR_POSITIONAL and not n.startswith("_")]  # fmt: skip
        for option in options:
            if option not in known:
                close = difflib.get_close_matches(option, known, n=1, cutoff=0.6)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise error(
                    f"{self.kind} {name!r} has no option {option!r}.{hint} "
                    f"Its options: {', '.join(known)}."
                )

    def create(self, name: str, /, **kwargs: Any) -> Any:
        """Call the factory registered as ``name`` with ``kwargs``."""
        return self.get(name)(**kwargs)


#: The registries several packages share. Models register in layerscope.models, datasets in
#: layerscope.datasets, optimizers and metrics in layerscope.lab; importing those fills them.
MODELS: Registry = Registry("model", "layerscope.models")
DATASETS: Registry = Registry("dataset", "layerscope.datasets")
OPTIMIZERS: Registry = Registry("optimizer", "layerscope.optimizers")
METRICS: Registry = Registry("metric", "layerscope.metrics")
