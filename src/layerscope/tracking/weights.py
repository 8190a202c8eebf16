"""Per-epoch weight snapshots: relative weight change and distance from initialisation (SPEC C8).

- Relative weight change (Agrawal et al., WeightScale, eq. 1, after Neyshabur et al.):
  ``RWC_l = ||w_t - w_{t-1}||_1 / ||w_{t-1}||_1`` between consecutive epoch ends.
- Distance from initialisation (Heitmann, "Sources of Redundancy", section on training
  dynamics): ``||W_t - W_0||_F``.

``w`` is the vector of all *weight* parameters of the layer (parameters whose name has the word
``weight`` between underscores: ``weight``, ``in_proj_weight``, ``q_proj_weight``,
``out_proj.weight``, ``weight_ih_l0``, ``weight_hh_l1_reverse``, ``weight_hr_l0``), without
biases (``bias``, ``bias_ih_l0``, ``in_proj_bias``, ``bias_k``), as the paper's "vector of
weights associated with L". Exactly two copies are held per layer (the
initial weights and those of the previous epoch end); norms are accumulated parameter by
parameter in float64, without concatenating.

- Frame potential of the layer's normalised unit rows and each unit's contribution (Heitmann,
  section 3.1; :mod:`layerscope.stats.frame_potential`), for layers whose units are the rows of
  one matrix (:func:`unit_matrix`: convolutions of every kind, ``Linear``), as
  ``frame_potential`` and ``frame_potential_contribution[i]`` (unit ``i``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from layerscope.errors import StateMismatchError
from layerscope.stats.frame_potential import frame_potential

__all__ = ["WeightSnapshots", "unit_matrix", "weight_parameters"]

_CONV = (nn.modules.conv._ConvNd,)


def weight_parameters(module: nn.Module) -> list[torch.Tensor]:
    """The trainable weight tensors of ``module`` (and its submodules), biases excluded.

    A parameter is a weight when ``weight`` is one of the underscore-separated words of its
    name: recurrent layers' ``weight_ih_l0`` / ``weight_hh_l0``, attention's ``in_proj_weight``
    (or ``q_proj_weight``, ...) and ``out_proj.weight``.

    Example:
        >>> [tuple(p.shape) for p in weight_parameters(nn.Linear(3, 2))]
        [(2, 3)]
        >>> [tuple(p.shape) for p in weight_parameters(nn.LSTM(3, 2))]
        [(8, 3), (8, 2)]
        >>> [tuple(p.shape) for p in weight_parameters(nn.MultiheadAttention(4, 2))]
        [(12, 4), (4, 4)]
    """
    return [
        p
        for name, p in module.named_parameters(recurse=True)
        if p.requires_grad and "weight" in name.rsplit(".", 1)[-1].split("_")
    ]


def unit_matrix(module: nn.Module) -> torch.Tensor | None:
    """The layer's weights as (units, inputs): one row per output unit; ``None`` when the layer's
    units are not the rows of one matrix (recurrent layers, attention).

    ``Linear``: its (out, in) weight. Convolutions: (out, in * prod(kernel)) as in Heitmann
    3.1; a grouped convolution (depthwise included) is written as the dense matrix, with zeros
    where a unit does not see an input channel, so that rows of different groups are
    orthogonal as they are in the layer. Transposed convolutions: the same, from their (in,
    out / groups, *kernel) weight. The tensor shares nothing with the module (a float copy is
    made only where reshaping needs one).

    Example:
        >>> tuple(unit_matrix(nn.Conv2d(3, 8, 3)).shape)
        (8, 27)
        >>> depthwise = unit_matrix(nn.Conv2d(4, 4, 3, groups=4, bias=False))
        >>> tuple(depthwise.shape), int((depthwise != 0).sum(dim=1).max())
        ((4, 36), 9)
        >>> unit_matrix(nn.LSTM(2, 3)) is None
        True
    """
    if isinstance(module, nn.Linear):
        return module.weight.detach()
    if not isinstance(module, _CONV):
        return None
    weight = module.weight.detach()
    if module.transposed:  # (in, out / groups, *k) -> (out, in / groups, *k), group by group
        groups, in_per_group = module.groups, weight.shape[0] // module.groups
        parts = weight.unflatten(0, (groups, in_per_group)).transpose(1, 2)
        weight = parts.flatten(0, 1)
    out_channels, in_per_group = weight.shape[:2]
    kernel = weight[0, 0].numel()
    if module.groups == 1:
        return weight.reshape(out_channels, -1)
    out_per_group = out_channels // module.groups
    dense = weight.new_zeros(out_channels, module.groups * in_per_group * kernel)
    for g in range(module.groups):
        rows = slice(g * out_per_group, (g + 1) * out_per_group)
        columns = slice(g * in_per_group * kernel, (g + 1) * in_per_group * kernel)
        dense[rows, columns] = weight[rows].reshape(out_per_group, -1)
    return dense


def frame_potential_values(module: nn.Module) -> dict[str, float]:
    """``frame_potential`` and ``frame_potential_contribution[i]`` of a layer, or ``{}``.

    Example:
        >>> layer = nn.Linear(2, 2, bias=False)
        >>> with torch.no_grad():
        ...     _ = layer.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
        >>> {k: round(v, 6) for k, v in frame_potential_values(layer).items()}
        {'frame_potential': 3.0, 'frame_potential_contribution[0]': 1.5, 'frame_potential_contribution[1]': 1.5}
    """
    matrix = unit_matrix(module)
    if matrix is None:
        return {}
    total, contributions = frame_potential(matrix)
    values = {"frame_potential": total}
    for i, c in enumerate(contributions.tolist()):
        values[f"frame_potential_contribution[{i}]"] = c
    return values


class WeightSnapshots:
    """Relative weight change and distance from initialisation of named layers, per epoch.

    Args:
        layers: ``(name, module)`` pairs; layers without weight parameters are skipped.
        device: where the two copies live; default: beside the parameters.
        frame_potential: also return each layer's frame potential and unit contributions
            (an m x m or n x n product per layer per call).

    Example:
        >>> layer = nn.Linear(2, 2, bias=False)
        >>> with torch.no_grad():
        ...     _ = layer.weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 0.0]]))
        >>> snapshots = WeightSnapshots([("fc", layer)])
        >>> with torch.no_grad():
        ...     _ = layer.weight.add_(0.5)
        >>> values = snapshots.step()["fc"]
        >>> values["relative_weight_change"]   # |0.5| * 4 / (1 + 1 + 2 + 0)
        0.5
        >>> values["distance_from_init"]       # sqrt(4 * 0.25)
        1.0
    """

    def __init__(
        self,
        layers: Sequence[tuple[str, nn.Module]],
        device: torch.device | str | None = None,
        *,
        frame_potential: bool = True,
    ) -> None:
        self.device = None if device is None else torch.device(device)
        self.frame_potential = frame_potential
        self._modules = dict(layers)
        self._parameters: dict[str, list[torch.Tensor]] = {}
        self._initial: dict[str, list[torch.Tensor]] = {}
        self._previous: dict[str, list[torch.Tensor]] = {}
        self._named: dict[str, list[tuple[int, str]]] = {}
        for name, module in layers:
            params = weight_parameters(module)
            if not params:
                continue
            self._parameters[name] = params
            self._named[name] = [(id(p), n) for n, p in module.named_parameters()]
            self._initial[name] = [self._copy(p) for p in params]
            self._previous[name] = [self._copy(p) for p in params]

    def _copy(self, parameter: torch.Tensor) -> torch.Tensor:
        return parameter.detach().to(self.device or parameter.device, copy=True)

    def set_initial(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Replace the initial weights W_0 with those in a model ``state_dict`` (keys
        ``<layer>.<parameter>``), e.g. to continue a run from a checkpoint."""
        for name, params in self._parameters.items():
            module_params = dict(self._named[name])
            for i, p in enumerate(params):
                key = f"{name}.{module_params[id(p)]}"
                if key not in state_dict:
                    raise StateMismatchError(
                        f"the initial weights have no entry {key!r} for layer {name!r}; pass the "
                        f"state_dict of this model at epoch 0 (the trainer keeps it in "
                        f"checkpoints/initial.pt)"
                    )
                self._initial[name][i].copy_(state_dict[key])

    @property
    def layers(self) -> list[str]:
        return list(self._parameters)

    @torch.no_grad()
    def step(self) -> dict[str, dict[str, float]]:
        """Statistics since the previous call (or construction); then remember the weights.

        A layer whose previous weights are all zero has no relative weight change (the ratio is
        undefined); only its distance from initialisation is returned.
        """
        results: dict[str, dict[str, float]] = {}
        for name, params in self._parameters.items():
            change = torch.zeros((), dtype=torch.float64)
            previous_norm = torch.zeros((), dtype=torch.float64)
            squared_distance = torch.zeros((), dtype=torch.float64)
            for p, previous, initial in zip(
                params, self._previous[name], self._initial[name], strict=True
            ):
                current = p.detach().to(previous.device, torch.float64)
                change += (current - previous).abs().sum().cpu()
                previous_norm += previous.to(torch.float64).abs().sum().cpu()
                squared_distance += (current - initial).square().sum().cpu()
                previous.copy_(p.detach())
            values = {"distance_from_init": float(squared_distance.sqrt())}
            if previous_norm > 0:
                values["relative_weight_change"] = float(change / previous_norm)
            if self.frame_potential:
                values.update(frame_potential_values(self._modules[name]))
            results[name] = values
        return results
