"""A layer's units as rows of one matrix: finding the layer, reading its (units, inputs) matrix,
and removing a unit (or writing a new matrix) on a copy of the model, never on the user's."""

from __future__ import annotations

import difflib

import torch
from torch import nn

from layerscope.errors import OptionError, UnknownNameError
from layerscope.tracking.weights import unit_matrix

__all__ = ["get_layer", "layer_matrix", "unit_layers", "write_matrix", "zero_units"]


def unit_layers(model: nn.Module) -> list[str]:
    """Names of the modules whose units are rows of one matrix (convolutions, ``Linear``).

    Example:
        >>> unit_layers(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2, 2)))
        ['0', '3']
    """
    return [name for name, module in model.named_modules() if unit_matrix(module) is not None]


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The module called ``name`` (a module path), if its units are rows of one matrix.

    Example:
        >>> get_layer(nn.Sequential(nn.Linear(2, 2)), "1")
        Traceback (most recent call last):
        ...
        layerscope.errors.UnknownNameError: model Sequential has no layer '1' with unit rows; did you mean '0'? Layers: ['0']
    """
    modules = dict(model.named_modules())
    known = unit_layers(model)
    if name not in modules or name not in known:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.0)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        what = "a recurrent or attention layer" if name in modules else "no layer"
        if name in modules:
            raise OptionError(
                f"layer {name!r} of {type(model).__name__} is {what}: its units are not the rows "
                f"of one matrix. Layers with unit rows: {known[:20]}"
            )
        raise UnknownNameError(
            f"model {type(model).__name__} has no layer {name!r} with unit rows{hint} Layers: "
            f"{known[:20]}"
        )
    return modules[name]


def layer_matrix(model: nn.Module, name: str) -> torch.Tensor:
    """The (units, inputs) matrix of layer ``name`` in float64 (a copy).

    Example:
        >>> tuple(layer_matrix(nn.Sequential(nn.Conv2d(2, 3, 3)), "0").shape)
        (3, 18)
    """
    return unit_matrix(get_layer(model, name)).to(torch.float64, copy=True)


def _transposed_groups(module: nn.Module) -> None:
    if getattr(module, "transposed", False) and module.groups != 1:
        raise OptionError(
            f"a grouped transposed convolution ({type(module).__name__}, groups="
            f"{module.groups}) cannot have units removed or matrices written here"
        )


@torch.no_grad()
def zero_units(module: nn.Module, units) -> None:
    """Zero the weights and bias of output units ``units`` of ``module`` (in place: pass a copy).

    Example:
        >>> layer = nn.Linear(2, 3)
        >>> zero_units(layer, [1])
        >>> layer.weight[1].tolist(), layer.bias[1].item()
        ([0.0, 0.0], 0.0)
    """
    _transposed_groups(module)
    units = torch.as_tensor(list(units), dtype=torch.long)
    if getattr(module, "transposed", False):
        module.weight[:, units] = 0.0
    else:
        module.weight[units] = 0.0
    if getattr(module, "bias", None) is not None:
        module.bias[units] = 0.0


@torch.no_grad()
def write_matrix(module: nn.Module, matrix: torch.Tensor) -> None:
    """Write a (units, inputs) ``matrix`` back into ``module``'s weight (in place: pass a copy).

    A grouped convolution's matrix must keep zeros outside its groups (only the blocks are
    written back).

    Example:
        >>> layer = nn.Conv2d(1, 2, 2, bias=False)
        >>> write_matrix(layer, torch.ones(2, 4))
        >>> float(layer.weight.detach().sum())
        8.0
    """
    _transposed_groups(module)
    weight = module.weight
    matrix = matrix.to(weight.dtype)
    if getattr(module, "transposed", False):  # (in, out, *k) from (out, in * k)
        out_channels = weight.shape[1]
        block = matrix.reshape(out_channels, weight.shape[0], *weight.shape[2:]).transpose(0, 1)
        weight.copy_(block)
        return
    groups = getattr(module, "groups", 1)
    out_per_group, width = weight.shape[0] // groups, weight[0].numel()
    for g in range(groups):
        rows = slice(g * out_per_group, (g + 1) * out_per_group)
        block = matrix[rows, g * width : (g + 1) * width]
        weight[rows] = block.reshape(weight[rows].shape)
