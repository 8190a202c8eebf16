"""The probe objective and its solvers, checked against scikit-learn and a numpy objective."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from layerscope.errors import UnknownNameError
from layerscope.probes import (
    PROBE_SOLVERS,
    LogisticProbe,
    ProbeSettingsError,
    feature_moments,
    lbfgs_solver,
    list_solvers,
    probe_objective,
)


def numpy_objective(coef, intercept, X, codes, C) -> float:
    """sklearn's objective C sum CE + 1/2 ||W||^2, divided by C n (float64, written here)."""
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    logits = X @ np.asarray(coef, np.float64).T + np.asarray(intercept, np.float64)
    if logits.shape[1] == 1:  # binomial: class 0's logit is 0
        logits = np.hstack([np.zeros((n, 1)), logits])
    loss = np.mean(logsumexp(logits, axis=1) - logits[np.arange(n), codes])
    return float(loss + np.sum(np.asarray(coef, np.float64) ** 2) / (2 * C * n))


def problem(n=240, d=6, classes=4, seed=0, offset=3.0):
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((classes, d)) * 1.2
    y = rng.integers(0, classes, n)
    X = means[y] + rng.standard_normal((n, d)) + offset * rng.standard_normal(d)
    X[:, 1] *= 40.0  # badly scaled feature: standardisation must handle it
    return X, y


@pytest.mark.parametrize("classes", [2, 4])
def test_same_minimum_as_sklearn(classes):
    X, y = problem(classes=classes)
    C = 0.3
    Xs = StandardScaler().fit_transform(X)
    reference = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(Xs, y)
    probe = LogisticProbe(C, dtype="float64", tol=1e-9, max_iter=5000).fit(X, y)
    assert probe.converged_
    assert probe.coef_.shape == reference.coef_.shape
    np.testing.assert_allclose(probe.coef_, reference.coef_, atol=2e-5, rtol=1e-4)
    ours_b, theirs_b = probe.intercept_, reference.intercept_
    if classes > 2:  # softmax intercepts are defined up to a common shift
        ours_b, theirs_b = ours_b - ours_b.mean(), theirs_b - theirs_b.mean()
    np.testing.assert_allclose(ours_b, theirs_b, atol=2e-5)
    f_ours = numpy_objective(probe.coef_, probe.intercept_, Xs, y, C)
    f_theirs = numpy_objective(reference.coef_, reference.intercept_, Xs, y, C)
    assert f_ours == pytest.approx(f_theirs, abs=1e-9)
    assert probe.objective_ == pytest.approx(f_ours, abs=1e-10)
    assert probe_objective(probe, X, y) == pytest.approx(f_ours, abs=1e-10)
    np.testing.assert_array_equal(probe.predict(X), reference.predict(Xs))


def test_standardisation_matches_standard_scaler_and_leaves_input_alone():
    X, _ = problem()
    X = X.astype(np.float32)
    X[:, 2] = 7.0  # constant feature
    before = X.copy()
    mean, scale = feature_moments(X)
    scaler = StandardScaler().fit(X.astype(np.float64))
    np.testing.assert_allclose(mean, scaler.mean_, rtol=1e-6)
    np.testing.assert_allclose(scale, scaler.scale_, rtol=1e-6)
    assert scale[2] == 1.0
    LogisticProbe().fit(X, np.arange(len(X)) % 3)
    np.testing.assert_array_equal(X, before)


def test_float32_default_reaches_the_float64_minimum():
    X, y = problem(n=2000, d=40, classes=5, seed=1)
    exact = LogisticProbe(dtype="float64", tol=1e-9, max_iter=5000).fit(X, y)
    fast = LogisticProbe().fit(X, y)  # float32, tol 1e-4, preconditioned (n >= 2 d)
    f_exact = probe_objective(exact, X, y)
    assert fast.converged_ and fast.stop_reason_ in ("gradient", "objective")
    assert 0 <= probe_objective(fast, X, y) - f_exact < 1e-3
    assert abs(fast.score(X, y) - exact.score(X, y)) < 0.01


def test_preconditioning_changes_the_path_not_the_minimum():
    X, y = problem(n=600, d=12, classes=3, seed=2)
    Xs = torch.from_numpy(StandardScaler().fit_transform(X))
    codes = torch.from_numpy(y)
    plain = lbfgs_solver(Xs, codes, 3, precondition=False, tol=1e-12, max_iter=3000)
    conditioned = lbfgs_solver(Xs, codes, 3, precondition=True, tol=1e-12, max_iter=3000)
    assert plain.objective == pytest.approx(conditioned.objective, abs=1e-10)
    np.testing.assert_allclose(plain.coef, conditioned.coef, atol=1e-5)


@pytest.mark.parametrize("solver", ["saga", "sklearn-lbfgs"])
def test_sklearn_solvers_minimise_the_same_objective(solver):
    X, y = problem(n=300, d=5, classes=3, seed=3)
    exact = LogisticProbe(dtype="float64", tol=1e-9, max_iter=5000).fit(X, y)
    other = LogisticProbe(solver=solver, dtype="float64", tol=1e-8, max_iter=3000).fit(X, y)
    assert other.converged_
    assert probe_objective(other, X, y) == pytest.approx(probe_objective(exact, X, y), abs=1e-6)


def test_decision_function_is_the_linear_model_on_standardised_features():
    X, y = problem(n=100, d=4, classes=3, seed=4)
    probe = LogisticProbe().fit(X, y)
    by_hand = ((X - probe.mean_) / probe.scale_) @ probe.coef_.T + probe.intercept_
    np.testing.assert_allclose(probe.decision_function(X), by_hand, rtol=1e-5, atol=1e-5)
    assert probe.score(X, y) == np.mean(probe.classes_[by_hand.argmax(1)] == y)


def test_memory_mapped_input_gives_the_same_probe(tmp_path):
    X, y = problem(n=300, d=5, classes=3, seed=5)
    np.save(tmp_path / "x.npy", X.astype(np.float32))
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    a = LogisticProbe().fit(mapped, y)
    b = LogisticProbe().fit(X.astype(np.float32), y)
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_string_labels_and_registry():
    X, y = problem(n=120, d=3, classes=2, seed=6)
    labels = np.array(["cat", "dog"])[y]
    probe = LogisticProbe().fit(X, labels)
    assert set(probe.predict(X)) <= {"cat", "dog"}
    assert list_solvers() == ["lbfgs", "saga", "sklearn-lbfgs"]
    assert PROBE_SOLVERS.get("lbfgs") is lbfgs_solver


@pytest.mark.parametrize(
    ("kwargs", "X", "y", "match"),
    [
        ({"C": 0}, np.zeros((4, 2)), [0, 1, 0, 1], "C must be"),
        ({"C": -1.0}, np.zeros((4, 2)), [0, 1, 0, 1], "C must be"),
        ({"max_iter": 0}, np.zeros((4, 2)), [0, 1, 0, 1], "max_iter"),
        ({}, np.zeros(4), [0, 1, 0, 1], "2-D"),
        ({}, np.zeros((4, 2)), [0, 1, 0], "one label per row"),
        ({}, np.zeros((4, 2)), [1, 1, 1, 1], "at least 2 classes"),
        ({}, np.array([[0.0, np.nan], [1, 2], [3, 4], [5, 6]]), [0, 1, 0, 1], "NaN or inf"),
        ({"dtype": "float16"}, np.zeros((4, 2)), [0, 1, 0, 1], "dtype"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(kwargs, X, y, match):
    with pytest.raises(ProbeSettingsError, match=match):
        LogisticProbe(**kwargs).fit(X, y)


def test_unknown_solver_suggests_names():
    with pytest.raises(UnknownNameError, match="Did you mean 'saga'"):
        LogisticProbe(solver="sag").fit(np.zeros((4, 2)), [0, 1, 0, 1])


def test_unfitted_probe_and_width_mismatch():
    with pytest.raises(ProbeSettingsError, match="not fitted"):
        LogisticProbe().predict(np.zeros((2, 2)))
    probe = LogisticProbe().fit(np.eye(4), [0, 1, 0, 1])
    with pytest.raises(ProbeSettingsError, match=r"\(samples, 4\)"):
        probe.predict(np.zeros((2, 3)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"dtype": "float16"}, "dtype"), ({"standardize": "no"}, "standardize"),
     ({"dtype": "float64", "standardize": 1}, "standardize")],
)  # fmt: skip
def test_settings_check_dtype_and_standardize_before_any_work(kwargs, match):
    from layerscope.probes import ProbeSettings

    with pytest.raises(ProbeSettingsError, match=match):
        ProbeSettings(**kwargs).check()
    with pytest.raises(ProbeSettingsError, match="random_state"):
        ProbeSettings(random_state=0.5).check()


def test_objective_refuses_labels_the_probe_never_saw():
    X = np.eye(3).repeat(4, axis=0)
    probe = LogisticProbe(dtype="float64").fit(X, np.array([0, 2, 5]).repeat(4))
    labels = np.array([0, 2, 5]).repeat(4)
    assert probe_objective(probe, X, labels) == pytest.approx(
        numpy_objective(probe.coef_, probe.intercept_, X / probe.scale_ - probe.mean_ / probe.scale_,
                        np.arange(3).repeat(4), 1.0)
    )  # fmt: skip
    with pytest.raises(ProbeSettingsError, match=r"not fitted on: \[3\]"):
        probe_objective(probe, X, np.array([0, 2, 3]).repeat(4))  # 3 would count as class 5


def _digits_pixels():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, _, y_train, _ = train_test_split(
        X.astype(np.float32), y, test_size=0.2, random_state=0, stratify=y
    )
    return X_train, y_train


def test_default_reaches_sklearns_minimum_on_digits_pixels():
    # The case: digits pixels, C = 1. The float32 default must end no higher than
    # scikit-learn's lbfgs and within 1e-6 of the true minimum (sklearn run to tol 1e-10 in
    # float64), relative, judged by the float64 objective written in this file.
    X, y = _digits_pixels()
    Xs = StandardScaler().fit_transform(X.astype(np.float64))
    sklearn_default = LogisticRegression(C=1.0, max_iter=100).fit(Xs, y)
    best = LogisticRegression(C=1.0, tol=1e-10, max_iter=20_000).fit(Xs, y)
    f_sklearn = numpy_objective(sklearn_default.coef_, sklearn_default.intercept_, Xs, y, 1.0)
    f_best = numpy_objective(best.coef_, best.intercept_, Xs, y, 1.0)
    probe = LogisticProbe().fit(X, y)
    f_ours = numpy_objective(probe.coef_, probe.intercept_, Xs, y, 1.0)
    assert probe.converged_ and probe.stop_reason_ == "gradient"
    assert f_ours <= f_sklearn * (1 + 1e-6)
    assert (f_ours - f_best) / f_best < 1e-6


def test_tol_is_honoured_relative_to_the_objective():
    X, y = problem(n=2000, d=40, classes=5, seed=1)
    Xs = StandardScaler().fit_transform(X)
    best = LogisticRegression(C=1.0, tol=1e-10, max_iter=20_000).fit(Xs, y)
    f_best = numpy_objective(best.coef_, best.intercept_, Xs, y, 1.0)
    gaps, iterations = [], []
    for tol in (1e-1, 1e-3, 1e-5):
        probe = LogisticProbe(tol=tol, dtype="float64").fit(X, y)
        gaps.append(numpy_objective(probe.coef_, probe.intercept_, Xs, y, 1.0) - f_best)
        iterations.append(probe.n_iter_)
    assert iterations[0] < iterations[1] < iterations[2]
    assert gaps[0] > gaps[1] > gaps[2] >= -1e-12
    # the rule is relative: each gap is below tol / 100 of f
    for tol, gap in zip((1e-1, 1e-3, 1e-5), gaps, strict=True):
        assert gap < tol / 100 * f_best
    # the same problem scaled by 1000 stops after the same iterations (standardised inside)
    scaled = LogisticProbe(tol=1e-3, dtype="float64").fit(X * 1000.0, y)
    assert scaled.n_iter_ == iterations[1]


def numpy_gradient(coef, intercept, X, codes, C) -> np.ndarray:
    """The gradient of :func:`numpy_objective` in closed form: residuals softmax - one-hot."""
    X = np.asarray(X, dtype=np.float64)
    coef = np.asarray(coef, np.float64)
    n = len(X)
    logits = X @ coef.T + np.asarray(intercept, np.float64)
    binary = logits.shape[1] == 1
    if binary:
        logits = np.hstack([np.zeros((n, 1)), logits])
    probs = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    residual = probs - np.eye(logits.shape[1])[codes]
    if binary:
        residual = residual[:, 1:]
    grad_coef = residual.T @ X / n + coef / (C * n)
    return np.concatenate([grad_coef.ravel(), residual.mean(0)])


@pytest.mark.parametrize("classes", [2, 5])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("by_sample", [False, True], ids=["logits-by-class", "logits-by-sample"])
def test_objective_and_gradient_match_numpy(classes, dtype, by_sample):
    from layerscope.probes.lbfgs import Objective

    X, y = problem(n=300, d=7, classes=classes, seed=3, offset=0.0)
    X = (X - X.mean(0)) / X.std(0)
    rng = np.random.default_rng(4)
    m = 1 if classes == 2 else classes
    coef, intercept = rng.standard_normal((m, 7)), rng.standard_normal(m)
    objective = Objective(
        torch.as_tensor(X, dtype=dtype), torch.as_tensor(y), classes, 0.7, by_sample=by_sample
    )
    theta = torch.as_tensor(np.concatenate([coef.ravel(), intercept]), dtype=dtype)
    f, grad = objective(theta)
    rtol = 1e-12 if dtype == torch.float64 else 1e-5
    assert f == pytest.approx(numpy_objective(coef, intercept, X, y, 0.7), rel=rtol)
    expected = numpy_gradient(coef, intercept, X, y, 0.7)
    np.testing.assert_allclose(grad.double().numpy(), expected, rtol=rtol, atol=rtol * 1e-1)
    assert theta.numpy() == pytest.approx(np.concatenate([coef.ravel(), intercept]), rel=1e-6)


@pytest.mark.parametrize("pairs", [1, 3, 7])
def test_compact_memory_gives_the_dense_bfgs_direction(pairs):
    # The compact L-BFGS memory against the BFGS inverse update written out densely in numpy
    # float64: k updates H <- (I - rho s y^T) H (I - rho y s^T) + rho s s^T of H0 = gamma P,
    # gamma = s^T y / y^T P y of the newest pair; the buffer keeps 4 pairs, so 7 also checks
    # that the oldest ones leave in order.
    from layerscope.probes.lbfgs import _Memory

    rng = np.random.default_rng(pairs)
    size, history = 9, 4
    A = rng.standard_normal((size, size))
    hessian = A @ A.T + size * np.eye(size)
    B = rng.standard_normal((size, size))
    P = np.linalg.inv(B @ B.T + np.eye(size))
    memory = _Memory(size, history, torch.float64, "cpu")
    steps = rng.standard_normal((pairs, size))
    grad = rng.standard_normal(size)
    for s in steps:
        y = hessian @ s
        grad_new = grad + y
        t = [torch.from_numpy(v) for v in (s, y, P @ y, grad_new)]
        memory.remember(*t)
        grad = grad_new
    kept = steps[-history:]
    gamma = kept[-1] @ hessian @ kept[-1] / (kept[-1] @ hessian @ P @ hessian @ kept[-1])
    H = gamma * P
    for s in kept:
        y = hessian @ s
        rho = 1.0 / (s @ y)
        E = np.eye(size) - rho * np.outer(s, y)
        H = E @ H @ E.T + rho * np.outer(s, s)
    direction = memory.direction(torch.from_numpy(grad), torch.from_numpy(P @ grad))
    np.testing.assert_allclose(direction.numpy(), -H @ grad, rtol=1e-10, atol=1e-12)


def test_compact_memory_skips_a_pair_that_breaks_positive_definiteness():
    from layerscope.probes.lbfgs import _Memory

    memory = _Memory(3, 2, torch.float64, "cpu")
    s = torch.tensor([1.0, 0.0, 0.0])
    memory.remember(s, -s, -s, torch.ones(3))  # s^T y < 0: not stored
    assert len(memory) == 0
    direction = memory.direction(torch.tensor([3.0, 4.0, 0.0]), torch.tensor([3.0, 4.0, 0.0]))
    np.testing.assert_allclose(direction.numpy(), [-0.6, -0.8, 0.0])  # H0 step, unit length


def test_feature_moments_match_numpy_with_offsets_and_an_outlying_first_row():
    rng = np.random.default_rng(11)
    X = 1e6 + 1e-2 * rng.standard_normal((20_000, 3))  # large offset, small spread
    X[:, 1] = rng.standard_normal(20_000) * 50.0 - 7.0
    X[0, 2] = 1e6 + 10.0  # the first row, the shift, 1000 standard deviations out
    X[:, 0] = 4.0  # constant: scale 1
    mean, scale = feature_moments(X)
    np.testing.assert_allclose(mean, X.mean(0), rtol=1e-13)
    expected = X.std(0)
    expected[0] = 1.0
    np.testing.assert_allclose(scale, expected, rtol=1e-9)
    with pytest.raises(ProbeSettingsError, match="no rows"):
        feature_moments(np.zeros((0, 3)))


def _numpy_preconditioner(S, ridge, rank):
    """(S_k + rest (I - V V^T) + ridge I)^-1 from numpy's eigh of S, float64: S's top ``rank``
    eigenpairs kept, the other eigenvalues replaced by their mean."""
    values, vectors = np.linalg.eigh(S)
    values, vectors = values[::-1], vectors[:, ::-1]
    d = len(S)
    kept, V = values[:rank], vectors[:, :rank]
    rest = (np.trace(S) - kept.sum()) / (d - rank) if rank < d else 0.0
    spectrum = V @ np.diag(kept) @ V.T + rest * (np.eye(d) - V @ V.T)
    return np.linalg.inv(spectrum + ridge * np.eye(d))


@pytest.mark.parametrize(("d", "rank"), [(7, 128), (60, 6)])
def test_preconditioner_matches_numpy(d, rank):
    # d <= rank: the exact (S + ridge I)^-1 (to rounding). d > rank: six strong directions
    # over a flat floor (eigenvalues ~200 against ~0.25), so the randomized subspace iteration
    # finds S's top eigenpairs to about 1e-6 and P is the numpy formula with the floor's mean
    # eigenvalue; leaving out that floor, or the ridge, moves P by 0.1 or more.
    from layerscope.probes.lbfgs import _Preconditioner

    rng = np.random.default_rng(d)
    n, m, ridge = 3000, 3, 1.0
    X = rng.standard_normal((n, min(d, 6))) @ rng.standard_normal((min(d, 6), d)) * 3.0
    X += 0.5 * rng.standard_normal((n, d))
    P = _numpy_preconditioner(X.T @ X / n, ridge, min(rank, d))
    applied = _Preconditioner(torch.from_numpy(X), m, ridge, rank, max_rows=n, seed=0)
    vector = rng.standard_normal(m * (d + 1))
    out = applied(torch.from_numpy(vector)).numpy()
    expected = np.concatenate([(vector[: m * d].reshape(m, d) @ P).ravel(), vector[m * d :]])
    tolerance = 1e-10 if d <= rank else 2e-6
    np.testing.assert_allclose(out, expected, rtol=tolerance, atol=tolerance)


def test_wide_features_reach_the_float64_minimum():
    # More features than half the samples and than the preconditioner's rank (the case of
    # wide layers of a small data set): the default still ends within 1e-6 of the minimum.
    rng = np.random.default_rng(4)
    n, d, classes = 600, 400, 4
    y = rng.integers(0, classes, n)
    basis = rng.standard_normal((20, d))
    X = (rng.standard_normal((n, 20)) + rng.standard_normal((classes, 20))[y]) @ basis
    X += 0.3 * rng.standard_normal((n, d))
    exact = LogisticProbe(dtype="float64", tol=1e-10, max_iter=5000).fit(X, y)
    fast = LogisticProbe().fit(X, y)
    f_exact = probe_objective(exact, X, y)
    assert fast.converged_
    assert -1e-9 < (probe_objective(fast, X, y) - f_exact) / f_exact < 1e-6


class _Line:
    """phi(t) = f0 - a t + b t^2 / 2 along direction (1,), with ``rise`` added to every f past
    0: the slope stays exact while f's comparison is off by ``rise``."""

    def __init__(self, f0, a, b, rise):
        self.f0, self.a, self.b, self.rise = f0, a, b, rise

    def __call__(self, theta):
        t = float(theta[0])
        f = self.f0 - self.a * t + 0.5 * self.b * t * t + self.rise
        return f, torch.tensor([-self.a + self.b * t], dtype=torch.float64)


@pytest.mark.parametrize(
    ("rise", "b", "step"),
    [
        (0.0, 1.0, 1.0),  # Armijo holds at the unit step
        (5e-7, 1.0, 1.0),  # f rose within its rounding, slope 0 at t = 1: approximate Wolfe
        (3e-6, 1.0, None),  # f above f0 + WOLFE_EPSILON |f| at every step: the search fails
        (5e-7, 1.9, 0.5),  # t = 1 overshoots: slope 0.9 a > (1 - 2 delta) a, so halve
    ],
)
def test_line_search_accepts_armijo_or_the_approximate_wolfe_conditions(rise, b, step):
    from layerscope.probes.lbfgs import _backtrack

    f0, a = 1.0, 1e-6  # a decrease of a / 2 = 5e-7 |f|: at the rounding of float32 products
    line = _Line(f0, a, b * a, rise * f0 if rise else 0.0)
    direction = torch.tensor([1.0], dtype=torch.float64)
    found = _backtrack(line, torch.zeros(1, dtype=torch.float64), direction, f0, -a)
    assert (found if found is None else found[0]) == step
