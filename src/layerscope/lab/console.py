"""What the lab says while it works, fit for a terminal and for a batch job's log.

- Progress bars only on a terminal: :func:`show_bars` is false when stderr is redirected to a
  file (no tqdm frames in logs), whatever ``progress`` asks for.
- Epoch summaries, resumes and divergence go through :func:`say`: one line each on stderr,
  always, also without progress bars; inside ``with quiet():`` (``--quiet``) they are left out.

Example:
    >>> with quiet():
    ...     say("not shown")
    >>> show_bars(False)
    False
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Iterator

__all__ = ["quiet", "say", "show_bars"]

_QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("layerscope_quiet", default=False)


def say(message: str) -> None:
    """Print one line to stderr unless inside :func:`quiet`."""
    if not _QUIET.get():
        print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def quiet(on: bool = True) -> Iterator[None]:
    """Within the block, :func:`say` prints nothing (when ``on``)."""
    token = _QUIET.set(bool(on) or _QUIET.get())
    try:
        yield
    finally:
        _QUIET.reset(token)


def show_bars(progress: bool) -> bool:
    """Whether to draw progress bars: asked for, and stderr is a terminal."""
    if not progress or _QUIET.get():
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())
