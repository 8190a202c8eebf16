"""Weight-vector similarity graphs (Heitmann, seed 003, section 3.2, figures 3-5).

Nodes are a layer's units, sized by the norm of their weight row; with ``X`` the Gram matrix of
the normalised rows (cosine similarities), an edge joins units i and j with weight

    W_ij = exp(-dist^2(w_i, w_j) / sigma^2),   dist^2 = (1 - X)_ij

(the seed's form: the cosine distance plays the squared distance). Edges are dropped below a
threshold, on the weight (``min_weight``, default 0.5 with ``sigma = 0.5``, i.e. cosine >= 0.83)
or on the cosine (``min_cosine``). The graph is a node-link dictionary (the JSON that d3-force
layouts read, and networkx's ``node_link_graph`` too); :func:`save_graph` writes it as JSON and
GraphML, the latter written here so networkx stays optional.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
import torch

from layerscope.errors import OptionError
from layerscope.stats.frame_potential import normalized_rows

__all__ = ["DEFAULT_MIN_WEIGHT", "DEFAULT_SIGMA", "graph_layout", "save_graph", "weight_graph"]

DEFAULT_SIGMA = 0.5
DEFAULT_MIN_WEIGHT = 0.5


def weight_graph(
    matrix: torch.Tensor,
    *,
    sigma: float = DEFAULT_SIGMA,
    min_weight: float | None = None,
    min_cosine: float | None = None,
) -> dict:
    """The similarity graph of the rows of ``matrix`` (units, inputs) as node-link data.

    Nodes: ``id`` (the unit's row), ``norm``. Links: ``source``, ``target``, ``weight``,
    ``cosine``. A zero row has cosine 0 with every unit.

    Example:
        >>> graph = weight_graph(torch.tensor([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0]]))
        >>> [(link["source"], link["target"]) for link in graph["links"]]
        [(0, 1)]
        >>> [round(node["norm"], 3) for node in graph["nodes"]]
        [1.0, 2.002, 1.0]
    """
    if not sigma > 0:
        raise OptionError(f"sigma must be > 0, got {sigma}")
    if min_weight is not None and min_cosine is not None:
        raise OptionError("give min_weight or min_cosine, not both")
    if min_weight is None and min_cosine is None:
        min_weight = DEFAULT_MIN_WEIGHT
    rows = normalized_rows(matrix)
    cosine = (rows @ rows.T).numpy()  # (m, m)
    weight = np.exp(-(1.0 - cosine) / sigma**2)
    keep = weight >= min_weight if min_weight is not None else cosine >= min_cosine
    upper = np.triu(keep, k=1)
    norms = torch.linalg.vector_norm(matrix.detach().double(), dim=1).tolist()
    nodes = [{"id": i, "norm": float(n)} for i, n in enumerate(norms)]
    links = [{"source": int(i), "target": int(j), "weight": float(weight[i, j]),
              "cosine": float(cosine[i, j])} for i, j in zip(*np.nonzero(upper), strict=True)]  # fmt: skip
    threshold = {"min_weight": min_weight} if min_weight is not None else {"min_cosine": min_cosine}
    return {"directed": False, "multigraph": False, "graph": {"sigma": sigma, **threshold},
            "nodes": nodes, "links": links}  # fmt: skip


def _graphml(graph: dict) -> str:
    keys = [("norm", "node", "double"), ("weight", "edge", "double"), ("cosine", "edge", "double")]
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">']  # fmt: skip
    for name, domain, kind in keys:
        lines.append(f'  <key id="{name}" for="{domain}" attr.name="{name}" attr.type="{kind}"/>')
    lines.append('  <graph edgedefault="undirected">')
    for node in graph["nodes"]:
        lines.append(f'    <node id={quoteattr(str(node["id"]))}>'
                     f'<data key="norm">{node["norm"]!r}</data></node>')  # fmt: skip
    for link in graph["links"]:
        lines.append(f'    <edge source={quoteattr(str(link["source"]))} '
                     f'target={quoteattr(str(link["target"]))}>'
                     f'<data key="weight">{link["weight"]!r}</data>'
                     f'<data key="cosine">{link["cosine"]!r}</data></edge>')  # fmt: skip
    lines += ["  </graph>", "</graphml>", ""]
    return "\n".join(lines)


def save_graph(graph: dict, stem: str | Path) -> list[Path]:
    """Write ``<stem>.json`` (node-link) and ``<stem>.graphml``; return both paths.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> [p.name for p in save_graph(weight_graph(torch.eye(2)), folder / "g")]
        ['g.json', 'g.graphml']
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".graphml")]
    paths[0].write_text(json.dumps(graph), encoding="utf-8")
    paths[1].write_text(_graphml(graph), encoding="utf-8")
    return paths


def graph_layout(graph: dict) -> np.ndarray:
    """(m, 2) node positions for a static picture: classical multidimensional scaling of the
    distances 1 - weight (1 without an edge), so that strongly linked units sit together.

    Example:
        >>> graph_layout(weight_graph(torch.eye(3))).shape
        (3, 2)
    """
    m = len(graph["nodes"])
    distance = np.ones((m, m)) - np.eye(m)
    for link in graph["links"]:
        i, j = link["source"], link["target"]
        distance[i, j] = distance[j, i] = 1.0 - link["weight"]
    centring = np.eye(m) - 1.0 / max(m, 1)
    inner = -0.5 * centring @ (distance**2) @ centring
    values, vectors = np.linalg.eigh(inner)
    order = np.argsort(values)[::-1][:2]
    positions = np.zeros((m, 2))
    top = vectors[:, order] * np.sqrt(np.clip(values[order], 0.0, None))
    positions[:, : top.shape[1]] = top
    if not math.isfinite(float(np.abs(positions).sum())):
        return np.zeros((m, 2))
    return positions
