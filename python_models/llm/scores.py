"""How the LLM source scores: its valid signals against what was realised, and against the random walk.

On the valid signals whose horizon has passed (``expected_return`` against the realised simple return over
the same sessions, pooled over tickers), by the LLM model that answered and over all of them, and apart for
the signals asked **live** (within :data:`LIVE_DAYS` days of the signal's close) and those **backfilled**
(asked later): a model asked about a date before its training data ends may know what followed it, so only
the live signals are evidence of skill.

``directional_accuracy``
    the share of signals whose direction (up, down, flat) matched the realised return's sign (flat matches
    only 0), with
    a 90 % interval from the stationary bootstrap over dates (a date's signals resampled together, mean block
    the horizon: the signals of nearby dates overlap) and the one-sided p-value of "no better than 0.5";
``always_up_accuracy``
    the share of those rows whose return was positive: what forecasting "up" every time scores on them;
``mse_ratio``
    the signals' mean squared error over the random walk's (a zero forecast of the return) on the same rows;
``dm_stat``
    the Diebold–Mariano statistic of the date's mean loss differential (signal minus random walk; negative:
    the signals lose less), :func:`~python_models.evaluation.metrics.dm_test` at the horizon, with its one-sided
    p-value of "no lower loss than the random walk".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from python_models.backtest.performance import sharpe_ratio
from python_models.evaluation.comparison import bootstrap_test
from python_models.evaluation.metrics import dm_test, sign_hits

#: Columns of ``marts.llm_scores``.
COLUMNS = ["basis", "source", "subject", "horizon", "metric", "n_signals", "n_dates", "value", "low", "high", "pvalue"]
#: The LLM source's own book (a marts.allocations strategy) of each basis's signals.
BOOK_OF_BASIS = {"live": "llm", "backfill": "llm_backfill"}
#: ``source`` of a row: the LLM source, or a time-series model scored on the same (ticker, date) rows.
LLM, TIME_SERIES = "llm", "time_series"
#: Calendar days after a signal's close within which it counts as asked live.
LIVE_DAYS = 5
#: The sign each direction forecasts.
SIGNS = {"up": 1.0, "down": -1.0, "flat": 0.0}
#: Fewest dates with realised signals before intervals and tests are computed (below: value only).
MIN_DATES = 10
ALL = "all"
LIVE, BACKFILL = "live", "backfill"
#: The comparison panel's columns after ``basis, source, subject`` (:func:`comparison_table`).
PANEL_COLUMNS = ["n_signals", "directional_accuracy", "da_low", "da_high", "da_pvalue", "always_up_accuracy",
                 "mse_ratio", "dm_stat", "dm_pvalue", "book_sharpe"]  # fmt: skip


def llm_scores(
    realised: pd.DataFrame, reps: int = 1000, seed: int = 0, models: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Score the valid, realised signals (``model, ticker, date, horizon, direction, expected_return, called_at,
    y_true``), and the time-series models beside them on the same rows.

    ``models`` (``model, ticker, date, horizon, y_pred``: the forecasts made at each signal's close) are
    scored on each basis's (ticker, date, horizon) rows of the LLM, with the same metrics and intervals, so
    the comparison is like for like: same dates, same tickers, same outcomes.

    Returns one row per (basis, source, subject, horizon, metric) (:data:`COLUMNS`): the basis is ``live``
    or ``backfill``; the source ``llm``, with the subject the answering model and ``all`` for every model
    together, or ``time_series``, with the subject the forecaster.
    """
    need = {"model", "ticker", "date", "horizon", "direction", "expected_return", "called_at", "y_true"}
    if need - set(realised.columns):
        raise ValueError(f"realised signals lack columns {sorted(need - set(realised.columns))}")
    done = realised.dropna(subset=["expected_return", "y_true"])
    done = done.assign(basis=np.where(is_live(done["called_at"], done["date"]), LIVE, BACKFILL))
    rows: list[dict] = []
    for basis, part in done.groupby("basis", sort=True):
        groups = [(LLM, ALL, part)] + [(LLM, str(m), g) for m, g in part.groupby("model", sort=True)]
        if models is not None and len(models):
            groups += _same_rows(part, models)
        for source, subject, rows_s in groups:
            for horizon, rows_h in rows_s.groupby("horizon", sort=True):
                rows += [
                    {"basis": basis, "source": source, **r} for r in _scores(subject, int(horizon), rows_h, reps, seed)
                ]
    return pd.DataFrame(rows, columns=COLUMNS)


def _same_rows(part: pd.DataFrame, models: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """Each time-series model's forecasts on ``part``'s (ticker, date, horizon) rows, as signals scored
    the way the LLM's are: the forecast is the expected return, its sign the direction."""
    keys = ["ticker", "date", "horizon"]
    pairs = part[[*keys, "y_true"]].drop_duplicates(keys)
    f = models.assign(date=pd.to_datetime(models["date"])).merge(
        pairs.assign(date=pd.to_datetime(pairs["date"])), on=keys, how="inner"
    )
    f = f.dropna(subset=["y_pred"])
    f = f.assign(
        expected_return=f["y_pred"], direction=np.sign(f["y_pred"]).map({1.0: "up", -1.0: "down", 0.0: "flat"})
    )
    return [(TIME_SERIES, str(m), g) for m, g in f.groupby("model", sort=True)]


def is_live(called_at: pd.Series, date: pd.Series) -> np.ndarray:
    """Whether each signal was asked live: within :data:`LIVE_DAYS` calendar days of its close."""
    lag = pd.to_datetime(pd.Series(called_at)).reset_index(drop=True) - pd.to_datetime(pd.Series(date)).reset_index(
        drop=True
    )
    return (lag <= pd.Timedelta(days=LIVE_DAYS)).to_numpy()


def _scores(subject: str, horizon: int, rows: pd.DataFrame, reps: int, seed: int) -> list[dict]:
    rows = rows.assign(
        hit=sign_hits(rows["y_true"], rows["direction"].map(SIGNS)).astype(float),
        up=(rows["y_true"] > 0).astype(float),
        diff=(rows["expected_return"] - rows["y_true"]) ** 2 - rows["y_true"] ** 2,
        loss=(rows["expected_return"] - rows["y_true"]) ** 2,
        base_loss=rows["y_true"] ** 2,
    )
    by_date = rows.groupby("date", sort=True)
    # a date's signals together: sums and counts per date, so a resample of dates keeps each cross-section whole
    hits = np.column_stack([by_date["hit"].sum(), by_date["hit"].count()])
    base = {"subject": subject, "horizon": horizon, "n_signals": len(rows), "n_dates": len(hits)}
    enough = len(hits) >= MIN_DATES

    def pooled(x: np.ndarray) -> float:
        return float(x[:, 0].sum() / x[:, 1].sum())

    accuracy = pooled(hits)
    low = high = p_accuracy = np.nan
    if enough:
        low, high, p_accuracy = bootstrap_test(hits, pooled, null=0.5, block=float(horizon), reps=reps, seed=seed)
    mse_ratio = float(rows["loss"].mean() / rows["base_loss"].mean()) if rows["base_loss"].mean() > 0 else np.nan
    stat = p_dm = np.nan
    d = by_date["diff"].mean().to_numpy()
    if enough and d.std() > 0:
        stat, p_two = dm_test(d, horizon)
        p_dm = p_two / 2.0 if stat < 0 else 1.0 - p_two / 2.0
    return [
        {**base, "metric": "directional_accuracy", "value": accuracy, "low": low, "high": high, "pvalue": p_accuracy},
        {**base, "metric": "always_up_accuracy", "value": float(rows["up"].mean()), "low": np.nan, "high": np.nan,
         "pvalue": np.nan},
        {**base, "metric": "mse_ratio", "value": mse_ratio, "low": np.nan, "high": np.nan, "pvalue": np.nan},
        {**base, "metric": "dm_stat", "value": stat, "low": np.nan, "high": np.nan, "pvalue": p_dm},
    ]  # fmt: skip


def comparison_table(scores: pd.DataFrame, daily: pd.DataFrame) -> pd.DataFrame:
    """The LLM source beside the time-series models, a row per (basis, source, subject, horizon) of ``scores``
    (:func:`llm_scores`): signals scored, directional accuracy with its interval and p-value, what always "up"
    scores, the MSE over the random walk's and the Diebold–Mariano test; and ``book_sharpe``, the annualised
    Sharpe ratio of the subject's own book (``daily``: ``strategy, date, net_return`` of marts.backtest_daily)
    over the sessions the basis's LLM book was backtested on, so both are judged on the same days (NaN for a
    single LLM model: the book pools every model's signals)."""
    key = ["basis", "source", "subject", "horizon"]
    if scores.empty:
        return pd.DataFrame(columns=[*key, *PANEL_COLUMNS])
    by = scores.set_index([*key, "metric"])
    da = by.xs("directional_accuracy", level="metric")
    dm = by.xs("dm_stat", level="metric")
    out = pd.DataFrame(
        {
            "n_signals": da["n_signals"],
            "directional_accuracy": da["value"],
            "da_low": da["low"],
            "da_high": da["high"],
            "da_pvalue": da["pvalue"],
            "always_up_accuracy": by.xs("always_up_accuracy", level="metric")["value"],
            "mse_ratio": by.xs("mse_ratio", level="metric")["value"],
            "dm_stat": dm["value"],
            "dm_pvalue": dm["pvalue"],
        }
    ).reset_index()
    returns = {s: g.set_index("date")["net_return"] for s, g in daily.groupby("strategy")}
    sharpe = []
    for row in out.itertuples(index=False):
        book = BOOK_OF_BASIS.get(row.basis)
        strategy = (
            book if (row.source, row.subject) == (LLM, ALL) else row.subject if row.source == TIME_SERIES else None
        )
        if book not in returns or strategy not in returns:
            sharpe.append(np.nan)
            continue
        sessions = returns[book].index
        sharpe.append(sharpe_ratio(returns[strategy].reindex(sessions).dropna()))
    out["book_sharpe"] = sharpe
    # per basis the LLM first, then the forecasters from the most accurate on its rows
    out["rank"] = (out["source"] != LLM).astype(int)
    out = out.sort_values(
        ["basis", "horizon", "rank", "directional_accuracy"], ascending=[True, True, True, False], kind="stable"
    )
    out = out.drop(columns="rank")
    return out.reset_index(drop=True)
