"""Layer-by-layer similarity between two models, and of one layer across training (SPEC C9).

Seed 004 (after Morcos et al. 2018): compare every layer of one network with every layer of
another (or of itself), and a layer at epoch t with the same layer at the end of training.

Layers are chosen with :func:`layerscope.tracking.layers.select_layers` (the tracker's names and
defaults) and their outputs read through :func:`~layerscope.tracking.layers.channels_first`, then
turned into one matrix per batch by ``spatial``
(:func:`~layerscope.stats.samples.feature_map_matrix`):

- ``"flatten"``: one row per input, all positions and channels as features (Kornblith et al.
  2019 for CKA; the default for ``measure="cka"``, whose Gram route keeps the cost at n x n per
  batch however wide the flattened layer is);
- ``"pool"``: average over positions first, (N, C) (the default for the CCA family, which
  needs many more samples than features);
- ``"positions"``: every position of every input is a sample, (N*H*W, C); only layers with the
  same spatial size can then be compared.

``measure="cka"`` streams: :class:`~layerscope.similarity.alignment.MinibatchCKA` (unbiased, as
everywhere in layerscope, Nguyen et al. 2021) keeps O(layers^2) numbers and one batch of
activations. ``"cca"``, ``"svcca"`` and ``"pwcca"`` need all samples at once; they gather at
most ``max_samples`` rows per layer (on the CPU, in the model's dtype).

Models are put in eval mode and run without gradients; their training flags are restored and
every hook is removed afterwards, also after an error.
"""

from __future__ import annotations

import contextlib
import copy
import html
import inspect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from layerscope.errors import (
    OptionTypeError,
    SimilarityInputError,
)
from layerscope.similarity.alignment import MinibatchCKA
from layerscope.similarity.gathered import Gathered
from layerscope.similarity.inputs import Spatial
from layerscope.similarity.measures import MEASURES
from layerscope.stats.samples import SPATIAL_MODES, feature_map_matrix
from layerscope.tracking.hooks import Hooks
from layerscope.tracking.layers import channels_first, select_layers
from layerscope.tracking.modes import evaluation_mode, model_device

__all__ = ["SimilarityMatrix", "SimilarityOverEpochs", "layer_similarity", "similarity_over_epochs"]


def _table_html(result, index, columns) -> str:
    """A result's summary above its values as a table (notebooks)."""
    frame = pd.DataFrame(result.values, index=list(index), columns=list(columns))
    return f"<p>{html.escape(repr(result))}</p>" + frame.to_html(float_format="{:.3f}".format)


@dataclass(frozen=True, eq=False)
class SimilarityMatrix:
    """A layer x layer similarity matrix.

    Attributes:
        values: (len(rows), len(cols)) float64; NaN where undefined (a layer without variance).
        rows: layer names of the first model, in registration order.
        cols: layer names of the second model.
        measure: ``"cka"``, ``"cca"``, ``"svcca"`` or ``"pwcca"``.
        num_samples: rows (samples) the values are computed from.
        spatial: how feature maps became matrices.
    """

    values: np.ndarray
    rows: tuple[str, ...]
    cols: tuple[str, ...]
    measure: str
    num_samples: int
    spatial: str

    def __repr__(self) -> str:
        """Example: ``SimilarityMatrix(cka, 2 x 2 layers, 100 samples, spatial=flatten)``."""
        return (f"SimilarityMatrix({self.measure}, {len(self.rows)} x {len(self.cols)} layers, "
                f"{self.num_samples} samples, spatial={self.spatial})")  # fmt: skip

    def _repr_html_(self) -> str:
        return _table_html(self, self.rows, self.cols)

    def to_frame(self) -> pd.DataFrame:
        """Tidy rows: ``layer_a, layer_b, measure, value``."""
        a, b = np.meshgrid(np.arange(len(self.rows)), np.arange(len(self.cols)), indexing="ij")
        return pd.DataFrame(
            {
                "layer_a": [self.rows[i] for i in a.ravel()],
                "layer_b": [self.cols[j] for j in b.ravel()],
                "measure": self.measure,
                "value": self.values.ravel(),
            }
        )


@dataclass(frozen=True, eq=False)
class SimilarityOverEpochs:
    """Each layer at every epoch against the same layer at the reference (final) epoch.

    Attributes:
        values: (len(epochs), len(layers)) float64; the reference epoch's row is 1.
        epochs: epoch labels, in the order given.
        layers: layer names.
        measure, num_samples, spatial: as in :class:`SimilarityMatrix`.
        reference_epoch: the epoch every other is compared with (the last one).
    """

    values: np.ndarray
    epochs: tuple[int, ...]
    layers: tuple[str, ...]
    measure: str
    num_samples: int
    spatial: str
    reference_epoch: int

    def __repr__(self) -> str:
        return (f"SimilarityOverEpochs({self.measure}, {len(self.epochs)} epochs x "
                f"{len(self.layers)} layers, reference epoch {self.reference_epoch})")  # fmt: skip

    def _repr_html_(self) -> str:
        return _table_html(self, self.epochs, self.layers)

    def to_frame(self) -> pd.DataFrame:
        """Tidy rows: ``epoch, layer, measure, value``."""
        e, layer = np.meshgrid(
            np.arange(len(self.epochs)), np.arange(len(self.layers)), indexing="ij"
        )
        return pd.DataFrame(
            {
                "epoch": [self.epochs[i] for i in e.ravel()],
                "layer": [self.layers[j] for j in layer.ravel()],
                "measure": self.measure,
                "value": self.values.ravel(),
            }
        )


# ------------------------------------------------------------------------- recording layers
class _Recorder:
    """Forward hooks that keep the current batch's output of each selected layer as a matrix."""

    def __init__(self, model: nn.Module, include, exclude, spatial: str) -> None:
        self.model = model
        self.layers = select_layers(model, include, exclude)
        self.names = tuple(name for name, _ in self.layers)
        self.spatial = spatial
        self.outputs: dict[str, torch.Tensor] = {}
        self._hooks = Hooks()

    def __enter__(self) -> _Recorder:
        self._hooks.forward_all((module, self._hook(name, module)) for name, module in self.layers)
        return self

    def _hook(self, name: str, module: nn.Module):
        def hook(_module, _inputs, output):
            maps = channels_first(module, output)
            if maps is not None:
                # Batch first in every mode: with positions as samples, both models list the
                # rows of a batch in the same order (input-major), whatever their layouts.
                matrix = feature_map_matrix(maps.detach(), self.spatial)
                if matrix.untyped_storage().data_ptr() == maps.untyped_storage().data_ptr():
                    matrix = matrix.clone()  # a view: an in-place ReLU after the layer would
                    # change it before the measure reads it
                self.outputs[name] = matrix

        return hook

    def run(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """Forward ``inputs`` and return the selected layers' matrices, in ``names`` order."""
        self.outputs.clear()
        self.model(inputs.to(model_device(self.model)))
        missing = [name for name in self.names if name not in self.outputs]
        if missing:
            raise SimilarityInputError(
                f"layers {missing} of {type(self.model).__name__} produced no tensor output in "
                f"the forward pass (not called, or returned no tensor); exclude them"
            )
        return [self.outputs[name] for name in self.names]

    def __exit__(self, *exc_info) -> None:
        self._hooks.remove()


def _inputs_of(batch) -> torch.Tensor:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    raise OptionTypeError(
        f"the data loader must yield input tensors or (inputs, targets, ...) tuples, got "
        f"{type(batch).__name__}; wrap it, e.g. (x for x, *_ in my_loader)"
    )


# ---------------------------------------------------------------------------- the measures
def _check_measure(measure: str, spatial: Spatial | None) -> str:
    if measure not in MEASURES:
        raise SimilarityInputError(
            f"unknown similarity measure {measure!r}; choose one of {', '.join(MEASURES.list())}"
        )
    if spatial is None:
        return MEASURES.get(measure).default_spatial
    if spatial not in SPATIAL_MODES:
        raise SimilarityInputError(
            f"spatial must be 'positions', 'pool', 'flatten' or None, got {spatial!r}"
        )
    return spatial


def _accumulator(measure, num_x, num_y, unbiased, max_samples):
    if MEASURES.get(measure).streaming:
        return MinibatchCKA(num_x, num_y, unbiased=unbiased)
    if not isinstance(max_samples, int) or max_samples < 2:
        raise SimilarityInputError(f"max_samples must be an int >= 2, got {max_samples!r}")
    return Gathered(num_x, num_y, max_samples)


def _check_options(measure: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The measure's options, checked by name before any batch runs."""
    options = dict(options or {})
    if MEASURES.get(measure).streaming:
        if options:
            raise SimilarityInputError(
                f"measure 'cka' takes no options, got {options}; choose the estimator with "
                f"unbiased=True / False"
            )
        return options
    signature = inspect.signature(MEASURES.get(measure).function)
    try:
        signature.bind(None, None, **options)
    except TypeError:
        known = [p.name for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY]
        raise SimilarityInputError(
            f"options {sorted(options)} are not all options of measure {measure!r}; it takes "
            f"{', '.join(known)}"
        ) from None
    return options


def _finish(accumulator, measure, rows, cols, options) -> tuple[np.ndarray, int]:
    if isinstance(accumulator, MinibatchCKA):
        return accumulator.compute().numpy(), int(accumulator.samples)
    if accumulator.count == 0:
        raise SimilarityInputError("the data loader yielded no batch")
    return accumulator.compute(measure, rows, cols, options), accumulator.count


def _batches(loader: Iterable, max_batches: int | None):
    if max_batches is not None and (not isinstance(max_batches, int) or max_batches < 1):
        raise SimilarityInputError(f"max_batches must be an int >= 1 or None, got {max_batches!r}")
    for index, batch in enumerate(loader):
        if max_batches is not None and index >= max_batches:
            return
        yield _inputs_of(batch)


# ---------------------------------------------------------------------------- public API
def layer_similarity(
    model_a: nn.Module,
    model_b: nn.Module | None,
    loader: Iterable,
    *,
    measure: str = "cka",
    include=None,
    exclude=None,
    spatial: Spatial | None = None,
    unbiased: bool = True,
    max_batches: int | None = None,
    max_samples: int = 10_000,
    options: Mapping[str, Any] | None = None,
) -> SimilarityMatrix:
    """Similarity of every selected layer of ``model_a`` with every one of ``model_b``.

    Args:
        model_a, model_b: the two models (or two checkpoints loaded into models);
            ``model_b=None`` compares ``model_a`` with itself.
        loader: yields input tensors or (inputs, targets) tuples; each model gets the inputs on
            its own device.
        measure: ``"cka"`` (minibatch CKA, bounded memory), ``"cca"``, ``"svcca"``, ``"pwcca"``.
        include, exclude: layer selection, as :func:`~layerscope.tracking.layers.select_layers`
            (applied to both models).
        spatial: ``"flatten"``, ``"pool"`` or ``"positions"``; ``None`` takes ``"flatten"`` for
            CKA and ``"pool"`` for the CCA family (see the module docstring).
        unbiased: for CKA, the unbiased HSIC estimator (default) or the biased one.
        max_batches: stop after this many batches.
        max_samples: for the CCA family, rows gathered per layer.
        options: keyword arguments for the CCA-family function (``variance``, ``dims``,
            ``weights_from``, ``rtol``, ``precision``).

    Example:
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> data = [torch.randn(64, 5) for _ in range(4)]
        >>> result = layer_similarity(net, None, data)
        >>> result.rows, result.values.shape
        (('0', '2'), (2, 2))
        >>> result.values.diagonal().round(6).tolist()   # each layer with itself
        [1.0, 1.0]
    """
    spatial = _check_measure(measure, spatial)
    options = _check_options(measure, options)
    same = model_b is None or model_b is model_a
    model_b = model_a if model_b is None else model_b
    with contextlib.ExitStack() as stack:
        rec_a = stack.enter_context(_Recorder(model_a, include, exclude, spatial))
        rec_b = (
            rec_a if same else stack.enter_context(_Recorder(model_b, include, exclude, spatial))
        )
        stack.enter_context(evaluation_mode(model_a, model_b))
        acc = _accumulator(measure, len(rec_a.names), len(rec_b.names), unbiased, max_samples)
        for inputs in _batches(loader, max_batches):
            xs = rec_a.run(inputs)
            ys = xs if same else [y.to(xs[0].device) for y in rec_b.run(inputs)]
            acc.update(xs, ys)
            if isinstance(acc, Gathered) and acc.full:
                break
        values, count = _finish(acc, measure, rec_a.names, rec_b.names, options)
    return SimilarityMatrix(values, rec_a.names, rec_b.names, measure, count, spatial)


def _materialise(checkpoint, template: nn.Module | None, working: nn.Module | None, index: int):
    if isinstance(checkpoint, nn.Module):
        return checkpoint
    if not isinstance(checkpoint, Mapping):
        raise OptionTypeError(
            f"checkpoints[{index}] is a {type(checkpoint).__name__}; pass nn.Module objects or "
            f"state dicts (with model=...)"
        )
    if template is None:
        raise SimilarityInputError(
            f"checkpoints[{index}] is a state dict; pass model=<an instance of the architecture> "
            f"to load it into"
        )
    working.load_state_dict(checkpoint)
    return working


def similarity_over_epochs(
    checkpoints: Sequence[nn.Module | Mapping[str, torch.Tensor]],
    loader: Iterable,
    *,
    model: nn.Module | None = None,
    epochs: Sequence[int] | None = None,
    measure: str = "cka",
    include=None,
    exclude=None,
    spatial: Spatial | None = None,
    unbiased: bool = True,
    max_batches: int | None = None,
    max_samples: int = 10_000,
    options: Mapping[str, Any] | None = None,
) -> SimilarityOverEpochs:
    """Each selected layer at every checkpoint against the same layer at the last checkpoint.

    Args:
        checkpoints: models or state dicts ordered by epoch; the last is the reference.
            State dicts are loaded into copies of ``model`` (two copies at most live at once);
            a sequence is read item by item (the last first), so one that loads each item
            from disk when indexed keeps one state dict in memory.
        loader: as in :func:`layer_similarity`; it is read once per checkpoint, and every batch
            goes through the checkpoint and the reference together, so a shuffling loader is
            fine.
        epochs: labels for the checkpoints (default 0, 1, ...).
        Other arguments: as in :func:`layer_similarity`.

    Example:
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> states = [copy.deepcopy(net.state_dict())]
        >>> with torch.no_grad():
        ...     _ = net[0].weight.add_(0.1)
        >>> states.append(copy.deepcopy(net.state_dict()))
        >>> data = [torch.randn(64, 5) for _ in range(4)]
        >>> result = similarity_over_epochs(states, data, model=net)
        >>> result.epochs, result.layers, result.values[-1].round(6).tolist()
        ((0, 1), ('0', '2'), [1.0, 1.0])
    """
    spatial = _check_measure(measure, spatial)
    options = _check_options(measure, options)
    if not isinstance(checkpoints, Sequence):
        checkpoints = list(checkpoints)
    if not checkpoints:
        raise SimilarityInputError("checkpoints is empty; pass at least one model or state dict")
    epochs = tuple(range(len(checkpoints))) if epochs is None else tuple(epochs)
    if len(epochs) != len(checkpoints):
        raise SimilarityInputError(
            f"{len(epochs)} epoch labels for {len(checkpoints)} checkpoints; pass one per checkpoint"
        )
    copies = {} if model is None else {"working": copy.deepcopy(model)}
    last = checkpoints[-1]  # indexed once: a lazy sequence loads it once
    if model is not None and not isinstance(last, nn.Module):
        copies["reference"] = copy.deepcopy(model)
    reference = _materialise(last, model, copies.get("reference"), len(epochs) - 1)
    del last  # a state dict is in the reference copy now
    rows, num_samples, names = [], 0, ()
    for index, checkpoint in enumerate(checkpoints):
        current = _materialise(checkpoint, model, copies.get("working"), index)
        with (
            _Recorder(reference, include, exclude, spatial) as rec_ref,
            _Recorder(current, rec_ref.names, None, spatial) as rec_cur,
            evaluation_mode(reference, current),
        ):
            names = rec_ref.names
            if rec_cur.names != names:
                raise SimilarityInputError(
                    f"checkpoints[{index}] has layers {rec_cur.names}, the last has {names}; "
                    f"all checkpoints must share one architecture"
                )
            row, num_samples = _layers_against_reference(
                rec_cur, rec_ref, loader, measure, unbiased, max_batches, max_samples, options
            )
            rows.append(row)
    values = np.asarray(rows, dtype=np.float64)
    return SimilarityOverEpochs(values, epochs, names, measure, num_samples, spatial, epochs[-1])


def _layers_against_reference(
    current: _Recorder,
    reference: _Recorder,
    loader,
    measure,
    unbiased,
    max_batches,
    max_samples,
    options,
) -> tuple[list[float], int]:
    """Layer l of ``current`` against layer l of ``reference``, for every l, over ``loader``."""
    names = reference.names
    accs = [_accumulator(measure, 1, 1, unbiased, max_samples) for _ in names]
    for inputs in _batches(loader, max_batches):
        refs = reference.run(inputs)
        curs = current.run(inputs)
        for acc, cur, ref in zip(accs, curs, refs, strict=True):
            acc.update([cur.to(ref.device)], [ref])
        if isinstance(accs[0], Gathered) and accs[0].full:
            break
    row, num_samples = [], 0
    for acc, name in zip(accs, names, strict=True):
        value, num_samples = _finish(acc, measure, (name,), (name,), options)
        row.append(value[0, 0])
    return row, num_samples
