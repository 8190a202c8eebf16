"""The default probe solver: full-batch L-BFGS in torch, preconditioned (SPEC C6).

One iteration costs one pass over the data (two matrix products, (n, d) x (d, K)) plus a few
small vector operations; Armijo backtracking accepts the unit step almost always. The objective
is the one every probe solver minimises (:mod:`layerscope.probes.solvers`).

Stopping (the first that holds), relative to the objective f so that neither the data's scale
nor the dtype changes what ``tol`` means:

- ``"gradient"``: the remaining decrease that L-BFGS predicts, ``-g^T d / 2`` (d = -H g, its
  direction; for a quadratic with the exact H, f - f_min), is at most
  ``tol / 100 * |f| / PREDICTION_MARGIN``, so that f ends within ``tol / 100`` of the minimum,
  relative: 1e-6 at the default ``tol = 1e-4``. The margin (20) is measured: near the end
  the true gap was 5-10 times the prediction (H has seen only the last steps' curvature), and
  at margin 1 the default stopped 5e-6 above the minimum on digits pixels and the synthetic
  benchmark sets; with 20, 1.4e-7 to 4.7e-7 above (docs/probes.md). (scikit-learn's lbfgs
  stops on ``max |g| <= tol`` instead, on the same per-sample objective; that can leave f 1e-3
  or more above the minimum, and with float32 products an absolute rule has no fixed meaning.)
- ``"objective"``: two iterations in a row each lowered f by at most ``ftol * |f|`` (default
  ``ftol``: 16 float64 epsilons; f is accumulated in float64 whatever the dtype of the
  products, so its changes are resolved far below float32's epsilon);
- ``"line search"``: no step decreases f any more (the resolution of f is reached); counted as
  converged, with reason ``"objective"``, when the predicted decrease is below ``tol * |f|``;
- ``max_iter`` iterations (default 500): ``converged`` is False.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from layerscope.probes.solvers import PROBE_SOLVERS, SolverResult

__all__ = ["lbfgs_solver"]


#: How far below the relative gap ``tol / 100`` the predicted decrease must fall (see the module
#: docstring).
PREDICTION_MARGIN = 20.0

#: From this many features on, the objective forms its logits sample by row (see
#: :class:`Objective`).
BY_SAMPLE_MIN_FEATURES = 256


class Objective:
    """f and its gradient for standardised X (n, d) and integer codes, parameters packed in one
    vector ``theta = [W.ravel(), b]`` with W (m, d), m = K (or 1 for two classes).

    The two products per evaluation, the logits and the gradient's R^T X (R the residuals,
    softmax - one-hot), are the whole cost on large inputs, and which layout BLAS runs fastest
    depends on the shape and the machine: here (MKL, 1 thread) logits by class, (K, n) = W X^T,
    and R (K, n) @ X took 35 us on 1437 x 64 against 59 us sample by row, (n, K) = X W^T, with
    R^T copied to (K, n) for the product; on 20000 x 512 it was 7.8 ms against 5.2 ms
    (docs/performance.md, "Probes"). ``by_sample`` picks the layout; None: sample by row from
    ``BY_SAMPLE_MIN_FEATURES`` features on. Both give the same f and gradient up to rounding.
    """

    def __init__(
        self,
        X: torch.Tensor,
        codes: torch.Tensor,
        n_classes: int,
        C: float,
        by_sample: bool | None = None,
    ) -> None:
        self.X = X
        self.n, self.d = X.shape
        self.binary = n_classes == 2
        self.m = 1 if self.binary else n_classes
        by_sample = self.d >= BY_SAMPLE_MIN_FEATURES if by_sample is None else by_sample
        self.axis = 1 if by_sample else 0  # the class axis of the logits
        # One-hot targets in the logits' layout; in the binary case class 0's row is the fixed
        # zero logit of the binomial loss.
        onehot = F.one_hot(codes, n_classes).to(X.dtype)
        self.Y = onehot if by_sample else onehot.T.contiguous()
        self.lam = 1.0 / (C * self.n)  # the 1/(C n) of the per-sample objective

    def split(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return theta[: self.m * self.d].view(self.m, self.d), theta[self.m * self.d :]

    def __call__(self, theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        W, b = self.split(theta)
        axis = self.axis
        if axis == 1:
            Z = torch.addmm(b, self.X, W.T)  # (n, m)
        else:
            Z = torch.addmm(b[:, None], W, self.X.T)  # (m, n)
        if self.binary:  # class 0's logit is fixed at 0: the binomial loss
            Z = F.pad(Z, (1, 0) if axis == 1 else (0, 0, 1, 0))
        Z.sub_(Z.amax(axis, keepdim=True))
        E = Z.exp()
        total = E.sum(axis, keepdim=True)
        # log-sum-exp minus the true logit, summed in float64: the changes of f between
        # iterations are far below float32's resolution of f near the optimum.
        per_sample = total.log().sub_((Z * self.Y).sum(axis, keepdim=True))
        f = float(per_sample.sum(dtype=torch.float64)) / self.n
        f += 0.5 * self.lam * float(torch.dot(W.ravel(), W.ravel()))
        R = E.div_(total).sub_(self.Y)  # softmax - one-hot
        if axis == 1:
            R = (R[:, 1:] if self.binary else R).T.contiguous()
        elif self.binary:
            R = R[1:]
        grad = torch.empty_like(theta)
        grad_W, grad_b = self.split(grad)
        torch.addmm(W, R, self.X, beta=self.lam, alpha=1.0 / self.n, out=grad_W)
        torch.sum(R, 1, out=grad_b)
        grad_b.div_(self.n)
        return f, grad


class _Preconditioner:
    """Apply P = (S + ridge I)^-1 to each class's weight vector, identity to the intercepts.

    S = X^T X / n is the features' second-moment matrix (their correlation matrix, X being
    standardised), estimated from at most ``max_rows`` evenly spaced rows (4 d: a preconditioner
    needs no precision, and forming S is the costly part). Near W = 0 the Hessian of f is about
    (1/K)(I - 11^T/K) (x) S, so starting L-BFGS from H0 = S^-1 instead of the identity removes
    much of the ill-conditioning that correlated features cause; it changes the path, not the
    objective or its minimum. The ridge blends towards the identity: near a (nearly separable)
    optimum the Hessian is far from S, and full whitening (ridge 1e-3) took more iterations than
    none on real layer outputs. Ridge 0.3 balances the cases measured (docs/probes.md; with the
    stopping margin of 1 then): 0.1 is best on the synthetic benchmark sets (45 iterations
    against 49), 1.0 on digits pixels (45 against 60 with 0.3 and 79 with 0.1).

    P is kept as an explicit symmetric matrix (inverted in float64 from its Cholesky factor;
    with the ridge its condition number is at most 1 + d / ridge), so one application is one
    (m, d) x (d, d) product, W_g P, instead of two triangular solves.
    """

    def __init__(self, X: torch.Tensor, m: int, ridge: float, max_rows: int) -> None:
        n, d = X.shape
        rows = X if n <= max_rows else X[:: math.ceil(n / max_rows)]
        second_moment = (rows.T @ rows).div_(rows.shape[0]).double()
        second_moment.diagonal().add_(ridge)
        factor = torch.linalg.cholesky(second_moment)
        self.inverse = torch.cholesky_inverse(factor).to(X.dtype)
        self.m, self.d = m, d

    def __call__(self, vector: torch.Tensor) -> torch.Tensor:
        k = self.m * self.d
        out = torch.empty_like(vector)
        torch.mm(vector[:k].view(self.m, self.d), self.inverse, out=out[:k].view(self.m, self.d))
        out[k:] = vector[k:]
        return out


def _identity(vector: torch.Tensor) -> torch.Tensor:
    return vector


class _Memory:
    """The L-BFGS memory in compact form (Byrd, Nocedal and Schnabel 1994, Theorem 2.2).

    With H0 = gamma P (P the preconditioner, gamma = s^T y / y^T P y of the newest pair), the
    inverse Hessian after the k stored pairs (s_i, y_i) is

        H = gamma P + [S  P Y] [[R^-T (D + gamma Y^T P Y) R^-1, -gamma R^-T], [-gamma R^-1, 0]]
                               [S  P Y]^T

    with R the upper triangle (i <= j, oldest first) of S^T Y and D its diagonal. The pairs are
    rows of one (2 history, size) buffer, s_i and P y_i interleaved, oldest first, so that
    ``S^T g`` and ``(P Y)^T g`` are one matrix-vector product and -H g one more, whatever k;
    the 2k x 2k middle matrix is formed once per new pair, in numpy float64. P y comes free as
    P g_new - P g, so P is applied once per iteration. The direction is the two-loop
    recursion's (Nocedal and Wright, algorithm 7.4) for a few tensor operations instead of about
    4 k (docs/probes.md; tests/probes/test_solvers.py checks it against the dense BFGS update).
    """

    def __init__(self, size: int, history: int, dtype: torch.dtype, device) -> None:
        self.rows = torch.empty(2 * history, size, dtype=dtype, device=device)
        self.history = history
        self.count = 0
        # s_i^T y_j for i <= j (R; the lower triangle stays 0) and y_i^T P y_j, oldest first.
        self.sy = np.zeros((history, history))
        self.ypy = np.zeros((history, history))
        self.products: np.ndarray | None = None  # rows @ g for the current gradient
        self.middle = np.zeros((0, 0))  # -H g = -(gamma P g + rows^T (middle @ rows g))
        self.gamma = 1.0

    def __len__(self) -> int:
        return self.count

    def clear(self) -> None:
        self.count = 0
        self.products = None
        self.sy[:] = 0.0

    def direction(self, grad: torch.Tensor, pgrad: torch.Tensor) -> torch.Tensor:
        """-H grad (``pgrad`` = P grad); from H0 alone a first step of at most unit length."""
        if not self.count:
            return pgrad.div(-max(1.0, float(pgrad.norm())))
        active = self.rows[: 2 * self.count]
        if self.products is None:
            self.products = (active @ grad).double().cpu().numpy()
        c = torch.as_tensor(self.middle @ self.products, dtype=active.dtype, device=active.device)
        return torch.addmv(pgrad, active.T, c, beta=self.gamma).neg_()

    def remember(self, s, y, py, grad_new) -> None:
        """Store the pair (s, y) with P y when it keeps H positive definite (s^T y > 0 beyond
        rounding), and the products with the new gradient for its direction."""
        if not float(torch.dot(s, y)) > 1e-10 * float(torch.dot(y, y)):
            self.products = None
            return
        if self.count == self.history:  # the oldest pair leaves
            self.rows = self.rows.roll(-2, 0)
            self.sy[:-1, :-1] = self.sy[1:, 1:]
            self.ypy[:-1, :-1] = self.ypy[1:, 1:]
            self.sy[-1] = 0.0
        else:
            self.count += 1
        k = self.count
        self.rows[2 * k - 2] = s
        self.rows[2 * k - 1] = py
        both = (self.rows[: 2 * k] @ torch.stack((y, grad_new), 1)).double().cpu().numpy()
        self.sy[:k, k - 1] = both[0::2, 0]  # s_i^T y_new
        self.ypy[:k, k - 1] = self.ypy[k - 1, :k] = both[1::2, 0]  # (P y_i)^T y_new
        self.products = both[:, 1]
        sy, ypy = self.sy[:k, :k], self.ypy[:k, :k]
        r_inverse = np.linalg.inv(sy)
        self.gamma = gamma = sy[-1, -1] / ypy[-1, -1]
        inner = gamma * ypy
        inner.flat[:: k + 1] += sy.diagonal()
        middle = np.zeros((2 * k, 2 * k))
        middle[0::2, 0::2] = r_inverse.T @ inner @ r_inverse
        middle[0::2, 1::2] = -gamma * r_inverse.T
        middle[1::2, 0::2] = -gamma * r_inverse
        self.middle = middle


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
    ridge: float = 0.3,
    ftol: float | None = None,
) -> SolverResult:
    """Full-batch L-BFGS on the probe objective, in torch (CPU or GPU); stops as the module
    docstring says.

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
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((200, 5)).astype(np.float32)
        >>> codes = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)
        >>> result = lbfgs_solver(X, codes, 3)
        >>> result.coef.shape, result.converged
        ((3, 5), True)
    """
    X, objective, apply_h0 = _setup(X, codes, n_classes, C, device, precondition, ridge)
    max_iter = 500 if max_iter is None else max_iter
    ftol = 16 * torch.finfo(torch.float64).eps if ftol is None else ftol

    theta = torch.zeros(objective.m * (objective.d + 1), dtype=X.dtype, device=X.device)
    f, grad = objective(theta)
    pgrad = apply_h0(grad)
    memory = _Memory(theta.numel(), history, X.dtype, X.device)
    reason, iteration, stalled = "max_iter", 0, 0
    while True:
        direction, slope = _descent_direction(grad, pgrad, memory)
        if -0.5 * slope <= 0.01 * tol * abs(f) / PREDICTION_MARGIN:  # also a zero gradient
            reason = "gradient"
            break
        if iteration == max_iter:
            break
        iteration += 1
        step = _backtrack(objective, theta, direction, f, slope)
        if step is None:  # no decrease left at this precision
            reason = "line search"
            if -0.5 * slope <= tol * abs(f):
                reason = "objective"
            break
        step, f_new, grad_new = step
        s = direction.mul_(step)
        pgrad_new, y = apply_h0(grad_new), grad_new - grad
        memory.remember(s, y, y if apply_h0 is _identity else pgrad_new - pgrad, grad_new)
        theta = theta + s
        decrease, f, grad, pgrad = f - f_new, f_new, grad_new, pgrad_new
        stalled = stalled + 1 if decrease <= ftol * abs(f) else 0
        if stalled == 2:
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


def _setup(X, codes, n_classes, C, device, precondition, ridge):
    """Features as a float tensor, the objective, and the initial inverse Hessian H0."""
    X = torch.as_tensor(X, device=device)
    if not X.is_floating_point():
        X = X.float()
    codes = torch.as_tensor(codes, device=X.device, dtype=torch.int64)
    objective = Objective(X, codes, n_classes, C)
    if precondition is None:
        precondition = objective.d <= 4096 and objective.n >= 2 * objective.d
    if not precondition:
        return X, objective, _identity
    return X, objective, _Preconditioner(X, objective.m, ridge, max_rows=4 * objective.d)


def _descent_direction(grad, pgrad, memory: _Memory) -> tuple[torch.Tensor, float]:
    """The L-BFGS direction and its slope; restarted from H0 when rounding made it ascend."""
    direction = memory.direction(grad, pgrad)
    slope = float(torch.dot(grad, direction))
    if slope >= 0 and len(memory):
        memory.clear()
        direction = memory.direction(grad, pgrad)
        slope = float(torch.dot(grad, direction))
    return direction, slope


def _backtrack(objective, theta, direction, f: float, slope: float):
    """Armijo backtracking from the unit step: ``(step, f, gradient)`` there, or None when no
    step down to 1e-10 decreases f enough."""
    step = 1.0
    while step >= 1e-10:
        f_new, grad_new = objective(theta + step * direction)
        if f_new <= f + 1e-4 * step * slope:
            return step, f_new, grad_new
        step *= 0.5
    return None
