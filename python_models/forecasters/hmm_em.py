"""hmmlearn's EM for a Gaussian HMM with full covariances, compiled with numba.

A ``GaussianHMM(covariance_type="full", implementation="scaling").fit`` on 756 sessions of two
features spends ~75 % of its time outside its compiled forward-backward: SciPy's Cholesky and
triangular solves with their input checks for the emission densities, and the Python of each EM
step, ~1 ms an iteration for ~60 iterations. :func:`fit_gaussian_hmm` runs the same algorithm
in one compiled loop (~50 microseconds an iteration):

- the same start: hmmlearn's ``_init`` (Dirichlet start and transition probabilities from
  ``RandomState(seed)``, then scikit-learn's k-means with ``n_init=10`` for the means and the
  sample covariance plus ``min_covar`` for every state), computed here with the same calls;
- the same E-step: per-session scaled forward and backward recursions and the summed
  two-slice posteriors, as hmmlearn's ``_hmmc`` computes them;
- the same M-step with hmmlearn's default priors (none on the start and transition
  probabilities or the means; ``covars_prior=1e-2`` added to every element of each state's
  scatter matrix, ``covars_weight=1``);
- the same stopping rule (``ConvergenceMonitor``: stop when the log-likelihood gains less than
  ``tol``, or after ``n_iter`` iterations) and the same final log-likelihood (one more forward
  pass at the estimates, ``score``).

Only the order of floating-point sums differs, so the estimates equal hmmlearn's to rounding
(tests/python_models/forecasters/test_hmm_em.py). Where hmmlearn's scaled recursion would fail
(a session whose likelihood underflows in every state) or a covariance stops being positive
definite, :class:`HmmEmFailure` is raised and the caller falls back to hmmlearn itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

_LOG_2PI = float(np.log(2.0 * np.pi))
#: hmmlearn's ``min_covar`` of ``GaussianHMM`` (added to the initial covariances) and the jitter of
#: its density when a Cholesky factorisation fails (``_log_multivariate_normal_density_full``).
MIN_COVAR, DENSITY_JITTER = 1e-3, 1e-7
#: hmmlearn's default ``covars_prior`` (its ``covars_weight=1`` and ``means_weight=0`` drop out).
COVARS_PRIOR = 1e-2
#: the smallest forward sum hmmlearn's scaled recursion accepts (``_hmmc``: below it, underflow)
_MIN_SUM = 1e-300

_OK, _UNDERFLOW, _NOT_POSITIVE_DEFINITE = 0, 1, 2


class HmmEmFailure(ValueError):
    """The scaled recursion underflowed or a covariance is not positive definite."""


@njit(cache=True, error_model="numpy")
def _cholesky(cov: np.ndarray, jitter: float) -> tuple[np.ndarray, bool]:
    d = cov.shape[0]
    low = np.zeros((d, d))
    for i in range(d):
        for j in range(i + 1):
            s = cov[i, j] + (jitter if i == j else 0.0)
            for k in range(j):
                s -= low[i, k] * low[j, k]
            if i == j:
                if not s > 0.0:
                    return low, False
                low[i, i] = np.sqrt(s)
            else:
                low[i, j] = s * (
                    1.0 / low[j, j]
                )  # as LAPACK's potf2 scales the column: the same verdict on a singular matrix
    return low, True


@njit(cache=True, error_model="numpy")
def _frame_probabilities(x: np.ndarray, means: np.ndarray, covars: np.ndarray, out: np.ndarray) -> bool:
    """exp of each state's Gaussian log-density at each session; False where a covariance is
    not positive definite even with hmmlearn's jitter."""
    n, d = x.shape
    k = means.shape[0]
    z = np.empty(d)
    for c in range(k):
        low, ok = _cholesky(covars[c], 0.0)
        if not ok:
            low, ok = _cholesky(covars[c], DENSITY_JITTER)
            if not ok:
                return False
        log_det = 0.0
        for i in range(d):
            log_det += np.log(low[i, i])
        log_det *= 2.0
        for t in range(n):
            quad = 0.0
            for i in range(d):
                s = x[t, i] - means[c, i]
                for j in range(i):
                    s -= low[i, j] * z[j]
                z[i] = s / low[i, i]
                quad += z[i] * z[i]
            out[t, c] = np.exp(-0.5 * (d * _LOG_2PI + quad + log_det))
    return True


@njit(cache=True, error_model="numpy")
def _forward(startprob, transmat, frame, fwd, scaling) -> tuple[float, bool]:
    """The scaled forward pass: ``fwd`` row t is P(state at t | sessions up to t), ``scaling`` the
    inverse of each session's likelihood given the past; (log-likelihood, True), or (0, False) where
    a session's likelihood underflows in every state (that row and the later ones are left NaN)."""
    n, k = frame.shape
    for t in range(n):
        total = 0.0
        for j in range(k):
            if t == 0:
                value = startprob[j] * frame[0, j]
            else:
                value = 0.0
                for i in range(k):
                    value += fwd[t - 1, i] * transmat[i, j]
                value *= frame[t, j]
            fwd[t, j] = value
            total += value
        if total < _MIN_SUM:
            fwd[t:] = np.nan
            return 0.0, False
        scaling[t] = 1.0 / total
        for j in range(k):
            fwd[t, j] *= scaling[t]
    log_prob = 0.0
    for t in range(n):
        log_prob -= np.log(scaling[t])
    return log_prob, True


@njit(cache=True, error_model="numpy")
def _em(x, startprob, transmat, means, covars, n_iter, tol):
    n, d = x.shape
    k = len(startprob)
    frame = np.empty((n, k))
    fwd = np.empty((n, k))
    bwd = np.empty((n, k))
    scaling = np.empty(n)
    post = np.empty((n, k))
    history = np.empty(n_iter)
    iterations = 0
    for it in range(n_iter):
        if not _frame_probabilities(x, means, covars, frame):
            return iterations, history, _NOT_POSITIVE_DEFINITE, startprob, transmat
        log_prob, ok = _forward(startprob, transmat, frame, fwd, scaling)
        if not ok:
            return iterations, history, _UNDERFLOW, startprob, transmat
        for i in range(k):
            bwd[n - 1, i] = scaling[n - 1]
        for t in range(n - 2, -1, -1):
            for i in range(k):
                value = 0.0
                for j in range(k):
                    value += transmat[i, j] * frame[t + 1, j] * bwd[t + 1, j]
                bwd[t, i] = value * scaling[t]
        # sufficient statistics
        xi = np.zeros((k, k))
        for t in range(n - 1):
            for i in range(k):
                for j in range(k):
                    xi[i, j] += fwd[t, i] * transmat[i, j] * frame[t + 1, j] * bwd[t + 1, j]
        weight = np.zeros(k)
        obs = np.zeros((k, d))
        scatter = np.zeros((k, d, d))
        for t in range(n):
            total = 0.0
            for c in range(k):
                post[t, c] = fwd[t, c] * bwd[t, c]
                total += post[t, c]
            if total == 0.0:
                total = 1.0
            for c in range(k):
                g = post[t, c] / total
                post[t, c] = g
                weight[c] += g
                for i in range(d):
                    obs[c, i] += g * x[t, i]
                    for j in range(d):
                        scatter[c, i, j] += g * x[t, i] * x[t, j]
        # M-step (the start and transition probabilities keep a structural zero at zero)
        start = post[0].copy()
        for c in range(k):
            if startprob[c] == 0.0:
                start[c] = 0.0
        startprob = start / start.sum()
        new_trans = np.empty((k, k))
        for i in range(k):
            row = 0.0
            for j in range(k):
                new_trans[i, j] = 0.0 if transmat[i, j] == 0.0 else xi[i, j]
                row += new_trans[i, j]
            if row == 0.0:
                row = 1.0
            for j in range(k):
                new_trans[i, j] /= row
        transmat = new_trans
        for c in range(k):
            if not weight[c] > 0.0:  # a state no session belongs to: hmmlearn's covariance then fails too
                return iterations, history, _NOT_POSITIVE_DEFINITE, startprob, transmat
            for i in range(d):
                means[c, i] = obs[c, i] / weight[c]
            for i in range(d):
                for j in range(d):
                    spread = (
                        scatter[c, i, j]
                        - obs[c, i] * means[c, j]
                        - obs[c, j] * means[c, i]
                        + means[c, i] * means[c, j] * weight[c]
                    )
                    covars[c, i, j] = (COVARS_PRIOR + spread) / weight[c]
        history[it] = log_prob
        iterations = it + 1
        if it > 0 and history[it] - history[it - 1] < tol:
            break
    return iterations, history, _OK, startprob, transmat


def forward_filter(startprob: np.ndarray, transmat: np.ndarray, likelihood: np.ndarray) -> np.ndarray:
    """P(state at t | sessions up to t) from per-session state likelihoods (any common scale per
    session): the EM's scaled forward pass; NaN from a session no state explains on."""
    filtered = np.empty(likelihood.shape)
    _forward(startprob, transmat, np.ascontiguousarray(likelihood, float), filtered, np.empty(len(likelihood)))
    return filtered


@dataclass(frozen=True)
class HmmEmFit:
    startprob: np.ndarray
    transmat: np.ndarray
    means: np.ndarray
    #: full covariance matrices, (states, features, features)
    covars: np.ndarray
    #: log-likelihood at the estimates (hmmlearn's ``score``)
    loglike: float
    iterations: int
    #: the last iteration gained less than ``tol`` (hmmlearn's monitor also says converged at ``n_iter``)
    converged: bool
    #: the log-likelihood before each iteration's M-step (hmmlearn's ``monitor_.history``)
    history: tuple[float, ...] = ()


@njit(cache=True, error_model="numpy")
def _assign(x, centres, labels) -> None:
    """Nearest centre by ||c||^2 - 2 x.c (scikit-learn's Lloyd step; the first of equals wins)."""
    n, d = x.shape
    k = centres.shape[0]
    norms = np.zeros(k)
    for j in range(k):
        for f in range(d):
            norms[j] += centres[j, f] * centres[j, f]
    for i in range(n):
        best, label = 0.0, 0
        for j in range(k):
            dot = 0.0
            for f in range(d):
                dot += x[i, f] * centres[j, f]
            distance = norms[j] - 2.0 * dot
            if j == 0 or distance < best:
                best, label = distance, j
        labels[i] = label


@njit(cache=True, error_model="numpy")
def _kmeans_plusplus(x, k, draws, trials):
    """scikit-learn's greedy k-means++ (``_kmeans_plusplus``, unit weights) with its uniform draws
    given: one for the first centre, ``trials`` for each next."""
    n, d = x.shape
    norms = np.zeros(n)
    for i in range(n):
        for f in range(d):
            norms[i] += x[i, f] * x[i, f]
    # the first centre: RandomState.choice(n, p=1/n), a search of the normalised cumulative weights
    cdf = np.cumsum(np.full(n, 1.0) / n)
    cdf /= cdf[-1]
    first = np.searchsorted(cdf, draws[0], side="right")
    centres = np.empty((k, d))
    centres[0] = x[first]
    closest = np.empty(n)
    for i in range(n):
        dot = 0.0
        for f in range(d):
            dot += centres[0, f] * x[i, f]
        closest[i] = max(norms[first] - 2.0 * dot + norms[i], 0.0)
    potential = closest.sum()
    candidate_closest = np.empty((trials, n))
    for c in range(1, k):
        cumulative = np.cumsum(closest)
        candidates = np.searchsorted(cumulative, draws[1 + (c - 1) * trials : 1 + c * trials] * potential)
        best, best_potential = 0, 0.0
        for t in range(trials):
            index = min(candidates[t], n - 1)
            candidates[t] = index
            total = 0.0
            for i in range(n):
                dot = 0.0
                for f in range(d):
                    dot += x[index, f] * x[i, f]
                distance = min(closest[i], max(norms[index] - 2.0 * dot + norms[i], 0.0))
                candidate_closest[t, i] = distance
                total += distance
            if t == 0 or total < best_potential:
                best, best_potential = t, total
        potential = best_potential
        closest = candidate_closest[best].copy()
        centres[c] = x[candidates[best]]
    return centres


@njit(cache=True, error_model="numpy")
def _lloyd(x, centres, tol, max_iter):
    """scikit-learn's ``_kmeans_single_lloyd`` on one thread: (labels, inertia, centres, ok); not ok
    where a cluster empties (scikit-learn relocates it; the caller then runs scikit-learn)."""
    n, d = x.shape
    k = centres.shape[0]
    labels = np.full(n, -1, dtype=np.int32)
    previous = labels.copy()
    strict = False
    for _ in range(max_iter):
        _assign(x, centres, labels)
        updated = np.zeros((k, d))
        weight = np.zeros(k)
        for i in range(n):
            weight[labels[i]] += 1.0
            for f in range(d):
                updated[labels[i], f] += x[i, f]
        shift_total = 0.0
        for j in range(k):
            if weight[j] == 0.0:
                return labels, 0.0, centres, False
            alpha = 1.0 / weight[j]
            shift = 0.0
            for f in range(d):
                updated[j, f] *= alpha
                shift += (updated[j, f] - centres[j, f]) ** 2
            shift_total += np.sqrt(shift) ** 2
        centres = updated
        if np.array_equal(labels, previous):
            strict = True
            break
        if shift_total <= tol:
            break
        previous[:] = labels
    if not strict:
        _assign(x, centres, labels)
    inertia = 0.0
    for i in range(n):
        distance = 0.0
        for f in range(d):
            distance += (x[i, f] - centres[labels[i], f]) ** 2
        inertia += distance
    return labels, inertia, centres, True


@njit(cache=True, error_model="numpy")
def _same_clustering(a, b, k) -> bool:
    mapping = np.full(k, -1)
    for i in range(len(a)):
        if mapping[a[i]] == -1:
            mapping[a[i]] = b[i]
        elif mapping[a[i]] != b[i]:
            return False
    return True


@njit(cache=True, error_model="numpy")
def _kmeans(x, k, draws, trials, n_init, tol, max_iter):
    best_inertia, best_labels, best_centres = np.inf, np.empty(0, dtype=np.int32), np.empty((k, x.shape[1]))
    per_init = 1 + (k - 1) * trials
    for run in range(n_init):
        start = _kmeans_plusplus(x, k, draws[run * per_init : (run + 1) * per_init], trials)
        labels, inertia, centres, ok = _lloyd(x, start, tol, max_iter)
        if not ok:
            return best_centres, False
        if run == 0 or (inertia < best_inertia and not _same_clustering(labels, best_labels, k)):
            best_inertia, best_labels, best_centres = inertia, labels, centres
    return best_centres, True


def kmeans_centres(
    x: np.ndarray, k: int, seed: int, n_init: int = 10, max_iter: int = 300, tol: float = 1e-4
) -> np.ndarray:
    """``sklearn.cluster.KMeans(k, random_state=seed, n_init=n_init).fit(x).cluster_centers_`` on one
    thread: the same random draws, k-means++ and Lloyd steps (a label can differ only where two centres
    are equally near to rounding). Falls back to scikit-learn itself where a cluster empties."""
    trials = 2 + int(np.log(k))
    draws = np.random.RandomState(seed).random_sample(n_init * (1 + (k - 1) * trials))
    centred = x - x.mean(axis=0)  # KMeans works on the centred data
    scaled_tol = float(np.mean(np.var(x, axis=0)) * tol)
    centres, ok = _kmeans(np.ascontiguousarray(centred), k, draws, trials, n_init, scaled_tol, max_iter)
    if not ok:
        from sklearn.cluster import KMeans
        from threadpoolctl import threadpool_limits

        # scikit-learn's OpenMP reductions differ in the last bits with the thread count: one thread, as
        # the compiled steps and a one-thread Dask worker
        with threadpool_limits(limits=1, user_api="openmp"):
            kmeans = KMeans(n_clusters=k, random_state=seed, n_init=n_init, max_iter=max_iter, tol=tol)
            return kmeans.fit(x).cluster_centers_
    return centres + x.mean(axis=0)


def initial_parameters(x: np.ndarray, states: int, seed: int) -> tuple[np.ndarray, ...]:
    """hmmlearn's ``GaussianHMM._init`` for full covariances: the same draws in the same order, and
    its k-means start (scikit-learn's, with ``n_init=10``) by :func:`kmeans_centres`."""
    rng = np.random.RandomState(seed)
    startprob = rng.dirichlet(np.full(states, 1.0 / states))
    transmat = rng.dirichlet(np.full(states, 1.0 / states), size=states)
    means = kmeans_centres(x, states, seed)
    cov = np.cov(x.T) + MIN_COVAR * np.eye(x.shape[1])
    covars = np.tile(cov, (states, 1, 1))
    return startprob, transmat, np.ascontiguousarray(means, float), covars


def fit_gaussian_hmm(x: np.ndarray, states: int, seed: int, n_iter: int = 100, tol: float = 1e-4) -> HmmEmFit:
    """Baum-Welch as hmmlearn's ``GaussianHMM(states, "full", n_iter=n_iter, tol=tol,
    random_state=seed, implementation="scaling").fit(x)`` runs it.

    Raises
    ------
    HmmEmFailure
        Where hmmlearn's scaled recursion raises (underflow) or a covariance is not positive definite.
    """
    x = np.ascontiguousarray(x, float)
    startprob, transmat, means, covars = initial_parameters(x, states, seed)
    out = _em(x, startprob, transmat, means, covars, n_iter, tol)
    iterations, history, status, startprob, transmat = out
    if status != _OK:
        raise HmmEmFailure(
            "the scaled forward pass underflowed" if status == _UNDERFLOW else "a covariance is not positive definite"
        )
    frame = np.empty((len(x), states))
    if not _frame_probabilities(x, means, covars, frame):
        raise HmmEmFailure("a covariance is not positive definite")
    loglike, ok = _forward(startprob, transmat, frame, np.empty_like(frame), np.empty(len(x)))
    if not ok:
        raise HmmEmFailure("the scaled forward pass underflowed")
    converged = iterations >= 2 and history[iterations - 1] - history[iterations - 2] < tol
    steps = tuple(float(v) for v in history[:iterations])
    return HmmEmFit(startprob, transmat, means, covars, float(loglike), int(iterations), bool(converged), steps)
