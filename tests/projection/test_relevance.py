"""The relevant-eigenspace t-test against scipy and the dissertation's table 5."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from layerscope.errors import OptionError, ProjectionError
from layerscope.projection import paired_t_test, relevant_eigenspace, t_test

# Dissertation table 5 (ResNet18, n = 15): delta -> (mean difference, sample sd, t, p).
TABLE_5 = {
    0.9999: (-0.0002, 0.0012), 0.9998: (0.0000, 0.0013), 0.9997: (-0.0002, 0.0016),
    0.9996: (-0.0009, 0.0020), 0.9995: (-0.0005, 0.0022), 0.9994: (-0.0006, 0.0019),
    0.9993: (-0.0007, 0.0019), 0.9992: (-0.0007, 0.0022), 0.9991: (-0.0006, 0.0022),
    0.998: (0.0031, 0.0046), 0.996: (0.0213, 0.0285), 0.994: (0.0389, 0.0454),
    0.992: (0.0579, 0.0596), 0.99: (0.0812, 0.0782), 0.98: (0.1899, 0.1042),
    0.97: (0.2918, 0.1057), 0.96: (0.3649, 0.0834), 0.95: (0.4333, 0.0757),
    0.94: (0.4544, 0.0667), 0.93: (0.4787, 0.0668), 0.92: (0.4896, 0.0638),
    0.91: (0.5119, 0.0582), 0.90: (0.5296, 0.0574),
}  # fmt: skip


def sample_with(mean: float, sd: float, n: int, seed: int) -> np.ndarray:
    """n values with exactly this mean and sample standard deviation."""
    z = np.random.default_rng(seed).standard_normal(n)
    z = (z - z.mean()) / z.std(ddof=1)
    return mean + sd * z


def test_table_5_delta_099_gives_t_402_and_p_0001():
    result = t_test(0.0812, 0.0782, 15)
    assert round(result.t, 2) == 4.02
    assert round(result.p, 3) == 0.001
    differences = sample_with(0.0812, 0.0782, 15, seed=0)
    reference = stats.ttest_1samp(differences, 0.0)  # scipy, from the raw values
    assert result.t == pytest.approx(reference.statistic, rel=1e-9)
    assert result.p == pytest.approx(reference.pvalue, rel=1e-9)
    unprojected = 0.93 + sample_with(0, 0.01, 15, seed=1)
    paired = paired_t_test(unprojected, unprojected - differences)
    rel = stats.ttest_rel(unprojected, unprojected - differences)
    assert (paired.t, paired.p) == pytest.approx((rel.statistic, rel.pvalue), rel=1e-9)
    assert (paired.mean, paired.sd, paired.n) == pytest.approx((0.0812, 0.0782, 15), rel=1e-9)


def test_paired_t_test_matches_scipy_on_random_data():
    rng = np.random.default_rng(3)
    for n in (2, 5, 30):
        a, b = rng.normal(0.9, 0.02, n), rng.normal(0.88, 0.03, n)
        ours, reference = paired_t_test(a, b), stats.ttest_rel(a, b)
        assert ours.t == pytest.approx(reference.statistic, rel=1e-9)
        assert ours.p == pytest.approx(reference.pvalue, rel=1e-9)


def test_degenerate_differences():
    zero = t_test(0.0, 0.0, 15)
    assert math.isnan(zero.t) and math.isnan(zero.p)  # table 5's delta = 1 row
    same = paired_t_test([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])  # exactly 0.5 each
    assert same.t == math.inf and same.p == 0.0
    with pytest.raises(ProjectionError, match="at least 2 instances"):
        t_test(0.1, 0.1, 1)
    with pytest.raises(ProjectionError, match="two 1-D sequences of one length"):
        paired_t_test([1.0, 2.0], [1.0])


def instances_like_table_5(n: int = 15) -> list[pd.DataFrame]:
    """Sweeps of n instances whose differences per delta have table 5's mean and sd."""
    rng = np.random.default_rng(0)
    unprojected = 0.93 + 0.005 * rng.standard_normal(n)
    differences = {delta: sample_with(m, s, n, seed=i)
                   for i, (delta, (m, s)) in enumerate(TABLE_5.items())}  # fmt: skip
    tables = []
    for i in range(n):
        rows = [{"delta": delta, "baseline": "pca", "seed": None,
                 "accuracy": unprojected[i] - differences[delta][i],
                 "unprojected_accuracy": unprojected[i], "relative_accuracy": 0.0,
                 "total_dimensions": int(400 + 3000 * delta - 2700 + i), "total_features": 3904}
                for delta in TABLE_5]  # fmt: skip
        tables.append(pd.DataFrame(rows))
    return tables


def test_the_rule_selects_09991_on_table_5_where_the_dissertation_picked_09998():
    found = relevant_eigenspace(instances_like_table_5(), alpha=0.05)
    assert found.selected_delta == 0.9991
    table = found.table.set_index("delta")
    assert list(table.index) == sorted(TABLE_5, reverse=True)
    for delta in (0.99, 0.98, 0.95, 0.9):
        mean, sd = TABLE_5[delta]
        assert table.loc[delta, "mean_difference"] == pytest.approx(mean, abs=1e-12)
        assert table.loc[delta, "sd_difference"] == pytest.approx(sd, abs=1e-12)
    assert round(table.loc[0.99, "t"], 2) == 4.02 and round(table.loc[0.99, "p"], 3) == 0.001
    assert round(table.loc[0.95, "t"], 1) == 22.2
    significant = table.significant
    assert not significant[[d for d in TABLE_5 if d > 0.999]].any()
    assert significant[[d for d in TABLE_5 if d <= 0.998]].all()
    assert table.loc[0.99, "n"] == 15
    assert table.loc[0.99, "sd_total_dimensions"] == pytest.approx(np.std(range(15), ddof=1))


def test_random_seeds_are_averaged_per_instance_and_grids_must_agree():
    def instance(unprojected, random_values):
        rows = [{"delta": 0.9, "baseline": "random", "seed": s, "accuracy": v,
                 "unprojected_accuracy": unprojected, "relative_accuracy": 0.0,
                 "total_dimensions": 4, "total_features": 9}
                for s, v in enumerate(random_values)]  # fmt: skip
        return pd.DataFrame(rows)

    found = relevant_eigenspace([instance(0.9, [0.1, 0.3]), instance(0.8, [0.2, 0.2])],
                                baseline="random")  # fmt: skip
    assert found.table.mean_difference.item() == pytest.approx(((0.9 - 0.2) + (0.8 - 0.2)) / 2)
    other = instance(0.8, [0.2]).assign(delta=0.95)
    with pytest.raises(ProjectionError, match="different deltas"):
        relevant_eigenspace([instance(0.9, [0.1]), other], baseline="random")
    with pytest.raises(ProjectionError, match="at least 2 trained instances"):
        relevant_eigenspace([instance(0.9, [0.1])], baseline="random")
    with pytest.raises(OptionError, match=r"alpha must be in \(0, 1\)"):
        relevant_eigenspace([instance(0.9, [0.1])] * 2, alpha=1.5)
    stacked = pd.concat([instance(0.9, [0.1]).assign(instance="a"),
                         instance(0.8, [0.3]).assign(instance="b")])  # fmt: skip
    assert relevant_eigenspace(stacked, baseline="random").table.n.item() == 2
