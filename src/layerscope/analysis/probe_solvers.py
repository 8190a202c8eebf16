"""The probe: multinomial logistic regression with an L2 penalty, and its solvers (SPEC C6).

A logistic-regression probe (dissertation 4.3, after Alain and Bengio 2017) is a linear
classifier trained on one layer's outputs; its accuracy says how linearly separable the classes
already are at that layer. Every solver here minimises the same objective, scikit-learn's
``LogisticRegression(C=C)`` (penalty l2, intercept unpenalised), written per sample::

    f(W, b) = 1/n sum_i CE(softmax(W x_i + b), y_i) + 1 / (2 C n) ||W||_F^2

(sklearn's ``C sum_i CE + 1/2 ||W||^2`` divided by ``C n``), so accuracies are comparable across
solvers and with sklearn. Two classes use one weight vector (the binomial loss), as sklearn does;
more classes the full multinomial (softmax) parametrisation.

Solvers (registry :data:`PROBE_SOLVERS`; add one with ``@PROBE_SOLVERS.register("name")``):

- ``"lbfgs"`` (the default): full-batch L-BFGS in torch with float32 matrix products,
  preconditioned by the features' second-moment matrix (see :func:`lbfgs_solver`). It stops on
  sklearn's rule, ``max |gradient| <= tol`` (tol 1e-4), or when an iteration no longer lowers
  the objective measurably. benchmarks/probes.py measures it against the two below.
- ``"saga"``: scikit-learn's SAGA for ``max_iter=100`` epochs, the reference recipe of
  PHD-Lab (dissertation 6.2.5). Slow: it exists to reproduce the dissertation.
- ``"sklearn-lbfgs"``: scikit-learn's own L-BFGS (``max_iter=100``, tol 1e-4).

Features are standardised (zero mean, unit variance per feature, from the training set; a
constant feature stays 0) before any solver sees them. The dissertation trained on raw features
(8.3.1); a linear model of standardised features is still a linear model of the raw ones, but
the L2 penalty then weighs every feature alike, C means the same for every layer, and the
problem is far better conditioned. ``standardize=False`` gives the raw-feature recipe.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from layerscope.registry import Registry

__all__ = [
    "PROBE_SOLVERS",
    "LogisticProbe",
    "ProbeSettingsError",
    "SolverResult",
    "feature_moments",
    "lbfgs_solver",
    "list_solvers",
    "probe_objective",
    "sklearn_lbfgs_solver",
    "sklearn_saga_solver",
]

#: Probe solvers by name: callables ``(X, codes, n_classes, *, C, tol, max_iter, device,
#: random_state) -> SolverResult`` on standardised features.
PROBE_SOLVERS: Registry = Registry("probe solver", "layerscope.probe_solvers")
DEFAULT_SOLVER = "lbfgs"
#: Rows standardised / predicted per chunk (bounded extra memory for memory-mapped inputs).
_CHUNK = 8192


class ProbeSettingsError(ValueError):
    """A probe option or input that cannot work (bad C, too few classes, shape mismatch)."""


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


# --------------------------------------------------------------------------- torch L-BFGS
class _Objective:
    """f and its gradient for standardised X (n, d) and integer codes, parameters packed in one
    vector ``theta = [W.ravel(), b]`` with W (m, d), m = K (or 1 for two classes)."""

    def __init__(self, X: torch.Tensor, codes: torch.Tensor, n_classes: int, C: float) -> None:
        self.X = X
        self.n, self.d = X.shape
        self.binary = n_classes == 2
        self.m = 1 if self.binary else n_classes
        self.Y = F.one_hot(codes, n_classes).to(X.dtype)  # (n, K)
        self.lam = 1.0 / (C * self.n)  # the 1/(C n) of the per-sample objective

    def split(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return theta[: self.m * self.d].view(self.m, self.d), theta[self.m * self.d :]

    def __call__(self, theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        W, b = self.split(theta)
        Z = torch.addmm(b, self.X, W.T)  # (n, m) logits
        if self.binary:
            Z = F.pad(Z, (1, 0))  # class 0's logit is fixed at 0: the binomial loss
        lse = torch.logsumexp(Z, 1, keepdim=True)
        loss = (lse.sum() - (Z * self.Y).sum()).item() / self.n
        f = loss + 0.5 * self.lam * float(torch.dot(W.ravel(), W.ravel()))
        R = torch.exp_(Z.sub_(lse)).sub_(self.Y)  # softmax - one-hot, (n, K)
        if self.binary:
            R = R[:, 1:]
        grad_W = (R.T @ self.X).div_(self.n).add_(W, alpha=self.lam)
        return f, torch.cat([grad_W.ravel(), R.sum(0).div_(self.n)])


class _Preconditioner:
    """Apply (S + ridge I)^-1 to each class's weight vector, identity to the intercepts.

    S = X^T X / n is the features' second-moment matrix (their correlation matrix, X being
    standardised), estimated from at most ``max_rows`` evenly spaced rows (4 d: a preconditioner
    needs no precision, and forming S is the costly part). Near W = 0 the Hessian of f is about
    (1/K)(I - 11^T/K) (x) S, so starting L-BFGS from H0 = S^-1 instead of the identity removes
    much of the ill-conditioning that correlated features cause; it changes the path, not the
    objective or its minimum. The ridge blends towards the identity: near a (nearly separable)
    optimum the Hessian is far from S, and full whitening (ridge 1e-3) took more iterations than
    none on real layer outputs, while ridge 0.1 helped everywhere we measured (docs/probes.md).
    """

    def __init__(self, X: torch.Tensor, m: int, ridge: float, max_rows: int) -> None:
        n, d = X.shape
        rows = X if n <= max_rows else X[:: math.ceil(n / max_rows)]
        second_moment = (rows.T @ rows).div_(rows.shape[0])
        second_moment.diagonal().add_(ridge)
        self.factor = torch.linalg.cholesky(second_moment.double()).to(X.dtype)
        self.m, self.d = m, d

    def __call__(self, vector: torch.Tensor) -> torch.Tensor:
        k = self.m * self.d
        solved = torch.cholesky_solve(vector[:k].view(self.m, self.d).T, self.factor)
        return torch.cat([solved.T.reshape(-1), vector[k:]])


def _identity(vector: torch.Tensor) -> torch.Tensor:
    return vector


def _two_loop(grad, history, precondition) -> torch.Tensor:
    """The L-BFGS direction -H grad from the (s, y, 1/s.y) pairs (Nocedal and Wright, alg. 7.4)."""
    q = grad.clone()
    alphas = []
    for s, y, rho in reversed(history):
        alpha = rho * torch.dot(s, q)
        alphas.append(alpha)
        q.sub_(y, alpha=float(alpha))
    if history:
        s, y, _ = history[-1]
        hy = precondition(y)
        q = precondition(q).mul_(float(torch.dot(s, y) / torch.dot(y, hy)))
    else:
        q = precondition(q)
        q.div_(max(1.0, float(q.norm())))  # a first step of at most unit length
    for (s, y, rho), alpha in zip(history, reversed(alphas), strict=True):
        beta = rho * torch.dot(y, q)
        q.add_(s, alpha=float(alpha - beta))
    return q.neg_()


@PROBE_SOLVERS.register("lbfgs")
def lbfgs_solver(
    X,
    codes,
    n_classes: int,
    *,
    C: float = 1.0,
    tol: float = 1e-4,
    max_iter: int | None = None,
    device=None,
    random_state: int | None = 0,
    history: int = 10,
    precondition: bool | None = None,
    ridge: float = 0.1,
    ftol: float | None = None,
) -> SolverResult:
    """Full-batch L-BFGS on the probe objective, in torch (CPU or GPU).

    One iteration costs one pass over the data (two matrix products, (n, d) x (d, K)) plus a
    few small vector operations; Armijo backtracking accepts the unit step almost always.

    Stopping (the first that holds):

    - ``max |gradient| <= tol``: scikit-learn's rule for its lbfgs (``gtol``), on the same
      per-sample objective, so ``tol`` means the same in both;
    - the objective fell by at most ``ftol * max(1, |f|)`` in an iteration: with float32
      products, smaller decreases are below the resolution of f (default ``64 * eps`` of the
      dtype, 7.6e-6 in float32, as scipy's L-BFGS-B default factor);
    - ``max_iter`` iterations (default 500): ``converged`` is False.

    Args:
        X: standardised features (n, d), numpy or torch; its float dtype is kept (float32 is
            the fast path; float64 for reference solutions).
        codes: class codes (n,) in ``0 .. n_classes - 1``.
        history: L-BFGS memory (pairs kept).
        precondition: start from H0 = (S + ridge I)^-1, S the features' second-moment matrix
            (see :class:`_Preconditioner`); None: when d <= 4096 and n >= 2 d (with fewer
            samples, applying it costs as much as a pass over the data; with more features,
            forming and factoring S costs more than it saves).
        ridge: added to S's diagonal (the features have unit variance).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((200, 5)).astype(np.float32)
        >>> codes = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)
        >>> result = lbfgs_solver(X, codes, 3)
        >>> result.coef.shape, result.converged
        ((3, 5), True)
    """
    X = torch.as_tensor(X, device=device)
    if not X.is_floating_point():
        X = X.float()
    codes = torch.as_tensor(codes, device=X.device, dtype=torch.int64)
    objective = _Objective(X, codes, n_classes, C)
    if precondition is None:
        precondition = objective.d <= 4096 and objective.n >= 2 * objective.d
    apply_h0 = (
        _Preconditioner(X, objective.m, ridge, max_rows=4 * objective.d)
        if precondition
        else _identity
    )
    max_iter = 500 if max_iter is None else max_iter
    ftol = 64 * torch.finfo(X.dtype).eps if ftol is None else ftol

    theta = torch.zeros(objective.m * (objective.d + 1), dtype=X.dtype, device=X.device)
    f, grad = objective(theta)
    pairs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    reason, iteration = "max_iter", 0
    while True:
        if float(grad.abs().max()) <= tol:
            reason = "gradient"
            break
        if iteration == max_iter:
            break
        iteration += 1
        direction = _two_loop(grad, pairs, apply_h0)
        slope = float(torch.dot(grad, direction))
        if slope >= 0:  # not a descent direction (rounding): restart from H0
            pairs.clear()
            direction = _two_loop(grad, pairs, apply_h0)
            slope = float(torch.dot(grad, direction))
        step, accepted = 1.0, False
        while step >= 1e-10 and not accepted:
            f_new, grad_new = objective(theta + step * direction)
            accepted = f_new <= f + 1e-4 * step * slope
            if not accepted:
                step *= 0.5
        if not accepted:  # no decrease left at this precision
            reason = "line search"
            break
        s = direction.mul_(step)
        y = grad_new - grad
        sy = float(torch.dot(s, y))
        if sy > 1e-10 * float(torch.dot(y, y)):  # keep the update positive definite
            pairs.append((s, y, torch.as_tensor(1.0 / sy, dtype=X.dtype, device=X.device)))
            if len(pairs) > history:
                pairs.pop(0)
        theta = theta + s
        decrease, f, grad = f - f_new, f_new, grad_new
        if decrease <= ftol * max(1.0, abs(f)):
            reason = "objective"
            break
    W, b = objective.split(theta)
    return SolverResult(
        coef=W.detach().cpu().numpy().copy(),
        intercept=b.detach().cpu().numpy().copy(),
        n_iter=iteration,
        converged=reason in ("gradient", "objective"),
        objective=f,
        reason=reason,
    )


# --------------------------------------------------------------------------- scikit-learn
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


# --------------------------------------------------------------------------- the estimator
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
    total = np.zeros(d)
    for start in range(0, n, _CHUNK):
        total += _rows(X, start, start + _CHUNK).double().sum(0).cpu().numpy()
    mean = total / n
    squares = np.zeros(d)
    centre = torch.from_numpy(mean)
    for start in range(0, n, _CHUNK):
        chunk = _rows(X, start, start + _CHUNK).double()
        squares += (chunk - centre.to(chunk.device)).square_().sum(0).cpu().numpy()
    scale = np.sqrt(squares / n)
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
        tol: the solver's tolerance (sklearn's meaning: max gradient entry for lbfgs).
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
                f"flatten feature maps first (layerscope.analysis.latents reduces them)"
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
    objective = _Objective(features, codes, len(probe.classes_), float(probe.C))
    theta = torch.cat(
        [
            torch.as_tensor(probe.coef_, dtype=torch.float64).ravel(),
            torch.as_tensor(probe.intercept_, dtype=torch.float64),
        ]
    )
    return objective(theta)[0]
