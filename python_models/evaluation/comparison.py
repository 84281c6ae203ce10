"""Statistical validation across models: pairwise Diebold–Mariano and paired t-tests, and
stationary-bootstrap confidence intervals for Sharpe ratios and directional accuracy.

Pairwise tests pool the universe: for each horizon and pair of models, the realised
forecasts both made (same ticker, same origin) give a loss differential per observation
``e_a^2 - e_b^2``; its cross-sectional mean per origin date is one time series, and the
Diebold–Mariano test (fixed-smoothing: :func:`~python_models.evaluation.metrics.dm_test`) runs
on it, so the dependence between stocks on the same day and the overlap of h-session forecasts
are both accounted for. The
paired t-test on the per-observation differentials is reported beside it as the simpler
test many readers expect; it treats observations as independent and so overstates
significance (the DM p-value is the one to trust).

Bootstrap intervals use the stationary bootstrap (Politis and Romano) of ``arch``, with a
mean block length given in sessions, on a series in time order: daily net returns for a
Sharpe ratio, the daily share of correct signs for directional accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from python_models.backtest.performance import PERIODS_PER_YEAR, max_drawdown, sharpe_ratio
from python_models.evaluation.metrics import dm_test, sign_hits


def pairwise_comparisons(forecasts: pd.DataFrame) -> pd.DataFrame:
    """Diebold–Mariano and paired t-tests for every pair of models, per horizon.

    Parameters
    ----------
    forecasts : pandas.DataFrame
        Long frame: ``model, ticker, asof_date, horizon, y_pred, y_true``; unrealised rows
        (NaN ``y_true``) are dropped.

    Returns
    -------
    pandas.DataFrame
        One row per (horizon, model_a, model_b) with model_a < model_b: ``n_dates``,
        ``n_obs``, ``mse_a``, ``mse_b``, ``dm_stat``, ``dm_pvalue`` (negative: model_a has
        the lower loss), ``t_stat``, ``t_pvalue``. :class:`PooledEvidence` gives the same a
        batch of tickers at a time.
    """
    evidence = PooledEvidence()
    evidence.add(forecasts)
    return evidence.comparisons()


#: Columns of a forecast frame the pooled statistics read.
EVIDENCE_COLUMNS = ("model", "ticker", "asof_date", "horizon", "y_pred", "y_true")


@dataclass
class PooledEvidence:
    """What the pooled comparisons and the leaderboard are computed from, added up over ticker batches.

    Every statistic here pools the universe through sums over its tickers: a pair's daily loss
    differential is the mean over the tickers both models forecast that day (a sum and a count), a
    model's daily hit rate the share of right signs that day, its MSE and directional accuracy sums
    over rows, and the paired t-test's mean and variance of the differentials combine across batches
    (Chan et al.'s pairwise update). So the forecasts can come a batch of tickers at a time
    (:meth:`add`, the batches disjoint in tickers), and only these sums are held: the validation's
    memory follows the batch, not the universe. Equal to one pass over the whole frame up to the
    order of floating-point additions.
    """

    _pair_daily: list[pd.DataFrame] = field(default_factory=list)
    _pair_moments: list[pd.DataFrame] = field(default_factory=list)
    _model_daily: list[pd.DataFrame] = field(default_factory=list)

    def add(self, forecasts: pd.DataFrame) -> None:
        """Add the realised rows of ``forecasts`` (``model, ticker, asof_date, horizon, y_pred, y_true``)
        of tickers no earlier batch had."""
        missing = set(EVIDENCE_COLUMNS) - set(forecasts.columns)
        if missing:
            raise ValueError(f"forecasts lack columns {sorted(missing)}")
        done = forecasts.dropna(subset=["y_true", "y_pred"])
        hits = sign_hits(done["y_true"].to_numpy(), done["y_pred"].to_numpy()).astype(float)
        per_day = done[["horizon", "model", "asof_date"]].assign(
            hits=hits, sq_error=(done["y_pred"] - done["y_true"]).to_numpy() ** 2, n=1
        )
        self._model_daily.append(per_day.groupby(["horizon", "model", "asof_date"], sort=False).sum().reset_index())
        for horizon, g in done.groupby("horizon", sort=True):
            loss = g.assign(loss=(g["y_pred"] - g["y_true"]) ** 2).pivot_table(
                index=["asof_date", "ticker"], columns="model", values="loss", aggfunc="first"
            )
            models = sorted(loss.columns)
            for i, a in enumerate(models):
                for b in models[i + 1 :]:
                    pair = loss[[a, b]].dropna()
                    if pair.empty:
                        continue
                    diff = pair[a] - pair[b]
                    daily = diff.groupby(level="asof_date").agg(["sum", "count"])
                    key = {"horizon": int(horizon), "model_a": a, "model_b": b}
                    self._pair_daily.append(daily.reset_index().assign(**key))
                    d = diff.to_numpy()
                    self._pair_moments.append(
                        pd.DataFrame(
                            [
                                {
                                    **key,
                                    "n": len(d),
                                    "sum_a": float(pair[a].sum()),
                                    "sum_b": float(pair[b].sum()),
                                    "mean": float(d.mean()),
                                    "m2": float(((d - d.mean()) ** 2).sum()),
                                }
                            ]
                        )
                    )

    def comparisons(self) -> pd.DataFrame:
        """:func:`pairwise_comparisons` of every row added."""
        columns = ["horizon", "model_a", "model_b", "n_dates", "n_obs", "mse_a", "mse_b"]
        columns += ["dm_stat", "dm_pvalue", "t_stat", "t_pvalue"]
        if not self._pair_moments:
            return pd.DataFrame(columns=columns)
        pairs = ["horizon", "model_a", "model_b"]
        daily = pd.concat(self._pair_daily, ignore_index=True).groupby([*pairs, "asof_date"], sort=True).sum()
        moments = pd.concat(self._pair_moments, ignore_index=True)
        rows = []
        for key, m in moments.groupby(pairs, sort=True):
            horizon, a, b = key
            series = daily.loc[key]
            if len(series) < 3:
                continue
            dm_stat, dm_p = dm_test((series["sum"] / series["count"]).to_numpy(), int(horizon))
            n, mean, m2 = _combined_moments(m)
            sd = np.sqrt(m2 / (n - 1)) if n > 1 else np.nan
            if sd > 0:
                t_stat = mean / (sd / np.sqrt(n))
                t_p = float(2 * stats.t.sf(abs(t_stat), n - 1))
            else:
                t_stat, t_p = np.nan, np.nan
            rows.append(
                {
                    "horizon": int(horizon),
                    "model_a": a,
                    "model_b": b,
                    "n_dates": int(len(series)),
                    "n_obs": int(n),
                    "mse_a": float(m["sum_a"].sum() / n),
                    "mse_b": float(m["sum_b"].sum() / n),
                    "dm_stat": dm_stat,
                    "dm_pvalue": dm_p,
                    "t_stat": float(t_stat),
                    "t_pvalue": float(t_p),
                }
            )
        return pd.DataFrame(rows, columns=columns)

    def daily_hit_rates(self) -> dict[tuple[int, str], pd.Series]:
        """Each (horizon, model)'s share of right signs per origin date, in date order."""
        if not self._model_daily:
            return {}
        sums = pd.concat(self._model_daily, ignore_index=True).groupby(["horizon", "model", "asof_date"]).sum()
        rate = (sums["hits"] / sums["n"]).rename(None)
        return {(int(h), m): s.droplevel([0, 1]).sort_index() for (h, m), s in rate.groupby(level=["horizon", "model"])}

    def model_totals(self) -> pd.DataFrame:
        """Per (horizon, model): ``n_obs``, ``mse`` and ``directional_accuracy`` over every row added."""
        if not self._model_daily:
            return pd.DataFrame(columns=["horizon", "model", "n_obs", "mse", "directional_accuracy"])
        sums = (
            pd.concat(self._model_daily, ignore_index=True)
            .groupby(["horizon", "model"], sort=True)
            .sum(numeric_only=True)
        )
        return pd.DataFrame(
            {
                "n_obs": sums["n"].astype(int),
                "mse": sums["sq_error"] / sums["n"],
                "directional_accuracy": sums["hits"] / sums["n"],
            }
        ).reset_index()


def _combined_moments(parts: pd.DataFrame) -> tuple[int, float, float]:
    """Count, mean and sum of squared deviations of the union of samples given by theirs (``n``,
    ``mean``, ``m2`` per row), by Chan, Golub and LeVeque's pairwise update."""
    n, mean, m2 = 0, 0.0, 0.0
    for part in parts.itertuples():
        if n == 0:
            n, mean, m2 = int(part.n), float(part.mean), float(part.m2)
            continue
        total = n + int(part.n)
        delta = float(part.mean) - mean
        mean += delta * part.n / total
        m2 += float(part.m2) + delta**2 * n * part.n / total
        n = total
    return n, mean, m2


def _bootstrap(series, statistic, block: float, reps: int, seed: int) -> tuple[float, np.ndarray]:
    """``statistic`` of the series and of ``reps`` stationary-bootstrap resamples (arch)."""
    from arch.bootstrap import StationaryBootstrap

    x = np.asarray(series, dtype=float)
    if x.ndim not in (1, 2) or len(x) < 10 or not np.all(np.isfinite(x)):
        raise ValueError("bootstrap needs at least 10 finite observations (rows of a 2-d series are resampled whole)")
    # arch annotates block_size as int, but the stationary bootstrap's mean block length may be any real > 0
    # (it restarts a block with probability 1 / block_size)
    bs = StationaryBootstrap(block, x, seed=np.random.default_rng(seed))  # type: ignore[arg-type]
    return float(statistic(x)), np.array([statistic(data[0][0]) for data in bs.bootstrap(reps)])


def bootstrap_interval(
    series, statistic, block: float = 21.0, reps: int = 1000, level: float = 0.90, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of ``statistic(series)`` under the stationary bootstrap.

    Parameters
    ----------
    series : array-like
        Observations in time order (finite).
    statistic : callable
        Maps a 1-d array to a float.
    block : float
        Mean block length in observations (dependence the resampling keeps).
    reps, level, seed
        Resamples, central coverage and the seed of the generator.

    Returns
    -------
    (lower, upper)
        NaN, NaN where no resample has a finite statistic (a Sharpe ratio of returns that are all
        equal, e.g. a book that never traded).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    _, draws = _bootstrap(series, statistic, block, reps, seed)
    return _percentile_interval(draws, level)


def _percentile_interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    """The central ``level`` interval of the finite resampled statistics (NaN, NaN without any)."""
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return float("nan"), float("nan")
    tail = (1 - level) / 2
    return float(np.quantile(draws, tail)), float(np.quantile(draws, 1 - tail))


def _centred_pvalue(theta: float, draws: np.ndarray, null: float) -> float:
    """Hall's centred percentile test of H0: statistic <= ``null``: the share of resamples with
    ``theta* - theta_hat >= theta_hat - null``."""
    return float(np.mean(draws - theta >= theta - null))


def daily_hit_rate(frame: pd.DataFrame) -> pd.Series:
    """Share of forecasts with the realised sign per origin date (realised rows only)."""
    done = frame.dropna(subset=["y_true", "y_pred"])
    hits = sign_hits(done["y_true"].to_numpy(), done["y_pred"].to_numpy())
    return pd.Series(hits, index=done["asof_date"].to_numpy()).groupby(level=0).mean().sort_index()


def leaderboard(
    forecasts: pd.DataFrame | PooledEvidence,
    comparisons: pd.DataFrame,
    daily: pd.DataFrame | None,
    baseline: str,
    reps: int = 1000,
    level: float = 0.90,
) -> pd.DataFrame:
    """Models ranked per horizon by pooled mean squared error, with evidence.

    ``forecasts`` is the long frame of :func:`pairwise_comparisons`, or the
    :class:`PooledEvidence` it was added to a batch at a time.

    Columns: ``horizon, rank, model, n_obs, mse, mse_ratio`` (to ``baseline``),
    ``directional_accuracy`` and its bootstrap interval ``da_low``/``da_high`` (daily hit
    rates, mean block = the horizon, at least 5), ``dm_stat``/``dm_pvalue`` against the
    baseline (from ``comparisons``; negative = lower loss), and ``sharpe`` with
    ``sharpe_low``/``sharpe_high`` of the model's strategy from ``daily`` (``strategy, date,
    net_return``; the same for every horizon, NaN without a backtest).
    """
    evidence = forecasts if isinstance(forecasts, PooledEvidence) else PooledEvidence()
    if not isinstance(forecasts, PooledEvidence):
        evidence.add(forecasts)
    sharpe = {}
    if daily is not None:
        for strategy, g in daily.sort_values("date").groupby("strategy"):
            r = g["net_return"].to_numpy(float)
            sharpe[strategy] = (sharpe_ratio(r), *bootstrap_interval(r, sharpe_ratio, 21.0, reps, level))
    hit_rates = evidence.daily_hit_rates()
    rows = []
    for total in evidence.model_totals().itertuples():
        horizon, model = int(total.horizon), total.model
        hits = hit_rates[(horizon, model)]
        da_low, da_high = bootstrap_interval(hits.to_numpy(), np.mean, max(5.0, float(horizon)), reps, level)
        rows.append(
            {
                "horizon": horizon,
                "model": model,
                "n_obs": int(total.n_obs),
                "mse": float(total.mse),
                "directional_accuracy": float(total.directional_accuracy),
                "da_low": da_low,
                "da_high": da_high,
                **dict(zip(("sharpe", "sharpe_low", "sharpe_high"), sharpe.get(model, (np.nan,) * 3), strict=True)),
            }
        )
    board = pd.DataFrame(rows)
    base_mse = board[board["model"] == baseline].set_index("horizon")["mse"]
    board["mse_ratio"] = board["mse"] / board["horizon"].map(base_mse)
    vs = _against(comparisons, baseline)
    board = board.merge(vs, on=["horizon", "model"], how="left")
    board["rank"] = board.groupby("horizon")["mse"].rank(method="min").astype(int)
    columns = ["horizon", "rank", "model", "n_obs", "mse", "mse_ratio", "directional_accuracy", "da_low", "da_high"]
    columns += ["dm_stat", "dm_pvalue", "sharpe", "sharpe_low", "sharpe_high"]
    return board.sort_values(["horizon", "rank", "model"])[columns].reset_index(drop=True)


def _against(comparisons: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Each model's DM statistic against ``baseline``, signed so negative = model better."""
    a = comparisons[comparisons["model_b"] == baseline].rename(columns={"model_a": "model"})
    b = comparisons[comparisons["model_a"] == baseline].rename(columns={"model_b": "model"})
    b = b.assign(dm_stat=-b["dm_stat"])
    return pd.concat([a, b])[["horizon", "model", "dm_stat", "dm_pvalue"]]


def bootstrap_test(
    series, statistic, null: float, block: float = 21.0, reps: int = 1000, level: float = 0.90, seed: int = 0
) -> tuple[float, float, float]:
    """:func:`bootstrap_interval` and, from the same resamples, the one-sided p-value of H0: ``statistic <=
    null``: ``(lower, upper, p)``. The bootstrap distribution of ``theta* - theta_hat`` stands in for that of
    ``theta_hat - theta``; the p-value is the share of resamples with ``theta* - theta_hat >= theta_hat -
    null`` (Hall's centred percentile test), so a point estimate at the null gives about 0.5."""
    theta, draws = _bootstrap(series, statistic, block, reps, seed)
    low, high = _percentile_interval(draws, level)
    return low, high, _centred_pvalue(theta, draws, null)


#: The original design's targets: directional accuracy of the signal; the strategy's hit rate, Sharpe ratio, worst
#: drawdown in the stress periods and its Sharpe ratio in its worst market regime (stability across regimes).
DESIGN_TARGETS = {
    "directional_accuracy": 0.55,
    "hit_rate": 0.52,
    "sharpe": 1.2,
    "stress_max_drawdown": 0.15,
    "worst_regime_sharpe": 0.0,
}
#: Targets met by a value below them (the others by a value above).
BELOW_TARGET = frozenset({"stress_max_drawdown"})
#: Sessions a regime needs in a (resampled) series to count in worst_regime_sharpe.
MIN_REGIME_SESSIONS = 21


def stress_drawdown(returns: np.ndarray, lengths: Sequence[int]) -> float:
    """The deepest of the windows' own maximum drawdowns (a positive fraction), ``returns`` being the windows'
    returns one after the other, ``lengths`` long."""
    edges = np.cumsum([0, *lengths])
    return max(-max_drawdown(returns[a:b]) for a, b in zip(edges[:-1], edges[1:], strict=True))


def worst_regime_sharpe(rows: np.ndarray, regimes: Sequence[int] | None = None) -> float:
    """The lowest annualised Sharpe ratio over ``regimes`` of ``rows`` (return, regime): :func:`sharpe_ratio`
    per regime, from its sums (one pass, as each of the bootstrap's resamples needs). ``regimes`` defaults
    to those with at least :data:`MIN_REGIME_SESSIONS` sessions in ``rows``; a resample is scored on the
    original sample's, so that it measures the same quantity (a regime it draws too few sessions of, fewer
    than 2, has no Sharpe ratio and is left out). NaN without any."""
    returns, labels = rows[:, 0], rows[:, 1].astype(np.int64)
    n = np.bincount(labels).astype(float)
    if regimes is None:
        regimes = [int(k) for k in np.flatnonzero(n >= MIN_REGIME_SESSIONS)]
    wanted = np.asarray([k for k in regimes if k < len(n) and n[k] >= 2], dtype=np.int64)
    if not len(wanted):
        return float("nan")
    total, squares = np.bincount(labels, returns)[wanted], np.bincount(labels, returns * returns)[wanted]
    n = n[wanted]
    mean = total / n
    variance = (squares - n * mean * mean) / (n - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = np.where(variance > 0, mean / np.sqrt(variance) * np.sqrt(PERIODS_PER_YEAR), np.nan)
    return float(np.nanmin(ratios)) if not np.all(np.isnan(ratios)) else float("nan")


def design_targets(
    forecasts: pd.DataFrame,
    daily: pd.DataFrame,
    horizon: int,
    reps: int = 1000,
    level: float = 0.90,
    evidence: PooledEvidence | None = None,
    regimes: pd.Series | None = None,
    stress_windows: Sequence[tuple[str, str]] = (),
) -> pd.DataFrame:
    """The design's targets per model or strategy, with bootstrap intervals and p-values.

    Parameters
    ----------
    forecasts : pandas.DataFrame
        ``model, ticker, asof_date, y_pred, y_true`` at ``horizon`` (any subject name in
        ``model``, e.g. the governed signals' tradable rows as ``governed``).
    daily : pandas.DataFrame
        ``strategy, date, net_return`` of the backtests, and ``excess_return`` (over the
        cash rate) when cash earns interest: the hit rate then counts days beating cash.
    evidence : PooledEvidence, optional
        Further subjects: every model it holds at ``horizon`` (their daily hit rates), beside
        those of ``forecasts``.
    regimes : pandas.Series, optional
        The market regime of each session (date index): each strategy's ``worst_regime_sharpe``.
    stress_windows : sequence of (start, end)
        The stress periods (dates): each strategy's ``stress_max_drawdown``, over the windows its
        backtest covers (at least 10 sessions each).

    Returns
    -------
    pandas.DataFrame
        ``metric, subject, horizon, n, value, target, low, high, pvalue_target`` (H0: value
        <= target), ``pvalue_chance`` (H0: value <= 0.5), ``met`` (value > target) and
        ``significant`` (pvalue_target < 0.05). Directional accuracy is the mean of the daily
        shares of right signs (resampled in blocks of the horizon); hit rate is the share of
        positive days among days with a non-zero net (or excess) return (blocks of 21 days).
        Of each strategy's daily net returns, in blocks of 21 sessions: ``sharpe`` (annualised,
        target > 1.2); ``stress_max_drawdown``, the deepest maximum drawdown within a stress window
        (target < 15 %: met below it, its p-value of H0: value >= target; the windows' sessions are
        resampled together and split back into the windows' lengths); ``worst_regime_sharpe``, the
        lowest Sharpe ratio over the market regimes (sessions resampled with their regime; target
        > 0: the strategy earns in every regime). Their ``pvalue_chance`` is NULL.
    """
    hit_rates = {} if evidence is None else {m: s for (h, m), s in evidence.daily_hit_rates().items() if h == horizon}
    for subject, g in forecasts.dropna(subset=["y_true", "y_pred"]).groupby("model", sort=True):
        hit_rates[subject] = daily_hit_rate(g)
    rows = []
    for subject in sorted(hit_rates):
        x = hit_rates[subject].to_numpy()
        rows.append(_target_row("directional_accuracy", subject, horizon, x, max(5.0, horizon), reps, level))
    for strategy, g in daily.sort_values("date").groupby("strategy", sort=True):
        r = g["excess_return" if "excess_return" in g.columns else "net_return"].to_numpy(float)
        wins = (r[r != 0] > 0).astype(float)
        rows.append(_target_row("hit_rate", strategy, None, wins, 21.0, reps, level))
        net = g.set_index(pd.DatetimeIndex(g["date"]))["net_return"].astype(float)
        rows.append(_target_row("sharpe", strategy, None, net.to_numpy(), 21.0, reps, level, sharpe_ratio))
        windows = [net.loc[pd.Timestamp(start) : pd.Timestamp(end)].to_numpy() for start, end in stress_windows]
        windows = [w for w in windows if len(w) >= 10]
        if windows:
            lengths = [len(w) for w in windows]
            rows.append(
                _target_row(
                    "stress_max_drawdown",
                    strategy,
                    None,
                    np.concatenate(windows),
                    21.0,
                    reps,
                    level,
                    lambda x, n=lengths: stress_drawdown(x, n),
                )
            )
        if regimes is not None:
            labelled = pd.concat([net, regimes.rename("regime")], axis=1, join="inner").dropna()
            if len(labelled) >= 10:
                sample = labelled.to_numpy(dtype=float)
                counts = np.bincount(sample[:, 1].astype(np.int64))
                kept = [int(k) for k in np.flatnonzero(counts >= MIN_REGIME_SESSIONS)]
                rows.append(
                    _target_row(
                        "worst_regime_sharpe",
                        strategy,
                        None,
                        sample,
                        21.0,
                        reps,
                        level,
                        lambda x, k=kept: worst_regime_sharpe(x, k),
                    )
                )
    return pd.DataFrame(rows)


def _target_row(metric, subject, horizon, x, block, reps, level, statistic=None) -> dict:
    """One target's row: the design's rates (the mean of ``x``) also against a coin flip; the other statistics
    against their target only. One set of resamples gives the interval and the p-values (the same ones
    :func:`bootstrap_test` draws with the same seed)."""
    target = DESIGN_TARGETS[metric]
    rate = statistic is None
    theta, draws = _bootstrap(x, np.mean if rate else statistic, block, reps, 0)
    finite = draws[np.isfinite(draws)]
    low, high = _percentile_interval(draws, level)
    below = metric in BELOW_TARGET
    if not np.isfinite(theta) or not len(finite):  # a Sharpe ratio of constant returns: nothing to test
        p_target = np.nan
    elif below:  # H0: value >= target, the same test on the negated statistic, over the resamples with one
        p_target = _centred_pvalue(-theta, -finite, -target)
    else:  # H0: value <= target
        p_target = _centred_pvalue(theta, finite, target)
    return {
        "metric": metric,
        "subject": subject,
        "horizon": horizon,
        "n": int(len(x)),
        "value": theta,
        "target": target,
        "low": low,
        "high": high,
        "pvalue_target": p_target,
        "pvalue_chance": _centred_pvalue(theta, finite, 0.5) if rate and len(finite) else np.nan,
        "met": bool(theta < target if below else theta > target),
        "significant": bool(p_target < 0.05),  # False where NaN
    }
