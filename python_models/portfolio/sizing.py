"""Position sizing: fractional Kelly with per-position caps and a gross-exposure limit."""

from __future__ import annotations

import numpy as np
import pandas as pd


def kelly_weights(
    expected_return: pd.DataFrame,
    std: pd.DataFrame,
    fraction: float = 0.5,
    cap: float = 0.10,
    max_gross: float = 1.0,
    long_only: bool = True,
) -> pd.DataFrame:
    """Target weights from forecast mean and standard deviation of the same horizon.

    The growth-optimal fraction for a small simple return with mean ``mu`` and variance
    ``s^2`` is ``mu / s^2``; it does not depend on the horizon when returns are iid, so
    any horizon's forecast serves. Each weight is ``fraction * mu / s^2``, clipped to
    ``[0, cap]`` (``[-cap, cap]`` if shorts are allowed); if the gross exposure of a date
    exceeds ``max_gross`` all its weights are scaled down together. The rest is cash.
    Missing or non-positive ``std`` gives weight 0.

    Parameters
    ----------
    expected_return, std : pandas.DataFrame
        Dates by tickers, aligned.
    fraction : float
        Kelly multiplier in (0, 1].
    cap : float
        Largest absolute weight per position.
    max_gross : float
        Largest sum of absolute weights per date.
    long_only : bool
        Forbid short positions.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    if not 0.0 < cap <= max_gross:
        raise ValueError(f"need 0 < cap <= max_gross, got cap={cap}, max_gross={max_gross}")
    mu, sd = expected_return.align(std, join="outer")
    ok = (sd > 0) & np.isfinite(sd) & np.isfinite(mu)
    raw = (fraction * mu / sd.where(ok) ** 2).where(ok, 0.0)
    w = raw.clip(lower=0.0 if long_only else -cap, upper=cap)
    gross = w.abs().sum(axis=1)
    scale = (max_gross / gross).where(gross > max_gross, 1.0)
    return w.mul(scale, axis=0)


CASH = "CASH"


def kelly_book(signals: pd.DataFrame, fraction: float = 0.5, cap: float = 0.10, max_gross: float = 1.0) -> pd.DataFrame:
    """Long allocations (strategy, date, ticker, weight, sleeve) from per-strategy signals.

    ``signals`` has ``strategy, ticker, date, expected_return, forecast_std``; weights are
    :func:`kelly_weights` per strategy, a row for each of the strategy's tickers on each of its
    dates (0 where the ticker has no usable signal that date). Each date's uninvested remainder is a
    ``CASH`` row in the safe sleeve, so weights sum to one.
    """
    need = {"strategy", "ticker", "date", "expected_return", "forecast_std"}
    if need - set(signals.columns):
        raise ValueError(f"signals lack columns {sorted(need - set(signals.columns))}")
    # the strategies with the same tickers in one frame, (strategy, date) by tickers: the refresh sizes a
    # few dates of many strategies, where a frame per strategy cost ~8 ms each. kelly_weights works date
    # by date, so a row sees its own signals only, summed over its own strategy's tickers as before
    universe = signals.groupby("strategy", sort=True)["ticker"].agg(lambda t: tuple(sorted(set(t))))
    frames = []
    for _, same in universe.groupby(universe, sort=False):
        g = signals[signals["strategy"].isin(same.index)]
        wide = g.pivot(index=["strategy", "date"], columns="ticker", values=["expected_return", "forecast_std"])
        w = kelly_weights(
            wide["expected_return"], wide["forecast_std"], fraction=fraction, cap=cap, max_gross=max_gross
        ).rename_axis(columns="ticker")
        long = w.stack().rename("weight").reset_index()
        cash = (1.0 - w.sum(axis=1)).rename("weight").reset_index().assign(ticker=CASH)
        frames += [long.assign(sleeve="risky"), cash.assign(sleeve="safe")]
    out = pd.concat(frames, ignore_index=True)[["strategy", "date", "ticker", "weight", "sleeve"]]
    return out.sort_values(["strategy", "date", "ticker"]).reset_index(drop=True)


def confidence_scale(confidence, min_confidence: float = 0.55):
    """Fraction of the Kelly position a signal of this confidence earns: ``2c - 1`` (the
    Kelly fraction of an even-money bet won with probability ``c``), and 0 below
    ``min_confidence``. An array for array input, a float for a scalar."""
    if not 0.5 <= min_confidence < 1.0:
        raise ValueError(f"min_confidence must lie in [0.5, 1), got {min_confidence}")
    c = np.clip(np.asarray(confidence, dtype=float), 0.0, 1.0)
    out = np.where(c >= min_confidence, 2.0 * c - 1.0, 0.0)
    return out if out.ndim else float(out)


def kelly_portfolio(
    mu,
    cov,
    fraction: float = 0.5,
    cap: float = 0.10,
    max_gross: float = 1.0,
    long_only: bool = True,
) -> np.ndarray:
    """Multi-asset fractional Kelly: ``argmax mu'w - w'Sigma w / (2 fraction)`` under the caps.

    Without constraints the solution is ``fraction * inv(Sigma) mu``, the growth-optimal
    book scaled down; with them it is the constrained optimum (a quadratic programme,
    solved by cvxpy): ``|w_i| <= cap``, ``sum |w_i| <= max_gross``, and ``w >= 0`` when
    ``long_only``. ``mu`` and ``Sigma`` are the forecast mean and covariance of the same
    horizon's simple returns.
    """
    import cvxpy as cp

    mu = np.asarray(mu, dtype=float)
    sigma = np.asarray(cov, dtype=float)
    n = mu.size
    if sigma.shape != (n, n):
        raise ValueError(f"cov must be {n} x {n}, got {sigma.shape}")
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
        raise ValueError("mu and cov must be finite")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    if not 0.0 < cap <= max_gross:
        raise ValueError(f"need 0 < cap <= max_gross, got cap={cap}, max_gross={max_gross}")
    sigma = (sigma + sigma.T) / 2.0
    if np.linalg.eigvalsh(sigma).min() < -1e-12 * max(1.0, np.abs(sigma).max()):
        raise ValueError("cov must be positive semi-definite")
    w = cp.Variable(n)
    constraints = [cp.abs(w) <= cap, cp.norm1(w) <= max_gross]
    if long_only:
        constraints.append(w >= 0)
    objective = cp.Maximize(mu @ w - cp.quad_form(w, cp.psd_wrap(sigma)) / (2.0 * fraction))
    problem = cp.Problem(objective, constraints)
    problem.solve(solver=cp.CLARABEL)
    if problem.status not in ("optimal", "optimal_inaccurate") or w.value is None:
        raise ValueError(f"the Kelly programme did not solve: {problem.status}")
    # the interior-point solution meets the bounds only to the solver's tolerance (~1e-9): project
    w = np.clip(np.asarray(w.value, dtype=float), 0.0 if long_only else -cap, cap)
    gross = np.abs(w).sum()
    return w * min(1.0, max_gross / gross) if gross > 0 else w


def risk_parity_weights(cov, budgets=None, tol: float = 1e-12) -> np.ndarray:
    """Long-only weights (summing to one) whose risk contributions ``w_i (Sigma w)_i`` are
    proportional to ``budgets`` (equal by default).

    Solved through the convex programme of Spinu (2013): ``min w'Sigma w / 2 - sum b_i log
    w_i`` has a unique positive solution whose risk contributions equal ``b``; it is then
    rescaled to sum to one (contributions stay proportional).
    """
    from scipy import optimize

    sigma = np.asarray(cov, dtype=float)
    n = sigma.shape[0]
    if sigma.shape != (n, n) or not np.all(np.isfinite(sigma)):
        raise ValueError("cov must be a finite square matrix")
    b = np.full(n, 1.0 / n) if budgets is None else np.asarray(budgets, dtype=float)
    if b.shape != (n,) or np.any(b <= 0):
        raise ValueError("budgets must be positive, one per asset")
    b = b / b.sum()
    if np.any(np.diag(sigma) <= 0):
        raise ValueError("every asset needs a positive variance")
    x0 = b / np.sqrt(np.diag(sigma))
    result = optimize.minimize(
        lambda x: 0.5 * x @ sigma @ x - b @ np.log(x),
        x0,
        jac=lambda x: sigma @ x - b / x,
        bounds=[(1e-12, None)] * n,
        method="L-BFGS-B",
        options={"ftol": tol, "gtol": tol, "maxiter": 10_000},
    )
    x = result.x
    return x / x.sum()
