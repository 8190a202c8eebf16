"""The probe as an estimator: :class:`LogisticProbe` (scikit-learn's rules) (SPEC C6).

A logistic-regression probe (dissertation 4.3, after Alain and Bengio 2017) is a linear
classifier trained on one layer's outputs; its accuracy says how linearly separable the classes
already are at that layer.

Features are standardised (zero mean, unit variance per feature, from the training set; a
constant feature stays 0) before any solver sees them. The dissertation trained on raw features
(8.3.1); a linear model of standardised features is still a linear model of the raw ones, but
the L2 penalty then weighs every feature alike, C means the same for every layer, and the
problem is far better conditioned. ``standardize=False`` gives the raw-feature recipe.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from layerscope.errors import ProbeSettingsError
from layerscope.probes.lbfgs import Objective
from layerscope.probes.solvers import DEFAULT_SOLVER, PROBE_SOLVERS

__all__ = ["LogisticProbe", "feature_moments", "probe_objective"]

#: Rows standardised / predicted per chunk (bounded extra memory for memory-mapped inputs).
_CHUNK = 8192


def _rows(X, start: int, stop: int) -> torch.Tensor:
    """Rows ``start:stop`` of a numpy array (memory-mapped or not) or tensor, as a tensor."""
    chunk = X[start:stop]
    # np.array copies: a read-only memory map cannot back a tensor
    return chunk if isinstance(chunk, torch.Tensor) else torch.from_numpy(np.array(chunk))


def feature_moments(X) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and population standard deviation in float64, read in chunks of rows
    (a memory-mapped X is never loaded whole). A constant feature gets scale 1, as in
    sklearn's StandardScaler, so it standardises to 0.

    Example:
        >>> feature_moments(np.array([[0.0, 5.0], [2.0, 5.0]]))
        (array([1., 5.]), array([1., 1.]))
    """
    n, d = X.shape
    if n == 0:
        raise ProbeSettingsError("X has no rows; feature moments need at least one sample")
    # One pass, shifted by the first row: sums of x - x_0 and of its squares in float64 lose
    # about eps_64 ((x_0 - mean) / std)^2 of the variance to cancellation, nothing for any sample
    # x_0 within 1e4 standard deviations; two passes took twice as long (docs/performance.md).
    reference = _rows(X, 0, 1)[0].double()
    total = torch.zeros(d, dtype=torch.float64, device=reference.device)
    squares = torch.zeros_like(total)
    for start in range(0, n, _CHUNK):
        chunk = _rows(X, start, start + _CHUNK).double().sub_(reference)
        total += chunk.sum(0)
        squares += chunk.square_().sum(0)
    shift = total / n
    mean = (reference + shift).cpu().numpy()
    scale = (squares / n - shift * shift).clamp_(min=0.0).sqrt_().cpu().numpy()
    if not (np.isfinite(mean).all() and np.isfinite(scale).all()):
        bad = np.flatnonzero(~(np.isfinite(mean) & np.isfinite(scale)))
        raise ProbeSettingsError(
            f"features {bad[:5].tolist()} hold NaN or inf values; a probe needs finite "
            f"features (check the layer's outputs or the extraction)"
        )
    scale[scale == 0] = 1.0
    return mean, scale


def _dtype(value) -> torch.dtype:
    known = {"float32": torch.float32, "float64": torch.float64}
    if isinstance(value, torch.dtype) and value in known.values():
        return value
    if value in known:
        return known[value]
    raise ProbeSettingsError(f"dtype must be 'float32' or 'float64', got {value!r}")


class LogisticProbe:
    """A logistic-regression probe following scikit-learn's estimator rules.

    Args:
        C: inverse L2 strength, as in sklearn's ``LogisticRegression`` (default 1.0).
        solver: a name from :func:`list_solvers` (default ``"lbfgs"``, torch L-BFGS).
        tol: the solver's tolerance: for the default "lbfgs", stop with the objective within
            about tol / 100 of its minimum (relative; :mod:`layerscope.probes.lbfgs`); for the
            scikit-learn solvers, their meaning.
        max_iter: iterations (or SAGA epochs); None: the solver's default.
        standardize: scale features to zero mean and unit variance first (recommended).
        device: where torch solvers run (``"cpu"``, ``"cuda"``); None: CPU.
        dtype: ``"float32"`` (fast) or ``"float64"`` for the standardised features.
        random_state: seed for stochastic solvers (SAGA's sample order).

    Fitted attributes: ``classes_`` (K,), ``coef_`` (K, d), or (1, d) for two classes,
    ``intercept_``, ``mean_`` / ``scale_`` (d,) of the standardisation (zeros and ones when
    off), ``n_iter_``, ``converged_``, ``stop_reason_``, ``objective_`` (NaN when the solver
    does not report it; see :func:`probe_objective`), ``fit_seconds_``.

    X may be a numpy array, a memory-mapped one (read in chunks) or a tensor, of shape
    (samples, features); y holds one label per sample (any sortable labels).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((300, 4)).astype(np.float32)
        >>> y = np.where(X[:, 0] + X[:, 1] > 0, "a", "b")
        >>> probe = LogisticProbe().fit(X, y)
        >>> probe.coef_.shape, probe.score(X, y) > 0.95
        ((1, 4), True)
    """

    def __init__(
        self,
        C: float = 1.0,
        *,
        solver: str = DEFAULT_SOLVER,
        tol: float = 1e-4,
        max_iter: int | None = None,
        standardize: bool = True,
        device=None,
        dtype="float32",
        random_state: int | None = 0,
    ) -> None:
        self.C = C
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.standardize = standardize
        self.device = device
        self.dtype = dtype
        self.random_state = random_state

    def _check(self, X, y) -> np.ndarray:
        if isinstance(self.C, bool) or not isinstance(self.C, (int, float)) or not self.C > 0:
            raise ProbeSettingsError(
                f"C must be a number > 0 (inverse L2 strength), got {self.C!r}"
            )
        if not (isinstance(self.tol, (int, float)) and self.tol >= 0):
            raise ProbeSettingsError(f"tol must be a number >= 0, got {self.tol!r}")
        if self.max_iter is not None and not (
            isinstance(self.max_iter, int) and self.max_iter >= 1
        ):
            raise ProbeSettingsError(f"max_iter must be an int >= 1 or None, got {self.max_iter!r}")
        PROBE_SOLVERS.get(self.solver)  # an unknown name fails here with suggestions
        _dtype(self.dtype)
        if not isinstance(self.standardize, bool):
            raise ProbeSettingsError(f"standardize must be True or False, got {self.standardize!r}")
        if len(getattr(X, "shape", ())) != 2:
            raise ProbeSettingsError(
                f"X must be 2-D (samples, features), got shape {getattr(X, 'shape', None)}; "
                f"flatten feature maps first (layerscope.probes.reduction reduces them)"
            )
        y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
        if y.ndim != 1 or len(y) != X.shape[0]:
            raise ProbeSettingsError(
                f"y must hold one label per row of X ({X.shape[0]}), got shape {y.shape}"
            )
        return y

    def fit(self, X, y) -> LogisticProbe:
        """Standardise X, then minimise the probe objective with the chosen solver."""
        y = self._check(X, y)
        dtype = _dtype(self.dtype)
        started = time.perf_counter()
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ProbeSettingsError(
                f"a probe needs at least 2 classes in y, got {len(self.classes_)} "
                f"({self.classes_.tolist()})"
            )
        d = X.shape[1]
        if self.standardize:
            self.mean_, self.scale_ = feature_moments(X)
        else:
            self.mean_, self.scale_ = np.zeros(d), np.ones(d)
        features = self._transform(X, dtype, self.device)
        result = PROBE_SOLVERS.get(self.solver)(
            features,
            torch.from_numpy(codes.astype(np.int64)),
            len(self.classes_),
            C=float(self.C),
            tol=float(self.tol),
            max_iter=self.max_iter,
            device=self.device,
            random_state=self.random_state,
        )
        self.coef_ = np.asarray(result.coef)
        self.intercept_ = np.asarray(result.intercept)
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged
        self.stop_reason_ = result.reason
        self.objective_ = result.objective
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _transform(self, X, dtype: torch.dtype, device) -> torch.Tensor:
        """(X - mean_) / scale_ as one tensor, filled chunk by chunk."""
        n, d = X.shape
        if d != len(self.mean_):
            raise ProbeSettingsError(
                f"X has {d} features but the probe was fitted on {len(self.mean_)}"
            )
        out = torch.empty((n, d), dtype=dtype, device=device)
        mean = torch.as_tensor(self.mean_, dtype=dtype, device=out.device)
        scale = torch.as_tensor(self.scale_, dtype=dtype, device=out.device)
        for start in range(0, n, _CHUNK):
            rows = out[start : start + _CHUNK]
            rows.copy_(_rows(X, start, start + _CHUNK))  # never in place on the caller's X
            rows.sub_(mean).div_(scale)
        return out

    def decision_function(self, X) -> np.ndarray:
        """Logits (n, K), or (n,) for two classes (positive: the second class)."""
        self._check_fitted()
        if len(getattr(X, "shape", ())) != 2 or X.shape[1] != len(self.mean_):
            raise ProbeSettingsError(
                f"X must be (samples, {len(self.mean_)}) like the training features, got shape "
                f"{getattr(X, 'shape', None)}"
            )
        n = X.shape[0]
        coef = torch.as_tensor(self.coef_, dtype=torch.float64)
        intercept = torch.as_tensor(self.intercept_, dtype=torch.float64)
        mean = torch.as_tensor(self.mean_)
        scale = torch.as_tensor(self.scale_)
        out = []
        for start in range(0, n, _CHUNK):
            chunk = (_rows(X, start, start + _CHUNK).cpu().double() - mean) / scale
            out.append(torch.addmm(intercept, chunk, coef.T))
        logits = torch.cat(out).numpy() if out else np.zeros((0, len(self.coef_)))
        return logits[:, 0] if len(self.classes_) == 2 else logits

    def predict(self, X) -> np.ndarray:
        """The class of every row of X."""
        logits = self.decision_function(X)
        if len(self.classes_) == 2:
            return self.classes_[(logits > 0).astype(int)]
        return self.classes_[logits.argmax(1)]

    def score(self, X, y) -> float:
        """Accuracy on (X, y)."""
        y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
        return float(np.mean(self.predict(X) == y)) if len(y) else math.nan

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise ProbeSettingsError("this LogisticProbe is not fitted yet; call fit(X, y) first")

    def __repr__(self) -> str:
        return (
            f"LogisticProbe(C={self.C!r}, solver={self.solver!r}, tol={self.tol!r}, "
            f"max_iter={self.max_iter!r}, standardize={self.standardize!r})"
        )


def probe_objective(probe: LogisticProbe, X, y) -> float:
    """The probe objective (module docstring) of a fitted probe on (X, y), in float64, on the
    features standardised as in training. Compares solutions of different solvers.

    Example:
        >>> X = np.eye(3).repeat(4, axis=0); y = np.arange(3).repeat(4)
        >>> probe = LogisticProbe(dtype="float64").fit(X, y)
        >>> abs(probe_objective(probe, X, y) - probe.objective_) < 1e-9
        True
    """
    probe._check_fitted()
    y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
    unseen = ~np.isin(y, probe.classes_)
    if unseen.any():
        raise ProbeSettingsError(
            f"y holds labels the probe was not fitted on: {np.unique(y[unseen])[:5].tolist()} "
            f"(its classes are {probe.classes_[:10].tolist()}); the objective is defined only "
            f"for the fitted classes"
        )
    features = probe._transform(X, torch.float64, "cpu")
    codes = torch.from_numpy(np.searchsorted(probe.classes_, y).astype(np.int64))
    objective = Objective(features, codes, len(probe.classes_), float(probe.C))
    theta = torch.cat(
        [
            torch.as_tensor(probe.coef_, dtype=torch.float64).ravel(),
            torch.as_tensor(probe.intercept_, dtype=torch.float64),
        ]
    )
    return objective(theta)[0]
