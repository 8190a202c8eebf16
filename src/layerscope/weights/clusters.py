"""K-Means clusters of layers by their RWC trajectories (WeightScale, seed 002, sections 3-4).

The layers are the samples and the epochs the features of the (layers, epochs) RWC matrix.
Outliers are replaced first (eq. 2, :func:`~layerscope.weights.rwc.clip_outliers`); K-Means
with k-means++ seeding (scikit-learn; ``n_init=10``, ``max_iter=300``, seeded) then groups
layers that change alike; k is chosen by the mean silhouette over k = 2..min(10, L - 1) (the
inertia "scree" curve, which the paper read by eye, is kept beside it as evidence) or given. PCA
to 2-D places the layers on a plane for the picture (fig. 1).

Section 4.2 clusters within primitive groups: :func:`primitive_groups` names each layer's group
(depthwise, pointwise, squeeze-excitation / gate convolutions, dense, other convolutions,
recurrent, attention) and :func:`cluster_by_primitive` fits one estimator per group.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd
from torch import nn

from layerscope.errors import OptionError
from layerscope.weights.rwc import clip_outliers

__all__ = ["PRIMITIVES", "RWCClusters", "cluster_by_primitive", "primitive_groups"]

PRIMITIVES = ("depthwise", "pointwise", "gate", "dense", "conv", "recurrent", "attention")
_GATE_NAME = re.compile(r"(^|[._])(se|squeeze|excit\w*|gate\w*|attn|attention)([._\d]|$)", re.I)


class RWCClusters:
    """Cluster layers by their RWC trajectories, scikit-learn style.

    Args:
        k: number of clusters, or ``"auto"``: the best mean silhouette over
            ``k = 2..min(max_k, L - 1)``.
        seed: ``random_state`` of K-Means (and nothing else).
        clip: replace outliers by eq. 2 first (``n_sd`` standard deviations); the clipped
            matrix is what K-Means sees.
        n_sd: the outlier cut-off in standard deviations of each layer's trajectory.
        max_k: the largest k tried by ``"auto"``.
        n_init, max_iter: K-Means settings (scikit-learn's meaning).

    Fitted attributes (L layers, E epochs):
        ``clipped_`` (L, E) the matrix clustered; ``labels_`` (L,) cluster of each layer,
        numbered by the first layer in forward order that joins it (0 holds the first layer);
        ``k_``; ``cluster_centers_`` (k_, E) in that numbering; ``inertia_``; ``silhouette_``
        (NaN when k_ is 1 or L); ``scree_`` and ``silhouettes_`` ({k: value} over the k tried,
        or just k_); ``embedding_`` (L, 2), the PCA plane; ``layers_`` the row names.

    Example:
        >>> rwc = np.array([[0.9, 0.5, 0.3], [0.8, 0.5, 0.2], [0.1, 0.1, 0.1], [0.1, 0.2, 0.1]])
        >>> clusters = RWCClusters(k="auto", seed=0).fit(rwc)
        >>> clusters.k_, clusters.labels_.tolist(), clusters.embedding_.shape
        (2, [0, 0, 1, 1], (4, 2))
    """

    def __init__(
        self,
        k: int | str = "auto",
        *,
        seed: int = 0,
        clip: bool = True,
        n_sd: float = 2.0,
        max_k: int = 10,
        n_init: int = 10,
        max_iter: int = 300,
    ) -> None:
        self.k = k
        self.seed = seed
        self.clip = clip
        self.n_sd = n_sd
        self.max_k = max_k
        self.n_init = n_init
        self.max_iter = max_iter

    def _candidates(self, layers: int) -> list[int]:
        if self.k == "auto":
            top = min(self.max_k, layers - 1)
            if top < 2:
                raise OptionError(
                    f"k='auto' compares k = 2..L-1 and needs at least 3 layers, got {layers}; "
                    f"pass k=1..{layers}"
                )
            return list(range(2, top + 1))
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)):
            raise OptionError(f"k must be a positive int or 'auto', got {self.k!r}")
        if not 1 <= self.k <= layers:
            raise OptionError(f"k={self.k} clusters for {layers} layers: pass k=1..{layers}")
        return [int(self.k)]

    def fit(self, matrix, y=None) -> RWCClusters:
        """Fit on a (layers, epochs) matrix (array or :func:`rwc_matrix` DataFrame); ``y`` is
        ignored (scikit-learn's convention)."""
        from sklearn.cluster import KMeans
        from sklearn.metrics import silhouette_score

        names = list(matrix.index) if isinstance(matrix, pd.DataFrame) else None
        values = np.array(matrix, dtype=np.float64)
        if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
            raise OptionError(f"the RWC matrix must be (layers, epochs), got {values.shape}")
        if self.clip:
            values = clip_outliers(values, self.n_sd)
        elif not np.isfinite(values).all():
            raise OptionError("the RWC matrix has non-finite values; fit with clip=True")
        layers = len(values)
        self.layers_ = names if names is not None else list(range(layers))
        self.clipped_ = values
        self.scree_, self.silhouettes_, fits = {}, {}, {}
        for k in self._candidates(layers):
            model = KMeans(n_clusters=k, init="k-means++", n_init=self.n_init,
                           max_iter=self.max_iter, random_state=self.seed).fit(values)  # fmt: skip
            fits[k] = model
            self.scree_[k] = float(model.inertia_)
            distinct = len(np.unique(model.labels_))
            self.silhouettes_[k] = (float(silhouette_score(values, model.labels_))
                                    if 2 <= distinct <= layers - 1 else float("nan"))  # fmt: skip
        if self.k == "auto":
            self.k_ = max(fits, key=lambda k: np.nan_to_num(self.silhouettes_[k], nan=-2.0))
        else:
            self.k_ = int(self.k)
        best = fits[self.k_]
        self.labels_, order = _first_seen(best.labels_)
        self.cluster_centers_ = best.cluster_centers_[order]
        self.inertia_ = float(best.inertia_)
        self.silhouette_ = self.silhouettes_[self.k_]
        self.embedding_ = _plane(values)
        return self

    def fit_predict(self, matrix, y=None) -> np.ndarray:
        """``fit(matrix).labels_``."""
        return self.fit(matrix).labels_


def _first_seen(labels: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Renumber labels in order of first appearance; ``order[new] = old``."""
    order = list(dict.fromkeys(int(x) for x in labels))
    mapping = {old: new for new, old in enumerate(order)}
    return np.array([mapping[int(x)] for x in labels]), order


def _plane(values: np.ndarray) -> np.ndarray:
    """PCA coordinates (L, 2); zero columns where the data has fewer than 2 dimensions."""
    from sklearn.decomposition import PCA

    components = min(2, *values.shape)
    plane = np.zeros((len(values), 2))
    if components > 0 and len(values) > 1:
        plane[:, :components] = PCA(n_components=components).fit_transform(values)
    return plane


def _primitive(name: str, module: nn.Module) -> str | None:
    if isinstance(module, nn.Linear):
        return "dense"
    if isinstance(module, (nn.LSTM, nn.GRU, nn.RNN)):
        return "recurrent"
    if isinstance(module, nn.MultiheadAttention):
        return "attention"
    if not isinstance(module, nn.modules.conv._ConvNd):
        return None
    if module.groups > 1 and module.groups == module.in_channels:
        return "depthwise"
    pointwise = all(k == 1 for k in module.kernel_size) and module.groups == 1
    if pointwise and _GATE_NAME.search(name):
        return "gate"
    return "pointwise" if pointwise else "conv"


def primitive_groups(model: nn.Module, layers=None) -> dict[str, str]:
    """Each layer's primitive (one of :data:`PRIMITIVES`), in the order of ``model``.

    ``depthwise``: ``groups == in_channels`` (> 1); ``pointwise``: 1x1 with one group;
    ``gate``: a 1x1 convolution inside a module named like a squeeze-excitation or attention
    gate (``se``, ``squeeze``, ``excitation``, ``gate``, ``attn``); ``dense``: ``Linear``;
    ``conv``: other convolutions. ``layers`` restricts the result to those names.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=4), nn.Conv2d(4, 8, 1), nn.Linear(8, 2))
        >>> primitive_groups(model)
        {'0': 'depthwise', '1': 'pointwise', '2': 'dense'}
    """
    found = {}
    for name, module in model.named_modules():
        primitive = _primitive(name, module)
        if primitive is not None and (layers is None or name in layers):
            found[name] = primitive
    return found


def cluster_by_primitive(
    matrix: pd.DataFrame, groups: Mapping[str, str], *, k: int | str = "auto", seed: int = 0
) -> tuple[pd.DataFrame, dict[str, RWCClusters]]:
    """Cluster the rows of an RWC ``matrix`` within each primitive group (section 4.2).

    Returns a table (layer, primitive, cluster) and the fitted estimator of each group; a group
    of fewer than 3 layers (too few for ``k="auto"``) is one cluster without a fit.

    Example:
        >>> matrix = pd.DataFrame([[0.9, 0.5], [0.8, 0.5], [0.1, 0.1], [0.3, 0.3]],
        ...                       index=["a", "b", "c", "d"])
        >>> table, fits = cluster_by_primitive(matrix, {"a": "conv", "b": "conv", "c": "conv",
        ...                                             "d": "dense"})
        >>> table.cluster.tolist(), sorted(fits)
        ([0, 0, 1, 0], ['conv'])
    """
    missing = [layer for layer in matrix.index if layer not in groups]
    if missing:
        raise OptionError(f"layers {missing[:5]} have no primitive group; pass groups for them")
    rows, fits = [], {}
    for primitive in dict.fromkeys(groups[layer] for layer in matrix.index):
        members = [layer for layer in matrix.index if groups[layer] == primitive]
        labels = [0] * len(members)
        if len(members) >= 3 or (k != "auto" and len(members) >= int(k)):
            fits[primitive] = RWCClusters(k=k, seed=seed).fit(matrix.loc[members])
            labels = fits[primitive].labels_.tolist()
        rows += [(layer, primitive, label) for layer, label in zip(members, labels, strict=True)]
    return pd.DataFrame(rows, columns=["layer", "primitive", "cluster"]), fits
