"""Projected networks: a copy of a model with a PCA layer after every recorded layer (SPEC C5;
dissertation 7.1).

:func:`project` copies the model (the user's stays untouched: nothing is written onto it), puts
a :class:`~layerscope.projection.layers.ConvPCA` after every recorded layer whose output is a
feature map and a :class:`~layerscope.projection.layers.LinearPCA` after the others (the layers
and names of the :class:`~layerscope.tracking.Tracker`: same selection, same include/exclude),
fits every covariance in one pass over a loader with the model's layers in evaluation mode (so
BatchNorm running statistics and dropout stay as they are), and eigendecomposes each once. One
global ``delta`` sets every layer's k; changing it later re-selects k without decomposing again.

The PCA layers are applied by forward hooks registered (with :class:`~layerscope.tracking.Hooks`)
for the duration of each forward pass only, so the copy keeps its module names and its
``state_dict`` keys (under ``model.``) and no hook outlives a call.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from layerscope.errors import LayerSelectionError, OptionError, OptionTypeError, ProjectionError
from layerscope.projection.batches import batch_inputs, move_to, sample_count
from layerscope.projection.layers import BASELINES, ConvPCA, LinearPCA, check_delta
from layerscope.stats.covariance import DEFAULT_MAX_FEATURES
from layerscope.stats.spectrum import DEFAULT_DELTA
from layerscope.tracking.hooks import Hooks
from layerscope.tracking.layers import (
    CHANNELS_FIRST_TYPES,
    LayerInfo,
    check_widths,
    describe_layers,
    layer_kind,
    output_features,
    select_layers,
)
from layerscope.tracking.modes import evaluation_mode, model_device

__all__ = ["ProjectedNetwork", "layer_seed", "project"]

Selector = str | type[nn.Module]


def layer_seed(seed: int, index: int) -> int:
    """The seed of the random directions of the ``index``-th layer for the network's ``seed``.

    Example:
        >>> layer_seed(0, 0) != layer_seed(0, 1) != layer_seed(1, 0)
        True
    """
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0] >> 1)


def _strip_hooks(model: nn.Module) -> None:
    """Drop the forward hooks a deep copy inherits (a Tracker's, say): they belong to objects
    watching the user's model, which must not see the projected network's passes."""
    for module in model.modules():
        for hooks in ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs",
                      "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs"):  # fmt: skip
            getattr(module, hooks, {}).clear()


def _map_features(module: nn.Module, output: Any, function) -> Any:
    """Apply ``function`` to the tensor of ``output`` that holds the features (the output
    sequence of recurrent layers and attention, the data of a PackedSequence)."""
    if isinstance(output, tuple) and layer_kind(module) in ("recurrent", "attention"):
        return (_map_features(module, output[0], function), *output[1:])
    if isinstance(output, PackedSequence):
        return output._replace(data=function(output.data))
    if not isinstance(output, torch.Tensor):
        raise ProjectionError(
            f"{type(module).__name__} returned {type(output).__name__}; a PCA layer needs a tensor"
        )
    return function(output)


class ProjectedNetwork(nn.Module):
    """A copy of ``model`` with a PCA layer after every recorded layer (unfitted: call
    :meth:`fit`, or use :func:`project`).

    Args:
        model: the network; it is deep-copied (without the forward hooks registered on it).
        delta: the global fraction of variance every PCA layer keeps, in (0, 1].
        baseline: ``"pca"`` or ``"random"`` (k random orthonormal directions per layer).
        seed: seed of the random directions (each layer draws with :func:`layer_seed`).
        centered: project around each layer's mean (default) or through 0 (eq. 12).
        include, exclude: the Tracker's layer selection (name patterns or module types).
        max_features: the Tracker's width guard.

    Attributes:
        model: the copy, holding the original layers.
        projections: one PCA layer per selected layer, in the order of :attr:`layer_names`.
        layers_: after :meth:`fit`, the layers as :class:`~layerscope.tracking.LayerInfo` in
            forward order (the Tracker's indices).
    """

    def __init__(
        self,
        model: nn.Module,
        delta: float = DEFAULT_DELTA,
        *,
        baseline: str = "pca",
        seed: int = 0,
        centered: bool = True,
        include: Iterable[Selector] | None = None,
        exclude: Iterable[Selector] | None = None,
        max_features: int = DEFAULT_MAX_FEATURES,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise OptionTypeError(f"project() needs a torch.nn.Module, got {type(model).__name__}")
        delta = check_delta(delta)
        self.model = copy.deepcopy(model)
        _strip_hooks(self.model)
        selected = select_layers(self.model, include, exclude)
        check_widths(selected, max_features)
        self.layer_names: list[str] = [name for name, _ in selected]
        self.projections = nn.ModuleList(
            self._pca_layer(name, module, delta, centered, max_features)
            for name, module in selected
        ).to(model_device(self.model))  # fitted state beside the weights (e.g. on the GPU)
        self._modules_by_name = dict(selected)
        self.layers_: list[LayerInfo] = []
        self.set_baseline(baseline, seed)

    @staticmethod
    def _pca_layer(name, module, delta, centered, max_features) -> LinearPCA | ConvPCA:
        width = output_features(module)
        if width is None:
            raise LayerSelectionError(
                f"layer {name!r} ({type(module).__name__}) does not declare its output width, "
                f"so no PCA layer can be built for it; exclude it with exclude=[{name!r}]"
            )
        kind = ConvPCA if isinstance(module, CHANNELS_FIRST_TYPES) else LinearPCA
        return kind(width, delta, centered=centered, max_features=max_features, name=name)

    # ------------------------------------------------------------------ options
    @property
    def delta(self) -> float:
        """The global delta; setting it re-selects every layer's k (no new decomposition)."""
        return self.projections[0].delta

    @delta.setter
    def delta(self, value: float) -> None:
        value = check_delta(value)
        for layer in self.projections:
            layer.delta = value

    @property
    def baseline(self) -> str:
        return self.projections[0].baseline

    @property
    def seed(self) -> int:
        return self._seed

    def set_baseline(self, baseline: str, seed: int = 0) -> ProjectedNetwork:
        """Project every layer onto its top eigendirections (``"pca"``) or onto as many random
        orthonormal directions (``"random"``, drawn from ``seed``); returns self."""
        if baseline not in BASELINES:
            raise OptionError(f"baseline must be one of {BASELINES}, got {baseline!r}")
        for index, layer in enumerate(self.projections):
            layer.set_baseline(baseline, layer_seed(seed, index))
        self._seed = seed
        return self

    # ------------------------------------------------------------------ fitting
    def accumulate(self, loader: Iterable[Any], *, device=None) -> ProjectedNetwork:
        """Fold every selected layer's outputs over ``loader`` into its PCA layer's covariance,
        the copy's layers in evaluation mode (BatchNorm statistics untouched); returns self.

        Batches are tensors, ``(inputs, targets)`` pairs or dicts with an ``"input"`` key;
        inputs go to ``device`` (default: where the model's parameters are).
        """
        device = torch.device(device) if device is not None else model_device(self.model)
        for layer in self.projections:
            layer.reset()
        order: list[str] = []
        pairs = [(module, self._fit_hook(name, layer, order))
                 for name, module, layer in self._triples()]  # fmt: skip
        samples = 0
        with evaluation_mode(self.model), Hooks() as hooks:
            hooks.forward_all(pairs)
            for batch in loader:
                inputs = move_to(batch_inputs(batch), device)
                samples += sample_count(inputs)
                self.model(inputs)
        if samples == 0:
            raise ProjectionError(
                "the fit loader yielded no samples; pass a loader over the data to fit the "
                "covariances on (e.g. the training split without augmentation)"
            )
        unseen = [name for name, layer in zip(self.layer_names, self.projections, strict=True)
                  if layer.covariance.count.item() == 0]  # fmt: skip
        if unseen:
            raise ProjectionError(
                f"layers {unseen} produced no output during the pass over the fit loader (the "
                f"model's forward does not call them); exclude them with exclude={unseen}"
            )
        ordered = [(name, self._modules_by_name[name]) for name in order]
        widths = {layer.name: layer.num_features for layer in self.projections}
        self.layers_ = describe_layers(ordered, widths)
        return self

    def decompose(self) -> ProjectedNetwork:
        """Eigendecompose every layer's accumulated covariance (once); returns self."""
        for layer in self.projections:
            layer.decompose()
        return self

    def fit(self, loader: Iterable[Any], *, device=None) -> ProjectedNetwork:
        """:meth:`accumulate` over ``loader``, :meth:`decompose`, and switch to evaluation;
        returns self."""
        self.accumulate(loader, device=device).decompose()
        return self.eval()

    def _triples(self):
        return [(name, self._modules_by_name[name], layer)
                for name, layer in zip(self.layer_names, self.projections, strict=True)]  # fmt: skip

    @staticmethod
    def _fit_hook(name: str, layer, order: list[str]):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            if name not in order:
                order.append(name)
            _map_features(module, output, lambda x: layer.update(x) or x)

        return hook

    # ------------------------------------------------------------------ results
    @property
    def k_(self) -> dict[str, int]:
        """Kept directions per layer at the current delta, in forward order."""
        names = [info.name for info in self.layers_] or self.layer_names
        by_name = dict(zip(self.layer_names, self.projections, strict=True))
        return {name: by_name[name].k_ for name in names}

    @property
    def total_dimensions_(self) -> int:
        """sum_l k_l: the kept dimensions of the whole network (dissertation table 5)."""
        return sum(self.k_.values())

    @property
    def total_features(self) -> int:
        """sum_l d_l: the dimensions of all the recorded layers' feature spaces."""
        return sum(layer.num_features for layer in self.projections)

    # ------------------------------------------------------------------ forward
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        pairs = [(module, self._projection_hook(layer)) for _, module, layer in self._triples()]
        with Hooks() as hooks:
            hooks.forward_all(pairs)
            return self.model(*args, **kwargs)

    @staticmethod
    def _projection_hook(layer):
        def hook(module: nn.Module, args: tuple, output: Any) -> Any:
            return _map_features(module, output, layer)

        return hook

    def get_extra_state(self) -> dict[str, Any]:
        return {"seed": self._seed, "order": [info.name for info in self.layers_]}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self._seed = int(state["seed"])
        order = [name for name in state["order"] if name in self._modules_by_name]
        widths = {layer.name: layer.num_features for layer in self.projections}
        self.layers_ = describe_layers([(n, self._modules_by_name[n]) for n in order], widths)

    def extra_repr(self) -> str:
        return f"layers={len(self.projections)}, delta={self.delta}, baseline={self.baseline!r}"


def project(
    model: nn.Module,
    loader: Iterable[Any],
    delta: float = DEFAULT_DELTA,
    *,
    baseline: str = "pca",
    seed: int = 0,
    centered: bool = True,
    include: Iterable[Selector] | None = None,
    exclude: Iterable[Selector] | None = None,
    max_features: int = DEFAULT_MAX_FEATURES,
    device=None,
) -> ProjectedNetwork:
    """A new, fitted :class:`ProjectedNetwork` of ``model`` (which stays untouched), in
    evaluation mode: a PCA layer after every recorded layer, covariances fitted on ``loader``.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
        >>> batches = [torch.randn(64, 8) for _ in range(4)]
        >>> projected = project(model, batches, delta=0.9)
        >>> sorted(projected.k_), projected.total_features
        (['0', '2'], 20)
        >>> projected(batches[0]).shape
        torch.Size([64, 4])
        >>> projected.delta = 1.0         # every direction: the model's outputs come back
        >>> torch.allclose(projected(batches[0]), model(batches[0]), atol=1e-5)
        True
    """
    network = ProjectedNetwork(
        model, delta, baseline=baseline, seed=seed, centered=centered, include=include,
        exclude=exclude, max_features=max_features,
    )  # fmt: skip
    return network.fit(loader, device=device)
