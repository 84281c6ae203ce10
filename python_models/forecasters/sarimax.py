"""ARMA/SARIMAX on daily log returns via statsmodels, with fast multi-origin forecasts.

Refitting at every origin would cost one optimisation per session. Instead the fitted
parameters are held fixed and the Kalman filter is run once over the history: the
predicted state at each origin gives every horizon's mean by iterating the transition
equation, and the state covariance gives the variance of the cumulative return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pandas as pd
from statsmodels.tsa.statespace.sarimax import SARIMAX

from python_models.evaluation.metrics import ljung_box
from python_models.forecasters.arma_likelihood import ArmaMle, ArmaShape, maximum_likelihood
from python_models.forecasters.base import (
    FitResult,
    Forecaster,
    PanelFitResult,
    PanelForecaster,
    ReturnForecast,
    by_ticker,
    check_origins,
    validate_horizons,
    validate_panel,
    validate_returns,
)

_SCALE = 100.0
#: The season the automatic order search tries: the trading week, five sessions (the only cycle a
#: window of daily returns holds many times over).
WEEK = 5


@dataclass(frozen=True)
class OrderCandidate:
    """One (p, q, seasonal p) of the approximate search with its information criterion."""

    p: int
    q: int
    seasonal_p: int
    criterion: float


def approximate_order_search(
    y: np.ndarray, max_order: int, season: int = WEEK, criterion: str = "aic"
) -> list[OrderCandidate]:
    """Every ARMA(p, q) with p, q <= ``max_order``, each without and with a seasonal AR term at lag
    ``season`` (0: none tried), ranked by an information criterion from Hannan and Rissanen's
    regressions (Brockwell and Davis 2016, 5.1.4), best first.

    The innovations are first estimated by a long autoregression (order ``floor(log(n)^2)``, as
    statsmodels' ``hannan_rissanen`` and Gomez and Maravall 2001 choose it); each candidate is then
    one least-squares regression of the demeaned series on its own lags and the lagged innovations,
    all candidates on the same rows, so their criteria compare. This is the approximation
    ``auto.arima`` makes on long series (its ``approximation=TRUE``): the search costs a few
    milliseconds where fitting every candidate by maximum likelihood would cost one fit each, and
    only the chosen order is then fitted exactly. A seasonal candidate is ranked with the lag-``season``
    term added to its ARMA lags; the exact fit is the multiplicative seasonal model, whose cross
    terms (lags ``season + 1`` to ``season + p``) the regression leaves out: an approximation too.
    """
    if criterion not in ("aic", "bic"):
        raise ValueError(f"criterion must be 'aic' or 'bic', got {criterion!r}")
    y = np.asarray(y, float)
    y = y - y.mean()
    n = len(y)
    long_ar = int(np.floor(np.log(n) ** 2))
    first = long_ar + max_order + season  # the rows every candidate's regression can use
    if n - first < 5 * (2 * max_order + 3):  # five rows per coefficient of the largest candidate
        raise ValueError(f"{n} observations are too few for the order search (needs {first + 5 * (2 * max_order + 3)})")
    lags = np.column_stack([y[long_ar - k : n - k] for k in range(1, long_ar + 1)])
    coef = np.linalg.lstsq(lags, y[long_ar:], rcond=None)[0]
    innovations = np.zeros(n)
    innovations[long_ar:] = y[long_ar:] - lags @ coef
    target = y[first:]
    rows = len(target)
    penalty = 2.0 if criterion == "aic" else float(np.log(rows))
    out = []
    for seasonal_p in (0, 1) if season else (0,):
        for p in range(max_order + 1):
            for q in range(max_order + 1):
                columns = [y[first - k : n - k] for k in range(1, p + 1)]
                columns += [innovations[first - k : n - k] for k in range(1, q + 1)]
                if seasonal_p:
                    columns.append(y[first - season : n - season])
                if columns:
                    x = np.column_stack(columns)
                    resid = target - x @ np.linalg.lstsq(x, target, rcond=None)[0]
                else:
                    resid = target
                sigma2 = float(resid @ resid) / rows
                k = p + q + seasonal_p + 2  # with the mean and the innovations' variance
                out.append(OrderCandidate(p, q, seasonal_p, rows * np.log(sigma2) + penalty * k))
    return sorted(out, key=lambda c: c.criterion)


@dataclass(frozen=True)
class ExogScaler:
    """Exogenous regressors of a SARIMAX fit: feature columns lagged one session (the value
    at the previous close, so the regressor of every return is known before it), centred
    and scaled by the training window's mean and standard deviation; a missing value is
    set to that mean (0 after scaling). Out of the window a value is clipped to the range the
    window saw (``low``, ``high``, scaled): the fitted coefficients say nothing beyond it, and held
    over a 63-session forecast an extreme regressor compounds. ``persistence`` is each scaled
    regressor's AR(1) coefficient on the window: a multi-step forecast expects the regressor k
    sessions after the next at ``persistence**k`` times its known value (the market's last return
    has none; a volatility most). Holding every regressor at its value instead forecast JPM +2,300 %
    over 63 sessions in October 2008 (a market day of -8 % and a volatility above the window's
    largest, held)."""

    names: tuple[str, ...]
    centre: np.ndarray
    scale: np.ndarray
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    persistence: np.ndarray | None = None

    @classmethod
    def fit(cls, exog: pd.DataFrame, index: pd.Index, names: Sequence[str]) -> ExogScaler:
        raw = _lagged(exog, index, names)
        centre, scale = np.nanmean(raw, axis=0), np.nanstd(raw, axis=0)
        if not np.all(np.isfinite(scale) & (scale > 0)):
            raise ValueError(f"an exogenous column is constant or empty over the training window: {list(names)}")
        scaled = np.nan_to_num((raw - centre) / scale, nan=0.0)
        before, after = scaled[:-1], scaled[1:]
        persistence = np.clip((before * after).sum(axis=0) / np.maximum((before * before).sum(axis=0), 1e-12), -1, 1)
        return cls(tuple(names), centre, scale, scaled.min(axis=0), scaled.max(axis=0), persistence)

    def transform(self, exog: pd.DataFrame | None, index: pd.Index, lag: int = 1) -> np.ndarray:
        """Scaled regressors of the returns dated ``index`` (features ``lag`` sessions earlier)."""
        if exog is None:
            raise ValueError(f"this SARIMAX has regressors {list(self.names)}: pass exog")
        scaled = (_lagged(exog, index, self.names, lag) - self.centre) / self.scale
        if self.low is not None and self.high is not None:
            scaled = np.clip(scaled, self.low, self.high)
        return np.nan_to_num(scaled, nan=0.0)

    def current(self, exog: pd.DataFrame | None, dates: pd.Index) -> np.ndarray:
        """Scaled features at ``dates`` themselves: the regressors of the session after each."""
        return self.transform(exog, dates, lag=0)


def _lagged(exog: pd.DataFrame, index: pd.Index, names: Sequence[str], lag: int = 1) -> np.ndarray:
    """Feature values ``lag`` sessions of ``index`` before each date (NaN where unknown)."""
    missing = set(names) - set(exog.columns)
    if missing:
        raise ValueError(f"exog lacks columns {sorted(missing)}")
    values = exog[list(names)].reindex(index)
    return (values.shift(lag) if lag else values).to_numpy(float)


@dataclass
class SarimaxResult(FitResult):
    order: tuple[int, int, int] = (1, 0, 1)
    trend: str = "c"
    #: exogenous regressors (see :class:`ExogScaler`); none for a plain ARMA
    exog: ExogScaler | None = None
    #: (P, 0, 0, s): a seasonal AR term, where the automatic search chose one
    seasonal_order: tuple[int, int, int, int] = (0, 0, 0, 0)

    @property
    def shape(self) -> ArmaShape:
        """Where :attr:`params` keeps each part (statsmodels' order)."""
        return ArmaShape(
            k_trend=int(self.trend == "c"),
            k_exog=0 if self.exog is None else len(self.exog.names),
            k_ar=self.order[0],
            k_ma=self.order[2],
            k_seasonal_ar=self.seasonal_order[0],
            season=self.seasonal_order[3],
        )

    def forecast(
        self, returns: pd.Series, origins: pd.Index, horizons: Sequence[int], exog: pd.DataFrame | None = None
    ) -> ReturnForecast:
        """As :meth:`FitResult.forecast`; a model with regressors also needs ``exog`` (the
        feature columns by date). The regressor of session ``t + 1`` is known at ``t``
        (features lagged one session); a later one is its AR(1) expectation (:class:`ExogScaler`)."""
        pos = check_origins(returns, origins)
        hs = validate_horizons(horizons)
        history = returns.iloc[: pos.max() + 1]
        params = self.params.to_numpy()
        # the Kalman filter over the whole history with the parameters fixed, statsmodels' state space
        # (arma_likelihood: the same predicted states as SARIMAX.filter, compiled)
        x = None if self.exog is None else self.exog.transform(exog, history.index)
        _, _, states, covariances = self.shape.filter(params, _SCALE * history.to_numpy(), x, keep_states=True)
        T, z, c, rqr = self.shape.system(params)
        h_max = max(hs)
        # a_{t+1|t} for every origin t: row t + 1 of the predicted states
        state = states[pos + 1].T
        # regressors enter the observation intercept; with none it is zero. The regressor of t + 1 is the
        # feature at t, known at the origin; a later one is expected at persistence**k times it (ExogScaler)
        known = np.zeros((len(pos), 0)) if self.exog is None else self.exog.current(exog, history.index[pos])
        beta = np.zeros(0) if self.exog is None else self.params[list(self.exog.names)].to_numpy()
        if self.exog is None:
            persistence = np.zeros(0)
        elif self.exog.persistence is None:  # a fit stored before 0.4.0 held its regressors
            persistence = np.ones_like(beta)
        else:
            persistence = self.exog.persistence
        step_mean = np.empty((len(pos), h_max))
        for k in range(h_max):
            step_mean[:, k] = known @ (beta * persistence**k) + z @ state
            state = T @ state + c[:, None]
        cum_var = self._cumulative_variance(covariances[pos.min() + 1], T, z, rqr, 0.0, h_max)
        idx = np.asarray(hs) - 1
        mean = np.cumsum(step_mean, axis=1)[:, idx] / _SCALE
        var = np.tile(cum_var[idx], (len(pos), 1)) / _SCALE**2
        return ReturnForecast(pd.Index(origins), hs, mean, var)

    @staticmethod
    def _cumulative_variance(
        P1: np.ndarray, T: np.ndarray, z: np.ndarray, RQR: np.ndarray, obs_var: float, h_max: int
    ) -> np.ndarray:
        """Var(y_1 + ... + y_h) for h = 1..h_max given the one-step state covariance P1.

        Cov(y_i, y_j) = z T^(j-i) P_i z' for i < j, plus the observation variance on the
        diagonal. The ARMA filter's covariance converges within a few sessions, so the
        path from the first origin of a block serves every origin in it (and does not
        depend on how far the block's data extends).
        """
        P = [P1]
        for _ in range(h_max - 1):
            P.append(T @ P[-1] @ T.T + RQR)
        out = np.empty(h_max)
        total = 0.0
        carried = np.zeros_like(z)  # v_j = sum_{i<j} T^(j-i) P_i z', so v_{j+1} = T (v_j + P_j z')
        for j in range(h_max):
            total += float(z @ P[j] @ z) + obs_var + 2.0 * float(z @ carried)
            carried = T @ (carried + P[j] @ z)
            out[j] = total
        return out


class Sarimax(Forecaster):
    """ARMA(p, q) with a constant (SARIMAX with d = 0) on daily log returns.

    Parameters
    ----------
    order : tuple of int, or "auto"
        (p, 0, q); "auto" selects it per fit among p, q <= ``max_order``, each with and without a
        seasonal AR term at lag ``season``, by an approximate information criterion
        (:func:`approximate_order_search`), then fits the best by maximum likelihood, the next
        best if that fit does not converge (three tried), and then ARMA(1, 1) and the
        constant-only model (the guardrails of an automated search). A fixed order that does
        not converge falls back the same way. ``diagnostics["p"]``, ``["q"]`` and
        ``["seasonal_p"]`` say what was used, ``["order_criterion"]`` the approximate criterion
        of the order fitted (NaN for a fallback or a fixed order).
    trend : str
        "c" (a constant) or "n" (none): the trends the compiled likelihood covers.
    max_order : int
        Largest p and q tried by "auto".
    season : int
        Lag of the seasonal AR term "auto" tries (0: none).
    criterion : str
        "aic" or "bic", the criterion of the "auto" search.
    exog_names : sequence of str
        Feature columns used as regressors (lagged one session; :class:`ExogScaler`).
        Empty: a plain ARMA. :class:`SarimaxExog` runs it over a panel of features.
    """

    FALLBACKS: tuple[tuple[int, int, int], ...] = ((1, 0, 1), (0, 0, 0))

    def __init__(
        self,
        order: tuple[int, int, int] | str = (1, 0, 1),
        trend: str = "c",
        max_order: int = 2,
        exog_names: Sequence[str] = (),
        season: int = WEEK,
        criterion: str = "aic",
    ) -> None:
        self.order: tuple[int, int, int] | str
        if order == "auto":
            if not 0 <= max_order <= 4:
                raise ValueError(f"max_order must be in [0, 4] (a bounded search), got {max_order}")
            self.order, self.name = "auto", "sarimax_auto"
        else:
            if isinstance(order, str) or len(order) != 3 or any(o < 0 for o in order):
                raise ValueError(f"SARIMAX order must be three non-negative ints, got {order}")
            if order[1] != 0:
                raise ValueError("pmx models returns, which are already differenced: use d = 0")
            self.order, self.name = cast(tuple[int, int, int], tuple(order)), "sarimax"
        if trend not in ("c", "n"):
            raise ValueError(f"trend must be 'c' (a constant) or 'n' (none), got {trend!r}")
        if season < 0 or criterion not in ("aic", "bic"):
            raise ValueError(f"season must be >= 0 and criterion 'aic' or 'bic', got {season} and {criterion!r}")
        self.trend, self.max_order, self.exog_names = trend, max_order, tuple(exog_names)
        self.season, self.criterion = season, criterion

    def _fit_order(
        self,
        r: pd.Series,
        order: tuple[int, int, int],
        x: np.ndarray | None = None,
        seasonal_order: tuple[int, int, int, int] = (0, 0, 0, 0),
    ) -> tuple[SARIMAX, ArmaMle, bool]:
        named = None if x is None else pd.DataFrame(x, columns=list(self.exog_names))  # parameters named after them
        model = SARIMAX(_SCALE * r.to_numpy(), exog=named, order=order, seasonal_order=seasonal_order, trend=self.trend)
        # statsmodels' own estimator (start, transformations, optimiser) with the likelihood compiled for
        # ARMA models: ~9 times faster, the same estimates within the optimiser's tolerance (arma_likelihood)
        res = maximum_likelihood(model)
        return model, res, res.converged and bool(np.isfinite(res.aic))

    def fit(self, returns: pd.Series, exog: pd.DataFrame | None = None) -> SarimaxResult:
        """Estimate on ``returns``; with :attr:`exog_names` set, ``exog`` holds those feature
        columns by date (see :class:`ExogScaler`)."""
        r = validate_returns(returns, min_obs=60)
        scaler = ExogScaler.fit(exog, r.index, self.exog_names) if self.exog_names else None
        x = None if scaler is None else scaler.transform(exog, r.index)
        plain: tuple[int, int, int, int] = (0, 0, 0, 0)
        # (order, seasonal order, the search's criterion) in the order they are tried
        attempts: list[tuple[tuple[int, int, int], tuple[int, int, int, int], float]]
        if self.order == "auto":
            ranked = approximate_order_search(_SCALE * r.to_numpy(), self.max_order, self.season, self.criterion)
            attempts = [
                ((c.p, 0, c.q), (c.seasonal_p, 0, 0, self.season) if c.seasonal_p else plain, c.criterion)
                for c in ranked[:3]
            ]
        else:
            attempts = [(cast(tuple[int, int, int], self.order), plain, float("nan"))]  # the ints __init__ checked
        # a fit the optimiser did not finish can sit near a unit root with a large constant, and its
        # multi-step forecasts then explode (seen on RRC, 2006): the fallbacks, an order the search did
        # not choose (no criterion), then the first attempt's fit if none converges
        tried = {(order, seasonal) for order, seasonal, _ in attempts}
        attempts += [(o, plain, float("nan")) for o in self.FALLBACKS if (o, plain) not in tried]
        fits = []
        for order, seasonal, chosen in attempts:
            model, res, converged = self._fit_order(r, order, x, seasonal)
            fits.append((order, seasonal, chosen, model, res, converged))
            if converged:
                break
        order, seasonal, chosen, model, res, converged = fits[-1] if fits[-1][5] else fits[0]
        # skip the filter's first, unconditioned residuals
        resid = np.asarray(res.resid)[order[0] + seasonal[0] * seasonal[3] :]
        return SarimaxResult(
            params=pd.Series(res.params, index=model.param_names),
            diagnostics={
                "aic": res.aic,
                "bic": res.bic,
                "loglik": res.loglike,
                "ljung_box_pvalue": ljung_box(resid)[1],
                "p": float(order[0]),
                "q": float(order[2]),
                "seasonal_p": float(seasonal[0]),
                "order_criterion": chosen,
                "converged": float(converged),
            },
            order=order,
            trend=self.trend,
            exog=scaler,
            seasonal_order=seasonal,
        )


#: Default regressors: the market's return over the last session (lead-lag) and the stock's
#: own 21-session volatility (a risk premium), both from marts.features.
DEFAULT_EXOG: tuple[str, ...] = ("market_return_1d", "realized_vol_21")


@dataclass
class SarimaxExogResult(PanelFitResult):
    """One :class:`SarimaxResult` with regressors per ticker of the training window."""

    fits: dict[str, SarimaxResult] = field(default_factory=dict)

    def forecast(self, panel: pd.DataFrame, origins: pd.Index, horizons: Sequence[int]) -> dict[str, ReturnForecast]:
        wanted, out = pd.DatetimeIndex(origins), {}
        for ticker, frame, returns in by_ticker(validate_panel(panel), self.fits):
            own = wanted[wanted.isin(returns.index)]
            if len(own):
                out[ticker] = self.fits[ticker].forecast(returns, own, horizons, exog=frame)
        return out


class SarimaxExog(PanelForecaster):
    """ARMA(1, 1) with exogenous regressors from marts.features, one fit per ticker.

    Single-series in its estimation but fed from the feature panel, so it runs under the
    pooled harness. Multi-step forecasts expect each regressor along its AR(1) path from its
    value at the origin, clipped to the training window's range (:class:`ExogScaler`); their
    variance ignores the regressors' own uncertainty.

    Parameters
    ----------
    exog_names : sequence of str
        Feature columns used as regressors.
    order : tuple of int
        ARMA order (p, 0, q); a fit that does not converge falls back as in :class:`Sarimax`.
    """

    needs_features = True

    def __init__(self, exog_names: Sequence[str] = DEFAULT_EXOG, order: tuple[int, int, int] = (1, 0, 1)) -> None:
        if not exog_names:
            raise ValueError("SarimaxExog needs at least one exogenous column; use Sarimax without")
        self.model = Sarimax(order=order, exog_names=exog_names)
        self.name = "sarimax_exog"

    def panel_columns(self, available: Sequence[str]) -> list[str]:
        return list(self.model.exog_names)

    def check_columns(self, panel: pd.DataFrame) -> None:
        missing = set(self.model.exog_names) - set(panel.columns)
        if missing:
            raise ValueError(f"panel lacks the exogenous columns {sorted(missing)}")

    def fit(self, panel: pd.DataFrame) -> SarimaxExogResult:
        p = validate_panel(panel)
        self.check_columns(p)
        fits, failed = {}, 0
        for ticker, frame, returns in by_ticker(p):
            if len(returns) < 0.9 * len(frame):  # mostly missing in this window: sit it out
                continue
            try:
                fits[ticker] = self.model.fit(returns, exog=frame)
            except (ValueError, np.linalg.LinAlgError):
                failed += 1
        if not fits:
            raise ValueError("no ticker could be fitted in this window")
        converged = np.mean([f.diagnostics["converged"] for f in fits.values()])
        betas = pd.DataFrame({t: f.params[list(self.model.exog_names)] for t, f in fits.items()}).T
        return SarimaxExogResult(
            params=betas.mean().add_prefix("mean_beta_"),
            diagnostics={"tickers": float(len(fits)), "failed": float(failed), "converged": float(converged == 1.0)},
            fits=fits,
        )
