"""Callbacks that record a Tracker inside other training frameworks (SPEC C14).

- :mod:`~layerscope.integrations.lightning`: ``LayerscopeCallback`` for a PyTorch Lightning
  ``Trainer`` (``import lightning`` or ``import pytorch_lightning``);
- :mod:`~layerscope.integrations.huggingface`: ``LayerscopeCallback`` for a Hugging Face
  ``transformers.Trainer``;
- :mod:`~layerscope.integrations.recorder`: :class:`EpochRecorder`, what both share: a training
  and an evaluation Tracker on one model, driven by the framework's hooks;
- :mod:`~layerscope.integrations.frameworks`: importing a framework on first use.

Importing this package imports no framework; each callback imports its own when it is created,
and a missing one raises :class:`~layerscope.errors.MissingDependencyError` naming the extra
(``pip install 'layerscope[lightning]'``, ``'layerscope[huggingface]'``). See
docs/integrations.md.
"""

from layerscope.integrations.recorder import EpochRecorder, numeric_scalars

__all__ = ["EpochRecorder", "numeric_scalars"]
