"""Figures of RWC clusters (WeightScale figs. 1-4): curves coloured by cluster, the PCA plane,
and the scree / silhouette evidence for k."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from layerscope.weights.clusters import RWCClusters

__all__ = ["rwc_cluster_curves", "rwc_cluster_plane", "rwc_cluster_scree"]


def _colour(label: int) -> str:
    return f"C{int(label) % 10}"


def _epochs(fitted: RWCClusters, epochs) -> list:
    return list(epochs) if epochs is not None else list(range(fitted.clipped_.shape[1]))


def rwc_cluster_curves(fitted: RWCClusters, epochs=None, *, title: str = "") -> Figure:
    """Each layer's clipped RWC trajectory, one panel per cluster, coloured by cluster (figs.
    2-4); ``epochs`` labels the x axis with real epoch numbers.

    Example:
        >>> rwc = np.array([[0.9, 0.5, 0.3], [0.8, 0.5, 0.2], [0.1, 0.1, 0.1], [0.1, 0.2, 0.1]])
        >>> len(rwc_cluster_curves(RWCClusters(k=2).fit(rwc), epochs=[1, 2, 3]).axes)
        2
    """
    x = _epochs(fitted, epochs)
    figure = Figure(figsize=(4.0 * fitted.k_, 3.2), layout="constrained")
    grid = figure.subplots(1, fitted.k_, squeeze=False, sharey=True)[0]
    for cluster, axes in enumerate(grid):
        members = np.flatnonzero(fitted.labels_ == cluster)
        for i in members:
            axes.plot(x, fitted.clipped_[i], color=_colour(cluster), alpha=0.6, linewidth=1)
        axes.plot(x, fitted.cluster_centers_[cluster], color="black", linewidth=2,
                  label="centre")  # fmt: skip
        names = [str(fitted.layers_[i]) for i in members]
        shown = ", ".join(names[:4]) + (f", ... ({len(names)})" if len(names) > 4 else "")
        axes.set_title(f"cluster {cluster}: {shown}", fontsize=8)
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
    grid[0].set_ylabel("relative weight change (clipped)")
    grid[0].legend(fontsize=8)
    if title:
        figure.suptitle(title)
    return figure


def rwc_cluster_plane(fitted: RWCClusters, *, title: str = "") -> Figure:
    """Layers on the first two principal components of their RWC trajectories (fig. 1).

    Example:
        >>> rwc = np.array([[0.9, 0.5, 0.3], [0.8, 0.5, 0.2], [0.1, 0.1, 0.1], [0.1, 0.2, 0.1]])
        >>> len(rwc_cluster_plane(RWCClusters(k=2).fit(rwc)).axes)
        1
    """
    figure = Figure(figsize=(5.0, 4.2), layout="constrained")
    axes = figure.subplots()
    for cluster in range(fitted.k_):
        points = fitted.embedding_[fitted.labels_ == cluster]
        axes.scatter(points[:, 0], points[:, 1], color=_colour(cluster), label=f"cluster {cluster}")
    if len(fitted.layers_) <= 40:
        for name, (px, py) in zip(fitted.layers_, fitted.embedding_, strict=True):
            axes.annotate(str(name), (px, py), fontsize=6, alpha=0.7)
    axes.set_xlabel("PC 1")
    axes.set_ylabel("PC 2")
    axes.legend(fontsize=8)
    axes.set_title(title or "layers by RWC trajectory (PCA)")
    return figure


def rwc_cluster_scree(fitted: RWCClusters) -> Figure:
    """Inertia (scree) and mean silhouette against k, the chosen k marked.

    Example:
        >>> rwc = np.array([[0.9, 0.5], [0.8, 0.5], [0.1, 0.1], [0.1, 0.2], [0.5, 0.5]])
        >>> len(rwc_cluster_scree(RWCClusters().fit(rwc)).axes)
        2
    """
    figure = Figure(figsize=(8.0, 3.2), layout="constrained")
    scree, silhouette = figure.subplots(1, 2)
    ks = sorted(fitted.scree_)
    scree.plot(ks, [fitted.scree_[k] for k in ks], marker="o")
    scree.set_ylabel("inertia")
    silhouette.plot(ks, [fitted.silhouettes_[k] for k in ks], marker="o", color="tab:green")
    silhouette.set_ylabel("mean silhouette")
    for axes in (scree, silhouette):
        axes.axvline(fitted.k_, color="grey", linestyle="--", label=f"k = {fitted.k_}")
        axes.set_xlabel("k")
        axes.grid(alpha=0.3)
    silhouette.legend(fontsize=8)
    return figure
