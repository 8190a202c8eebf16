"""Which modules are recorded, what they are called, and how their outputs become samples.

The one description of a recorded layer is :class:`LayerInfo` (after timm's ``FeatureInfo``); the
tracker, receptive-field analysis, probes, similarity and reports all read it instead of
re-deriving names.

Recorded by default (SPEC C3): ``Conv1d/2d/3d`` and their transposed forms, ``Linear`` (which
includes the linear layers inside transformer blocks), ``LSTM``/``GRU``/``RNN`` (the output
sequence) and ``MultiheadAttention`` (the attention output). A ``MultiheadAttention``'s
``out_proj`` is a ``Linear`` that the attention never calls (it reads ``out_proj.weight``
directly), so it is never selected: it would be a row without outputs; its weight belongs to the
attention layer. Layer names are module paths
(``features.3``); the index is the position in forward order once a forward pass has been seen,
else registration order.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from layerscope.errors import LayerSelectionError, LayerTooWideError
from layerscope.stats.covariance import format_bytes, too_wide_fix

__all__ = [
    "CHANNELS_FIRST_TYPES",
    "RECORDABLE_TYPES",
    "LayerInfo",
    "LayerSelectionError",
    "batch_axis",
    "channels_first",
    "check_widths",
    "describe_layers",
    "features_tensor",
    "layer_kind",
    "output_features",
    "select_layers",
]

_CONV = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)
_RECURRENT = (nn.LSTM, nn.GRU, nn.RNN)
#: Types whose (N, C, *spatial) outputs carry channels second; recorded only when included.
CHANNELS_FIRST_TYPES: tuple[type[nn.Module], ...] = (
    *_CONV,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
)
RECORDABLE_TYPES: tuple[type[nn.Module], ...] = (
    *_CONV,
    nn.Linear,
    *_RECURRENT,
    nn.MultiheadAttention,
)


@dataclass(frozen=True)
class LayerInfo:
    """A recorded layer.

    Attributes:
        name: module path in the model, e.g. ``"features.3"`` (unique).
        index: position among recorded layers, in forward order once known.
        type: class name, e.g. ``"Conv2d"``.
        kind: ``"conv"``, ``"linear"``, ``"recurrent"`` or ``"attention"``.
        num_features: output features (channels / units / hidden size x directions).
        num_parameters: trainable parameters of the module and its submodules.
    """

    name: str
    index: int
    type: str
    kind: str
    num_features: int
    num_parameters: int


def layer_kind(module: nn.Module) -> str:
    """``"conv"``, ``"linear"``, ``"recurrent"``, ``"attention"`` or ``"other"``.

    Example:
        >>> layer_kind(nn.ConvTranspose2d(2, 2, 3)), layer_kind(nn.GRU(2, 2)), layer_kind(nn.ReLU())
        ('conv', 'recurrent', 'other')
    """
    if isinstance(module, _CONV):
        return "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, _RECURRENT):
        return "recurrent"
    if isinstance(module, nn.MultiheadAttention):
        return "attention"
    return "other"


def output_features(module: nn.Module) -> int | None:
    """Width of a module's output, known from its configuration; else ``None`` (e.g. pooling).

    Example:
        >>> output_features(nn.Conv2d(3, 16, 3)), output_features(nn.LSTM(4, 8, bidirectional=True))
        (16, 16)
        >>> output_features(nn.MaxPool2d(2)) is None
        True
    """
    if isinstance(module, _CONV):
        return module.out_channels
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, _RECURRENT):
        hidden = module.proj_size if getattr(module, "proj_size", 0) else module.hidden_size
        return hidden * (2 if module.bidirectional else 1)
    if isinstance(module, nn.MultiheadAttention):
        return module.embed_dim
    if isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)):
        return module.num_features
    if isinstance(module, nn.GroupNorm):
        return module.num_channels
    return None


def check_widths(selected: Sequence[tuple[str, nn.Module]], max_features: int) -> None:
    """Refuse layers wider than ``max_features`` now, before any forward pass or allocation.

    Example:
        >>> check_widths([("fc", nn.Linear(2, 10))], max_features=8)
        Traceback (most recent call last):
        ...
        layerscope.errors.LayerTooWideError: layer 'fc' (Linear) has 10 output features; its covariance needs 800 B per phase; exclude it (Tracker(..., exclude=['fc'])) or raise the limit (Tracker(..., max_features=10)).
    """
    for name, module in selected:
        width = output_features(module)
        if width is not None and width > max_features:
            raise LayerTooWideError(
                f"layer {name!r} ({type(module).__name__}) has {width} output features; its "
                f"covariance needs {format_bytes(width * width * 8)} per phase; "
                f"{too_wide_fix(name, width)}"
            )


def _matches(name: str, module: nn.Module, selector: str | type) -> bool:
    if isinstance(selector, type):
        return isinstance(module, selector)
    return fnmatch.fnmatchcase(name, selector)


def _unforwarded(model: nn.Module) -> set[int]:
    """ids of modules whose ``forward`` is never called: MultiheadAttention's ``out_proj``."""
    return {
        id(module.out_proj)
        for module in model.modules()
        if isinstance(module, nn.MultiheadAttention)
    }


def select_layers(
    model: nn.Module,
    include: Iterable[str | type] | None = None,
    exclude: Iterable[str | type] | None = None,
) -> list[tuple[str, nn.Module]]:
    """Recordable ``(name, module)`` pairs of ``model``, in registration order.

    Names are module paths; a model that is itself a recordable layer is named by its class.

    Args:
        include: name patterns (``fnmatch``: ``"features.*"``) choosing among the recordable
            modules, and/or module types, which add every module of that type even outside
            :data:`RECORDABLE_TYPES` (its output must end in features, or be (N, C, ...) for
            convolution-like types). ``None`` means every module of :data:`RECORDABLE_TYPES`.
        exclude: name patterns or types removed from the selection.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
        >>> [name for name, _ in select_layers(model)]
        ['0', '3']
        >>> [name for name, _ in select_layers(model, exclude=[nn.Linear])]
        ['0']
    """
    include = list(include) if include is not None else None
    exclude = list(exclude or [])
    for selector in [*(include or []), *exclude]:
        if not isinstance(selector, (str, type)):
            raise LayerSelectionError(
                f"layer selectors are name patterns (str) or module types, got {selector!r}"
            )
    selected = []
    unforwarded = _unforwarded(model)
    for name, module in model.named_modules():
        if id(module) in unforwarded:
            continue
        name = name or type(module).__name__  # the model itself, when it is one layer
        recordable = isinstance(module, RECORDABLE_TYPES)
        if include is None:
            wanted = recordable
        else:
            wanted = any(
                isinstance(module, s)
                if isinstance(s, type)
                else recordable and _matches(name, module, s)
                for s in include
            )
        if wanted and not any(_matches(name, module, s) for s in exclude):
            selected.append((name, module))
    if not selected:
        names = [n for n, _ in model.named_modules() if n][:10]
        raise LayerSelectionError(
            f"no layer of {type(model).__name__} is selected (include={include!r}, "
            f"exclude={exclude!r}); its first modules are {names}. Recordable by default: "
            f"{', '.join(t.__name__ for t in RECORDABLE_TYPES)}."
        )
    return selected


_SPATIAL_AXES = {
    nn.Conv1d: 1, nn.ConvTranspose1d: 1,
    nn.Conv2d: 2, nn.ConvTranspose2d: 2,
    nn.Conv3d: 3, nn.ConvTranspose3d: 3,
}  # fmt: skip


def _unbatched(module: nn.Module, output: torch.Tensor) -> bool:
    """True for an unbatched conv output, e.g. (C, H, W) from Conv2d."""
    for conv_type, axes in _SPATIAL_AXES.items():
        if isinstance(module, conv_type):
            return output.dim() == axes + 1
    return False


def features_tensor(module: nn.Module, output: object) -> tuple[torch.Tensor, int] | None:
    """The recordable tensor in ``module``'s output and the axis that holds its features.

    A convolution's (N, C, *spatial) output comes back as is with feature axis 1, which
    :meth:`StreamingCovariance.update` copies faster than a channels-last view; other layers'
    outputs end in their features (all leading axes are samples: batch, tokens, positions).
    Recurrent layers: the output sequence (a ``PackedSequence``'s data holds exactly the real
    tokens). MultiheadAttention: the attention output. ``None`` when there is nothing to record
    (e.g. a module returned no tensor).

    Example:
        >>> tensor, axis = features_tensor(nn.Conv2d(3, 8, 1), torch.zeros(2, 8, 5, 5))
        >>> tuple(tensor.shape), axis
        ((2, 8, 5, 5), 1)
    """
    if isinstance(module, (*_RECURRENT, nn.MultiheadAttention)) and isinstance(output, tuple):
        output = output[0]
    if isinstance(output, PackedSequence):
        output = output.data
    if not isinstance(output, torch.Tensor) or output.dim() == 0:
        return None
    if isinstance(module, CHANNELS_FIRST_TYPES):
        if _unbatched(module, output):
            output = output.unsqueeze(0)
        return output, (1 if output.dim() > 1 else 0)
    if output.dim() == 1:
        output = output.unsqueeze(0)
    return output, output.dim() - 1


def batch_axis(module: nn.Module, output: torch.Tensor) -> int:
    """The axis of ``output`` that holds the samples: 1 for the (T, N, ...) outputs of layers
    built with ``batch_first=False`` (recurrent layers, attention, transformers), else 0.

    Example:
        >>> lstm = nn.LSTM(3, 4)               # batch_first=False: (T, N, H)
        >>> batch_axis(lstm, lstm(torch.zeros(5, 2, 3))[0])
        1
        >>> batch_axis(nn.LSTM(3, 4, batch_first=True), torch.zeros(2, 5, 4))
        0
    """
    return 1 if getattr(module, "batch_first", True) is False and output.dim() == 3 else 0


def channels_first(module: nn.Module, output: object) -> torch.Tensor | None:
    """The output of ``module`` as (N, C, *positions), the batch first: one feature map per input.

    Convolutions (and normalisation / pooling layers when included) come as they are; a Linear
    applied to (N, T, C) tokens becomes (N, C, T); a sequence layer's (T, N, C) output becomes
    (N, C, T); dense (N, C) outputs pass through. Feed it to
    :func:`layerscope.stats.samples.feature_map_matrix` for a matrix. ``None`` when there is
    nothing to record.

    Example:
        >>> conv = nn.Conv2d(3, 8, 3)
        >>> channels_first(conv, conv(torch.zeros(2, 3, 5, 5))).shape
        torch.Size([2, 8, 3, 3])
        >>> lstm = nn.LSTM(4, 6)
        >>> channels_first(lstm, lstm(torch.zeros(7, 2, 4))).shape   # (T, N, H) -> (N, H, T)
        torch.Size([2, 6, 7])
    """
    found = features_tensor(module, output)
    if found is None:
        return None
    tensor, _ = found
    if isinstance(module, CHANNELS_FIRST_TYPES) or tensor.dim() == 2:
        return tensor
    # features last (features_tensor's rule for all but channels-first layers)
    tensor = tensor.movedim(batch_axis(module, tensor), 0)
    return tensor.movedim(-1, 1)


def describe_layers(
    selected: Sequence[tuple[str, nn.Module]], widths: dict[str, int] | None = None
) -> list[LayerInfo]:
    """:class:`LayerInfo` records for selected modules, indexed in the given order.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4, 2))
        >>> [(i.name, i.index, i.kind, i.num_features) for i in describe_layers(select_layers(model))]
        [('0', 0, 'conv', 4), ('2', 1, 'linear', 2)]
    """
    infos = []
    for index, (name, module) in enumerate(selected):
        width = (widths or {}).get(name) or output_features(module)
        if width is None:
            width = -1
        params = sum(p.numel() for p in module.parameters(recurse=True) if p.requires_grad)
        infos.append(
            LayerInfo(name, index, type(module).__name__, layer_kind(module), width, params)
        )
    return infos
