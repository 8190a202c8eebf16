"""Study e: layers cluster by their relative-weight-change trajectories (seed 002, WeightScale).

The zoo's ResNet18 with the CIFAR stem (``resnet18_cifar``) at width 1/8 on the embedded digits
data (32 px, augmented), SGD with momentum 0.9, lr 0.05, weight decay 5e-4, batch size 64,
12 epochs, seed 0. The weights of its 21 convolutions and dense layer are kept in memory at
initialisation and after every epoch; ``layerscope.weights.rwc_matrix`` turns them into the
layer x epoch RWC matrix (eq. 1: ``||w_t - w_{t-1}||_1 / ||w_{t-1}||_1``) and
``layerscope.weights.RWCClusters`` clusters its rows with K-Means++ after the 2-sd outlier rule
(eq. 2), k chosen automatically by the best mean silhouette over k = 2..10. The paper's reading
holds when the clusters group layers of similar depth (each cluster a few contiguous runs of
layers), RWC falls over training, and later layers change less than earlier ones (its CIFAR-10
ResNet-50 figure 2).

    layerscope study rwc_clusters              # under a minute on 2 CPU cores
    layerscope study rwc_clusters -- --quick   # 16 px, 5 epochs
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn
from torch.utils.data import DataLoader

from layerscope.datasets import load_dataset
from layerscope.lab.studies import StudyTimer, study_figure, study_main, write_results
from layerscope.models import create_model
from layerscope.weights import RWCClusters, rwc_matrix

FULL = {"epochs": 12, "resolution": 32}
QUICK = {"epochs": 5, "resolution": 16}


def _weights(model: nn.Module) -> dict[str, list[torch.Tensor]]:
    """Each convolution's and dense layer's weight (biases left out, as eq. 1), cloned."""
    return {name: [module.weight.detach().clone()] for name, module in model.named_modules()
            if isinstance(module, (nn.Conv2d, nn.Linear))}  # fmt: skip


def _train(epochs: int, resolution: int):
    """Snapshots {epoch: {layer: [weight]}} (0 = initialisation) and the final test accuracy."""
    torch.manual_seed(0)
    splits = load_dataset("digits", resolution=resolution, seed=0)
    model = create_model("resnet18_cifar", width=0.125, num_classes=10, in_channels=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(0)
    loader = DataLoader(splits.train, batch_size=64, shuffle=True, generator=generator)
    snapshots = {0: _weights(model)}
    for epoch in range(1, epochs + 1):
        splits.set_epoch(epoch - 1)
        model.train()
        for x, y in loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        snapshots[epoch] = _weights(model)
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in DataLoader(splits.test, batch_size=120):
            correct += int((model(x).argmax(1) == y).sum())
    return snapshots, correct / len(splits.test)


def contiguous_runs(labels) -> int:
    """How many runs of equal neighbouring labels a sequence has (k for perfectly contiguous
    clusters, up to len(labels) for interleaved ones).

    Example:
        >>> contiguous_runs([0, 0, 1, 1, 1, 2]), contiguous_runs([0, 1, 0, 1])
        (3, 4)
    """
    labels = list(labels)
    return 1 + sum(a != b for a, b in pairwise(labels)) if labels else 0


def _figure(matrix, clusters, path) -> None:
    import matplotlib

    epochs = list(matrix.columns)
    with study_figure(path, 1, 3, figsize=(14, 3.8), dpi=100) as (_, axes):
        colors = matplotlib.colormaps.get_cmap("tab10")
        for trajectory, label in zip(clusters.clipped_, clusters.labels_, strict=True):
            axes[0].plot(epochs, trajectory, color=colors(label), alpha=0.45, linewidth=1)
        for c, center in enumerate(clusters.cluster_centers_):
            members = int((clusters.labels_ == c).sum())
            axes[0].plot(epochs, center, color=colors(c), linewidth=3,
                         label=f"cluster {c} ({members} layers)")  # fmt: skip
        axes[0].set_yscale("log")
        axes[0].set_xlabel("epoch")
        axes[0].set_ylabel("RWC (eq. 1, outliers clipped)")
        axes[0].set_title("clustered RWC curves (thick: cluster centres)", fontsize=9)
        axes[0].legend(fontsize=7)
        depth = np.arange(1, len(matrix) + 1)
        axes[1].scatter(depth, clusters.clipped_.mean(1), c=[colors(c) for c in clusters.labels_])
        axes[1].set_xticks(depth, [name.replace("layer", "L") for name in matrix.index],
                           rotation=90, fontsize=6)  # fmt: skip
        axes[1].set_ylabel("mean RWC over training")
        axes[1].set_title("layers in forward order, coloured by cluster", fontsize=9)
        ks = list(clusters.silhouettes_)
        axes[2].plot(ks, [clusters.silhouettes_[k] for k in ks], marker="o", label="silhouette")
        axes[2].axvline(clusters.k_, color="grey", linestyle=":")
        axes[2].set_xlabel("k")
        axes[2].set_ylabel("mean silhouette")
        scree = axes[2].twinx()
        scree.plot(
            ks, [clusters.scree_[k] for k in ks], color="black", linestyle="--", label="scree"
        )
        scree.set_ylabel("K-Means inertia (scree)")
        axes[2].set_title(f"automatic k = {clusters.k_}", fontsize=9)


def run(out: str = "logs/studies/rwc_clusters", quick: bool = False) -> dict:
    """Train, cluster the RWC trajectories, write results.json and a figure."""
    timer = StudyTimer()
    torch.set_num_threads(1)
    plan = QUICK if quick else FULL
    snapshots, accuracy = _train(plan["epochs"], plan["resolution"])
    matrix = rwc_matrix(snapshots)
    clusters = RWCClusters(k="auto", seed=0).fit(matrix)
    depth = np.arange(len(matrix))
    means = clusters.clipped_.mean(1)
    rows = [{"index": i + 1, "layer": layer, "cluster": int(clusters.labels_[i]),
             "rwc_epoch_1": float(matrix.iloc[i, 0]), "rwc_last": float(matrix.iloc[i, -1]),
             "rwc_mean": float(means[i])}
            for i, layer in enumerate(matrix.index)]  # fmt: skip
    column_means = clusters.clipped_.mean(0)
    epoch_trend = spearmanr(np.arange(len(column_means)), column_means).statistic
    summary = {
        "k": clusters.k_,
        "silhouettes": clusters.silhouettes_,
        "silhouette": clusters.silhouette_,
        "runs": contiguous_runs(clusters.labels_),
        "layers": len(matrix),
        "spearman_depth_vs_mean_rwc": float(spearmanr(depth, means).statistic),
        "mean_rwc_first_epoch": float(column_means[0]),
        "mean_rwc_last_epoch": float(column_means[-1]),
        "spearman_epoch_vs_mean_rwc": float(epoch_trend),
        "test_accuracy": accuracy,
        "centers": clusters.cluster_centers_,
    }
    _figure(matrix, clusters, f"{out}/rwc_clusters.png")
    results = {"study": "rwc_clusters", "quick": quick, "plan": plan, "rows": rows,
               "summary": summary, **timer.resources()}  # fmt: skip
    write_results(out, results)
    return results


def _summary(results) -> str:
    summary = results["summary"]
    return (f"automatic k {summary['k']} (silhouette {summary['silhouette']:.2f}); "
            f"{summary['runs']} contiguous runs over {summary['layers']} layers; "
            f"Spearman(depth, mean RWC) {summary['spearman_depth_vs_mean_rwc']:.2f}; "
            f"Spearman(epoch, mean RWC) {summary['spearman_epoch_vs_mean_rwc']:.2f}; "
            f"test accuracy {summary['test_accuracy']:.3f}")  # fmt: skip


if __name__ == "__main__":
    study_main("rwc_clusters", run, __doc__, summary=_summary)
