"""Activation matrices as the similarity measures take them: checked, on one device, centred.

Inputs are activation matrices ``x`` (n, d1) and ``y`` (n, d2) whose rows are the same n samples
(torch or numpy; float64 inside unless ``precision="float32"``). Both are **centred explicitly**
(column means subtracted) before anything else, so every measure gives the same value on
uncentred data, whatever order the inputs come in.

Feature maps: pass ``spatial="positions"`` (every position of every image is a sample,
(N, C, H, W) -> (N*H*W, C)), ``"pool"`` (average over positions first, -> (N, C)) or
``"flatten"`` (-> (N, C*H*W), as Kornblith et al. do for CKA). N-d inputs are channels-first;
the conversion is :func:`layerscope.stats.samples.feature_map_matrix`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from layerscope.errors import OptionTypeError, SimilarityInputError, TooFewSamplesError
from layerscope.stats.samples import SPATIAL_MODES, Spatial, feature_map_matrix, shifted_copy

__all__ = ["Precision", "Spatial", "activation_matrix"]

Precision = Literal["float64", "float32"]

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def to_tensor(name: str, value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    else:
        try:
            array = np.asarray(value)
        except Exception as error:  # pragma: no cover - exotic objects
            raise OptionTypeError(
                f"{name} must be a torch.Tensor or numpy array, got {value!r}"
            ) from error
        if array.dtype == object or not np.issubdtype(array.dtype, np.number):
            raise OptionTypeError(
                f"{name} must be a numeric torch.Tensor or numpy array, got dtype {array.dtype}"
            )
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise OptionTypeError(f"{name} must hold real numbers, got dtype {tensor.dtype}")
    return tensor


def activation_matrix(x, spatial: Spatial | None = None, *, name: str = "x") -> torch.Tensor:
    """A layer output as a 2-D (samples, features) matrix; N-d inputs are channels-first.

    ``(n,)`` is one neuron, (n, 1). ``(N, C, *positions)`` needs ``spatial``: ``"positions"``
    (every position is a sample, -> (N * positions, C)), ``"pool"`` (mean over positions,
    -> (N, C)) or ``"flatten"`` (-> (N, C * positions)).

    Example:
        >>> x = torch.randn(8, 3, 4, 4)
        >>> activation_matrix(x, "positions").shape, activation_matrix(x, "pool").shape
        (torch.Size([128, 3]), torch.Size([8, 3]))
        >>> activation_matrix(x, "flatten").shape
        torch.Size([8, 48])
    """
    x = to_tensor(name, x)
    if x.dim() == 1:
        return x.unsqueeze(1)
    if x.dim() == 2:
        return x
    if x.dim() == 0:
        raise SimilarityInputError(f"{name} is a scalar; pass a (samples, features) matrix")
    if spatial in SPATIAL_MODES:
        return feature_map_matrix(x, spatial)
    raise SimilarityInputError(
        f"{name} has shape {tuple(x.shape)}; similarity measures take (samples, features) "
        f"matrices. For a channels-first feature map choose spatial='positions' (every position "
        f"is a sample), 'pool' (average over positions) or 'flatten' (one long vector per "
        f"sample); got spatial={spatial!r}"
    )


def pair(x, y, spatial, precision: str, min_samples: int):
    """Validated 2-D tensors on one device in the compute dtype, plus the inputs' epsilons."""
    if precision not in DTYPES:
        raise SimilarityInputError(f"precision must be 'float64' or 'float32', got {precision!r}")
    x = activation_matrix(x, spatial, name="x")
    y = activation_matrix(y, spatial, name="y")
    if x.shape[0] != y.shape[0]:
        raise SimilarityInputError(
            f"x has {x.shape[0]} samples (rows) and y has {y.shape[0]}; both must hold the same "
            f"samples in the same order (for feature maps of different sizes use spatial='pool')"
        )
    n = x.shape[0]
    if n < min_samples:
        raise TooFewSamplesError(f"this measure needs at least {min_samples} samples, got {n}")
    if x.shape[1] == 0 or y.shape[1] == 0:
        raise SimilarityInputError(f"x and y need at least one feature, got {x.shape}, {y.shape}")
    dtype = DTYPES[precision]
    eps = [epsilon(t.dtype, dtype) for t in (x, y)]
    return x, y.to(x.device), eps


def centred(
    x: torch.Tensor, dtype: torch.dtype, name: str, *, residual: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``x`` minus its column means, in ``dtype``, and the column means that rounding left.

    One new (n, d) tensor, centred in the wider of the two dtypes. The means are taken in the
    input's dtype (a float64 accumulation of float32 columns is several times
    slower); what they miss comes back as the second return, (d,), the means of the centred
    columns in ``dtype`` (None when ``residual`` is False), which the measures remove from their
    products exactly (``Xc^T Yc - n r_x r_y^T``) instead of with a second pass over the data.
    NaN or inf anywhere shows in the means, so no separate check reads the data.
    """
    if not x.dtype.is_floating_point:
        x = x.to(dtype)
    mean = x.mean(dim=0)
    if not bool(torch.isfinite(mean).all()):
        raise SimilarityInputError(f"{name} contains NaN or inf; remove those samples first")
    # Widening on CPU converts, then centres in place (a promoting torch.sub took 24 against
    # 10 ms for 10000 x 512 float32 into float64, one thread); narrowing subtracts first.
    out = shifted_copy(x, mean, torch.empty(x.shape, dtype=dtype, device=x.device))
    return out, (out.mean(dim=0) if residual else None)


def epsilon(input_dtype: torch.dtype, compute_dtype: torch.dtype) -> float:
    compute = torch.finfo(compute_dtype).eps
    if input_dtype.is_floating_point:
        return max(torch.finfo(input_dtype).eps, compute)
    return compute  # integers are exact
