"""Independent numpy float64 computations the integration tests compare the records with."""

from __future__ import annotations

import numpy as np
import torch


def as_samples(output: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) -> (N*H*W, C); (N, T, D) -> (N*T, D); (N, D) as is; float64."""
    array = output.detach().double().numpy()
    if array.ndim == 4:
        array = array.transpose(0, 2, 3, 1)
    return array.reshape(-1, array.shape[-1])


def spectrum(samples: np.ndarray) -> np.ndarray:
    """Eigenvalues of the biased covariance (divided by N), descending."""
    centred = samples - samples.mean(axis=0)
    return np.sort(np.linalg.eigvalsh(centred.T @ centred / len(samples)))[::-1]


def saturation(samples: np.ndarray, delta: float = 0.99) -> float:
    """Smallest k whose top-k eigenvalues reach delta of the variance, over the width."""
    eigenvalues = np.clip(spectrum(samples), 0.0, None)
    fractions = np.cumsum(eigenvalues) / eigenvalues.sum()
    return (int(np.argmax(fractions >= delta * (1 - 1e-12))) + 1) / samples.shape[1]


def capture(modules: dict[str, torch.nn.Module], keep) -> tuple[dict, list]:
    """Forward hooks appending each named module's output while ``keep()`` says so."""
    captured: dict[str, list[np.ndarray]] = {name: [] for name in modules}
    handles = []
    for name, module in modules.items():

        def hook(module, args, output, name=name):
            if keep():
                out = output[0] if isinstance(output, tuple) else output
                captured[name].append(as_samples(out))

        handles.append(module.register_forward_hook(hook))
    return captured, handles
