"""TensorBoard event files as a sink (write-only: ``load`` reads the run's store instead)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from layerscope.errors import MissingDependencyError
from layerscope.store.records import Record
from layerscope.store.sinks import SINKS, ClosedMixin, SinkFormat

__all__ = ["TensorBoardSink"]


class TensorBoardSink(ClosedMixin):
    """TensorBoard event files: tag ``statistic/phase/layer`` (or ``statistic/phase`` for
    model-level values), step = epoch, the record's wall time. Needs ``tensorboard``
    (``pip install layerscope[tensorboard]``). Non-finite values are skipped."""

    def __init__(self, log_dir: str | os.PathLike) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise MissingDependencyError(
                f"TensorBoardSink needs the tensorboard package ({error}); install it with "
                f"pip install 'layerscope[tensorboard]' or choose another sink"
            ) from None
        self.log_dir = Path(log_dir)
        self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def write(self, records: Sequence[Record]) -> None:
        self._check_open()
        for r in records:
            if not math.isfinite(r.value):
                continue
            tag = f"{r.statistic}/{r.phase}" + (f"/{r.layer}" if r.layer else "")
            self._writer.add_scalar(tag, r.value, global_step=r.epoch, walltime=r.wall_time)

    def flush(self) -> None:
        self._check_open()
        self._writer.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._writer.close()
        self._closed = True


SINKS.add(
    "tensorboard",
    SinkFormat("tensorboard", TensorBoardSink,
               description="TensorBoard event files (tag statistic/phase/layer, step = epoch)"),
)  # fmt: skip
