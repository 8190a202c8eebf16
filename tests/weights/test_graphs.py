"""Weight-similarity graphs against numpy, and their files."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from layerscope.errors import OptionError
from layerscope.weights import graph_layout, save_graph, weight_graph


def _expected_links(matrix, sigma, min_weight=None, min_cosine=None):
    norms = np.linalg.norm(matrix, axis=1)
    links = {}
    for i in range(len(matrix)):
        for j in range(i + 1, len(matrix)):
            denominator = norms[i] * norms[j]
            cosine = float(matrix[i] @ matrix[j] / denominator) if denominator > 0 else 0.0
            weight = math.exp(-(1 - cosine) / sigma**2)
            if (weight >= min_weight) if min_weight is not None else (cosine >= min_cosine):
                links[(i, j)] = (weight, cosine)
    return links


@pytest.mark.parametrize(("sigma", "threshold"), [(0.5, {}), (1.0, {"min_weight": 0.9}),
                                                 (0.3, {"min_cosine": 0.2})])  # fmt: skip
def test_edges_equal_the_formula(sigma, threshold):
    matrix = np.random.default_rng(0).normal(size=(12, 3))
    matrix[5] = 0.0  # a zero row: cosine 0 with everything
    graph = weight_graph(torch.tensor(matrix), sigma=sigma, **threshold)
    default = {"min_weight": 0.5} if not threshold else threshold
    expected = _expected_links(matrix, sigma, **default)
    got = {(link["source"], link["target"]): (link["weight"], link["cosine"])
           for link in graph["links"]}  # fmt: skip
    assert set(got) == set(expected) and len(got) > 0
    for key, (weight, cosine) in expected.items():
        assert got[key] == pytest.approx((weight, cosine), rel=1e-10, abs=1e-12)
    np.testing.assert_allclose([n["norm"] for n in graph["nodes"]], np.linalg.norm(matrix, axis=1))
    assert graph["graph"] == {"sigma": sigma, **default}


def test_files_round_trip(tmp_path):
    graph = weight_graph(torch.randn(8, 4, generator=torch.Generator().manual_seed(1)),
                         min_cosine=0.0)  # fmt: skip
    json_path, graphml_path = save_graph(graph, tmp_path / "layer")
    assert json.loads(json_path.read_text()) == graph
    namespace = "{http://graphml.graphdrawing.org/xmlns}"
    root = ET.parse(graphml_path).getroot()
    edges = root.findall(f".//{namespace}edge")
    assert len(root.findall(f".//{namespace}node")) == 8 and len(edges) == len(graph["links"])
    first = {d.get("key"): float(d.text) for d in edges[0]}
    assert first["weight"] == graph["links"][0]["weight"]
    assert graph_layout(graph).shape == (8, 2)


def test_bad_options():
    with pytest.raises(OptionError, match="not both"):
        weight_graph(torch.eye(2), min_weight=0.5, min_cosine=0.5)
    with pytest.raises(OptionError, match="sigma"):
        weight_graph(torch.eye(2), sigma=0.0)
    empty = weight_graph(torch.zeros(0, 3))
    assert empty["nodes"] == [] and empty["links"] == []
