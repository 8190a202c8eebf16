"""Spectrum statistics of the digits dataset's pixel covariance, streamed in batches.

    python examples/digits_spectrum.py

The 1797 scikit-learn digits are 8x8 images: 64 features. The covariance is accumulated 100 images
at a time, as a layer's output would be during an epoch, and then read once.
"""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits

from layerscope.stats import StreamingCovariance, compute_statistics


def main() -> None:
    images = torch.from_numpy(load_digits().data)  # (1797, 64) float64 pixel intensities 0..16
    covariance = StreamingCovariance(num_features=images.shape[1])
    for batch in images.split(100):
        covariance.update(batch)
    for delta in (0.9, 0.99):
        stats = compute_statistics(covariance.compute(), delta=delta)
        print(f"delta = {delta}")
        for name, value in stats.values.items():
            print(f"  {name:<20} {value:10.4f}")
        print(f"  flags: {sorted(stats.flags) or 'none'}")


if __name__ == "__main__":
    main()
