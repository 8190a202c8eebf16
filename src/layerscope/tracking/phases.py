"""Which phase and epoch a forward pass belongs to, and whether its batch is recorded.

A forward pass with ``model.training`` set is phase ``"train"``, otherwise the evaluation phase
(``"eval"``, or the name given by ``with tracker.phase("test"):``). A phase ends when another
phase starts or the epoch ends. Starting a phase that already ended in the same epoch is a
mistake (usually a forgotten ``end_epoch()``) and raises :class:`~layerscope.errors.PhaseError`.
Within a phase, ``every_n_batches`` and ``max_batches`` decide which batches are recorded.

:class:`PhaseClock` holds this bookkeeping and nothing else: it knows no layers and no
statistics; the Tracker asks it what to do with a batch and tells it when a phase was written.
"""

from __future__ import annotations

from layerscope.errors import OptionError, PhaseError

__all__ = ["EPOCH_PHASE", "EVAL", "RESERVED_PHASES", "TRAIN", "WEIGHTS_PHASE", "PhaseClock"]

TRAIN = "train"
EVAL = "eval"
#: Phase of the per-epoch weight statistics.
WEIGHTS_PHASE = "weights"
#: Phase of the scalars given to ``end_epoch`` (loss, accuracy, ...).
EPOCH_PHASE = "epoch"
RESERVED_PHASES = (WEIGHTS_PHASE, EPOCH_PHASE)


class PhaseClock:
    """The current epoch and phase, the phases already written this epoch, batch counts.

    Example:
        >>> clock = PhaseClock(start_epoch=0, every_n_batches=2, max_batches=None)
        >>> clock.enter("train")                  # nothing to finish first
        >>> [clock.next_batch("train") for _ in range(4)]   # every second batch is recorded
        [True, False, True, False]
        >>> clock.finished("train"); clock.end_epoch(); clock.epoch
        1
    """

    def __init__(self, start_epoch: int, every_n_batches: int, max_batches: int | None) -> None:
        if isinstance(start_epoch, bool) or not isinstance(start_epoch, int) or start_epoch < 0:
            raise OptionError(f"start_epoch must be an int >= 0, got {start_epoch!r}")
        self.epoch = start_epoch
        self.every_n_batches = every_n_batches
        self.max_batches = max_batches
        self.current: str | None = None
        self.done: set[str] = set()
        self.epochs_ended = 0
        self._seen: dict[str, int] = {}
        self._recorded: dict[str, int] = {}

    @property
    def pending(self) -> bool:
        """Whether anything was recorded since the last epoch end."""
        return self.current is not None or bool(self.done)

    def enter(self, phase: str) -> str | None:
        """Make ``phase`` current; returns the phase that must be finished first (or None)."""
        if phase == self.current:
            return None
        if phase in self.done:
            raise PhaseError(
                f"phase {phase!r} of epoch {self.epoch} already ended (another phase ran after "
                f"it); call tracker.end_epoch() at the end of every epoch, after its "
                f"evaluation. To run extra forward passes without recording them, wrap them in "
                f"`with tracker.paused():`."
            )
        previous, self.current = self.current, phase
        return previous

    def next_batch(self, phase: str) -> bool:
        """Count a batch of ``phase``; whether it is recorded (every n-th, up to max_batches)."""
        seen = self._seen.get(phase, 0)
        self._seen[phase] = seen + 1
        recorded = self._recorded.get(phase, 0)
        record = seen % self.every_n_batches == 0 and (
            self.max_batches is None or recorded < self.max_batches
        )
        if record:
            self._recorded[phase] = recorded + 1
        return record

    def finished(self, phase: str) -> None:
        """``phase`` was written: it may not start again this epoch."""
        self.done.add(phase)
        if self.current == phase:
            self.current = None

    def begin_epoch(self, epoch: int) -> None:
        """Number the epoch about to start (before its first batch)."""
        _check_epoch(epoch)
        if self.pending:
            raise PhaseError(
                f"begin_epoch({epoch}) after batches of epoch {self.epoch} were recorded; call "
                f"it before the epoch's first batch, or end_epoch() first"
            )
        self.epoch = epoch

    def number_ending_epoch(self, epoch: int | None) -> None:
        """Apply ``end_epoch(epoch=...)``: renumber the ending epoch if nothing was written yet."""
        if epoch is None:
            return
        _check_epoch(epoch)
        if epoch != self.epoch and self.done:
            raise PhaseError(
                f"end_epoch(epoch={epoch}): phases {sorted(self.done)} of this epoch were "
                f"already written as epoch {self.epoch}. Number epochs before their first batch "
                f"with tracker.begin_epoch({epoch}), or let the tracker count (start_epoch= sets "
                f"the first number)."
            )
        self.epoch = epoch

    def end_epoch(self) -> None:
        """Forget this epoch's phases and counts; the next epoch starts."""
        self.done.clear()
        self.current = None
        self._seen.clear()
        self._recorded.clear()
        self.epochs_ended += 1
        self.epoch += 1


def _check_epoch(epoch: object) -> None:
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise OptionError(f"epoch must be an int >= 0, got {epoch!r}")
