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

from python_models.evaluation.comparison import bootstrap_test
from python_models.evaluation.metrics import dm_test, sign_hits

#: Columns of ``marts.llm_scores``.
COLUMNS = ["basis", "subject", "horizon", "metric", "n_signals", "n_dates", "value", "low", "high", "pvalue"]
#: Calendar days after a signal's close within which it counts as asked live.
LIVE_DAYS = 5
#: The sign each direction forecasts.
SIGNS = {"up": 1.0, "down": -1.0, "flat": 0.0}
#: Fewest dates with realised signals before intervals and tests are computed (below: value only).
MIN_DATES = 10
ALL = "all"


def llm_scores(realised: pd.DataFrame, reps: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Score the valid, realised signals (``model, ticker, date, horizon, direction, expected_return, called_at,
    y_true``).

    Returns one row per (basis, subject, horizon, metric) (:data:`COLUMNS`): the basis is ``live`` or
    ``backfill``, the subject the answering model, and ``all`` for every model together.
    """
    need = {"model", "ticker", "date", "horizon", "direction", "expected_return", "called_at", "y_true"}
    if need - set(realised.columns):
        raise ValueError(f"realised signals lack columns {sorted(need - set(realised.columns))}")
    done = realised.dropna(subset=["expected_return", "y_true"])
    lag = pd.to_datetime(done["called_at"]) - pd.to_datetime(done["date"])
    done = done.assign(basis=np.where(lag <= pd.Timedelta(days=LIVE_DAYS), "live", "backfill"))
    rows: list[dict] = []
    for basis, part in done.groupby("basis", sort=True):
        groups = [(ALL, part)] + [(str(m), g) for m, g in part.groupby("model", sort=True)]
        for subject, rows_s in groups:
            for horizon, rows_h in rows_s.groupby("horizon", sort=True):
                rows += [{"basis": basis, **r} for r in _scores(subject, int(horizon), rows_h, reps, seed)]
    return pd.DataFrame(rows, columns=COLUMNS)


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
