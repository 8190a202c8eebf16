"""Probe solvers: the registry, what a solver returns, and scikit-learn's solvers (SPEC C6).

Every solver minimises the same objective, scikit-learn's ``LogisticRegression(C=C)`` (penalty
l2, intercept unpenalised), written per sample::

    f(W, b) = 1/n sum_i CE(softmax(W x_i + b), y_i) + 1 / (2 C n) ||W||_F^2

(sklearn's ``C sum_i CE + 1/2 ||W||^2`` divided by ``C n``), so accuracies are comparable across
solvers and with sklearn. Two classes use one weight vector (the binomial loss), as sklearn does;
more classes the full multinomial (softmax) parametrisation.

Solvers (registry :data:`PROBE_SOLVERS`; add one with ``@PROBE_SOLVERS.register("name")``):

- ``"lbfgs"`` (the default, :mod:`layerscope.probes.lbfgs`): full-batch L-BFGS in torch with
  float32 matrix products, preconditioned by the features' second-moment matrix.
  benchmarks/probes.py measures it against the two below.
- ``"saga"``: scikit-learn's SAGA for ``max_iter=100`` epochs, the reference recipe of
  PHD-Lab (dissertation 6.2.5). Slow: it exists to reproduce the dissertation.
- ``"sklearn-lbfgs"``: scikit-learn's own L-BFGS (``max_iter=100``, tol 1e-4).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from layerscope.errors import ProbeSettingsError
from layerscope.registry import Registry

__all__ = [
    "DEFAULT_SOLVER",
    "PROBE_SOLVERS",
    "SolverResult",
    "list_solvers",
    "sklearn_lbfgs_solver",
    "sklearn_saga_solver",
]

#: Probe solvers by name: callables ``(X, codes, n_classes, *, C, tol, max_iter, device,
#: random_state) -> SolverResult`` on standardised features.
PROBE_SOLVERS: Registry = Registry("probe solver", "layerscope.probe_solvers")
DEFAULT_SOLVER = "lbfgs"


@dataclass(frozen=True)
class SolverResult:
    """What a solver returns, for standardised features.

    Attributes:
        coef: (K, d) weights, or (1, d) for two classes (sklearn's layout).
        intercept: (K,) or (1,).
        n_iter: iterations (L-BFGS) or epochs (SAGA) run.
        converged: the solver's own stopping rule was met before ``max_iter``.
        objective: the objective (module docstring) at the solution, or NaN if not computed.
        reason: why the solver stopped (``"gradient"``, ``"objective"``, ``"line search"``,
            ``"max_iter"``), where it says.
    """

    coef: np.ndarray
    intercept: np.ndarray
    n_iter: int
    converged: bool
    objective: float = math.nan
    reason: str = ""


def list_solvers() -> list[str]:
    """Registered probe solver names.

    Example:
        >>> list_solvers()
        ['lbfgs', 'saga', 'sklearn-lbfgs']
    """
    return PROBE_SOLVERS.list()


def _sklearn(solver, X, codes, n_classes, C, tol, max_iter, random_state) -> SolverResult:
    """sklearn's LogisticRegression with ``solver``; its convergence warning becomes a flag."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    max_iter = 100 if max_iter is None else max_iter  # sklearn's default, SAGA-100's epochs
    X = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    codes = codes.cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
    model = LogisticRegression(
        C=C, solver=solver, tol=tol, max_iter=max_iter, random_state=random_state
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(X, codes)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    for warning in caught:  # anything else is the user's business
        if not issubclass(warning.category, ConvergenceWarning):
            warnings.warn(warning.message, warning.category, stacklevel=3)
    if len(model.classes_) != n_classes:
        raise ProbeSettingsError(
            f"the training labels hold {len(model.classes_)} classes, expected {n_classes}"
        )
    return SolverResult(
        coef=model.coef_.astype(X.dtype),
        intercept=model.intercept_.astype(X.dtype),
        n_iter=int(np.max(model.n_iter_)),
        converged=converged,
        reason="tol" if converged else "max_iter",
    )


@PROBE_SOLVERS.register("saga")
def sklearn_saga_solver(
    X, codes, n_classes, *, C=1.0, tol=1e-4, max_iter=None, device=None, random_state=0
) -> SolverResult:
    """scikit-learn's SAGA (Defazio et al. 2014) for ``max_iter`` epochs (default 100): the
    reference recipe of the dissertation (6.2.5, 8.3.1). ``device`` is ignored (CPU).

    Example:
        >>> X = np.eye(4, dtype=np.float32).repeat(5, axis=0)
        >>> sklearn_saga_solver(X, np.arange(4).repeat(5), 4).coef.shape
        (4, 4)
    """
    return _sklearn("saga", X, codes, n_classes, C, tol, max_iter, random_state)


@PROBE_SOLVERS.register("sklearn-lbfgs")
def sklearn_lbfgs_solver(
    X, codes, n_classes, *, C=1.0, tol=1e-4, max_iter=None, device=None, random_state=0
) -> SolverResult:
    """scikit-learn's lbfgs (scipy's L-BFGS-B on sklearn's loss), ``max_iter`` default 100,
    float64 or float32 as given. ``device`` is ignored (CPU).

    Example:
        >>> X = np.eye(4, dtype=np.float32).repeat(5, axis=0)
        >>> sklearn_lbfgs_solver(X, np.arange(4).repeat(5), 4).converged
        True
    """
    return _sklearn("lbfgs", X, codes, n_classes, C, tol, max_iter, random_state)
