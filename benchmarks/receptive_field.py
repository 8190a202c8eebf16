"""Time of a receptive-field analysis of a ResNet-50-sized graph, against one forward pass.

    python benchmarks/receptive_field.py [--input 224] [--repeats 5]

The model is layerscope's ``resnet50`` (torchvision's layout: bottleneck blocks 3-4-6-3, 53
convolutions, about 175 traced operations, 25.6 M parameters); torchvision itself is not needed.
"cold" is the first call in the process (it loads torch.fx and the meta-tensor kernels once);
the other rows are medians of warm calls. "x forward" divides by the median time of one plain
forward pass of a single image at the same size, measured in the same process. Target (issue 6):
under a second for the analysis.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from layerscope.analysis.complexity import count_flops
from layerscope.analysis.receptive_field import receptive_field
from layerscope.models import create_model


def median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    model = create_model("resnet50", num_classes=1000).eval()
    size = args.input
    start = time.perf_counter()
    rf = receptive_field(model, size)
    cold = time.perf_counter() - start

    x = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        model(x)
        forward = median_seconds(lambda: model(x), args.repeats)

    rows = [
        ("receptive_field, cold (fx)", cold),
        ("receptive_field, fx", median_seconds(lambda: receptive_field(model, size), args.repeats)),
        (
            "receptive_field, hooks",
            median_seconds(lambda: receptive_field(model, size, tracer="hooks"), args.repeats),
        ),
        ("strides_to_remove (what-if)", median_seconds(rf.strides_to_remove, args.repeats)),
        ("count_flops", median_seconds(lambda: count_flops(model, size), args.repeats)),
        ("one forward pass (reference)", forward),
    ]
    operations = len(rf._trace.ops)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; resnet50 at {size} px: "
        f"{len(rf.layers_)} recorded layers, {operations} traced operations"
    )
    header = f"{'what':<30} {'ms':>9} {'x forward':>10}"
    print(header)
    print("-" * len(header))
    for name, seconds in rows:
        print(f"{name:<30} {seconds * 1e3:>9.1f} {seconds / forward:>10.2f}")


if __name__ == "__main__":
    main()
