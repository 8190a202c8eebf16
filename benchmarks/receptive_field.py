"""Time of a receptive-field analysis of a ResNet-50-sized graph, against one forward pass.

    python benchmarks/receptive_field.py [--input 224] [--repeats 5] [--threads N]

The model is layerscope's ``resnet50`` (torchvision's layout: bottleneck blocks 3-4-6-3, 53
convolutions, about 175 traced operations, 25.6 M parameters); torchvision itself is not needed.
"first call" is the first analysis in the process; "first meta" the first at a size above
256x256, which runs on meta tensors (shapes only) and loads torch's Python meta kernels once;
the other rows are medians of warm calls. Up to 256x256 the model runs on real tensors. "x forward" divides by the median time of one plain
forward pass of a single image at the same size, measured in the same process. Target (issue 6):
under a second for the analysis.
"""

from __future__ import annotations

import argparse
import time

import torch
from covariance import median_seconds  # benchmarks/ is on sys.path when run as a script

from layerscope.architecture import count_flops, receptive_field
from layerscope.models import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=int, default=224)
    parser.add_argument("--large", type=int, default=512, help="a size traced on meta tensors")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = create_model("resnet50", num_classes=1000).eval()
    size, large = args.input, args.large

    def timed_once(function) -> float:
        start = time.perf_counter()
        function()
        return time.perf_counter() - start

    cold = timed_once(lambda: receptive_field(model, size))
    cold_meta = timed_once(lambda: receptive_field(model, large))
    forwards = {}
    for side in (size, large):
        x = torch.zeros(1, 3, side, side)
        with torch.no_grad():
            model(x)
            forwards[side] = median_seconds(lambda x=x: model(x), args.repeats)
    small = receptive_field(model, 32)  # a border exists at 32 px: the what-if has work to do

    def warm(side, **options):
        return median_seconds(lambda: receptive_field(model, side, **options), args.repeats)

    rows = [
        (f"receptive_field {size} px, first call", size, cold),
        (f"receptive_field {size} px, fx", size, warm(size)),
        (f"receptive_field {size} px, hooks", size, warm(size, tracer="hooks")),
        (f"receptive_field {large} px, first meta", large, cold_meta),
        (f"receptive_field {large} px, meta", large, warm(large)),
        ("strides_to_remove at 32 px", size, median_seconds(small.strides_to_remove, args.repeats)),
        (f"count_flops {size} px", size, median_seconds(lambda: count_flops(model, size), 3)),
        (f"one forward pass {size} px", size, forwards[size]),
        (f"one forward pass {large} px", large, forwards[large]),
    ]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; resnet50: "
        f"{len(small.layers_)} recorded layers, {len(small._trace.ops)} traced operations"
    )
    header = f"{'what':<36} {'ms':>9} {'x forward':>10}"
    print(header)
    print("-" * len(header))
    for name, side, seconds in rows:
        print(f"{name:<36} {seconds * 1e3:>9.1f} {seconds / forwards[side]:>10.2f}")


if __name__ == "__main__":
    main()
