"""What the LLM signal asset reads: the (ticker, session) pairs to ask for, and each one's data at its close."""

import math
from collections.abc import Sequence

import pandas as pd

from dagster_pmx.resources import Warehouse
from python_models.llm.signals import PROMPT_FEATURES, PromptInputs
from python_models.llm.source import SignalRequest

SIGNALS_TABLE = "ml.llm_signals"
FORECAST_TABLES = ("ml.base_forecasts", "ml.ensemble_forecasts")
#: Earlier valid directions of a ticker the flip-flop layer reads (its window is shorter).
DIRECTIONS_KEPT = 50


def pending_pairs(warehouse: Warehouse, benchmark: str, history: int, horizon: int, budget: int) -> pd.DataFrame:
    """``ticker, date`` and the prompt's feature columns of the pairs to ask for: every ticker but the
    benchmark, with a price, on the latest ``history`` sessions of marts.features, not answered before at
    ``horizon`` (an answer, valid or not, is never asked for again: ml.llm_signals keeps it; a call no model
    answered is asked again), the oldest first, at most ``budget``."""
    asked = ""
    if warehouse.has(SIGNALS_TABLE):
        # a pair some model answered is never asked again; one no model answered (a server down) is
        asked = (
            f"anti join {SIGNALS_TABLE} as s on s.ticker = f.ticker and s.date = f.date and s.horizon = ? "
            "and s.model <> ''"
        )
    columns = ", ".join(f"f.{c}" for c in PROMPT_FEATURES)
    query = f"""
        with latest as (
            select distinct date from marts.features where ticker <> ? order by date desc limit ?
        )
        select f.ticker, f.date, {columns}
        from marts.features as f
        semi join latest on latest.date = f.date
        {asked}
        where f.ticker <> ? and f.has_price
        order by f.date, f.ticker
        limit ?
    """
    params: list = [benchmark, history, *([horizon] if asked else []), benchmark, budget]
    return warehouse.query(query, params)


def signal_requests(warehouse: Warehouse, pairs: pd.DataFrame, benchmark: str, horizon: int) -> list[SignalRequest]:
    """Each pair's request: its features at the close (the row of that date), the forecasts at ``horizon``
    made at that close, and the market's regime probabilities filtered at it: nothing dated later."""
    if pairs.empty:
        return []
    tables = [t for t in FORECAST_TABLES if warehouse.has(t)]
    has_regimes = warehouse.has("ml.regime_probabilities")
    with warehouse.connect(read_only=True) as con:
        con.register("pairs", pairs[["ticker", "date"]])
        union = " union all ".join(
            f"select model, ticker, asof_date, y_pred from {t} where horizon = {int(horizon)}" for t in tables
        )
        made_at_the_close = "semi join pairs on pairs.ticker = f.ticker and pairs.date = f.asof_date"
        forecasts = (
            con.execute(f"select f.* from ({union}) as f {made_at_the_close}").df()
            if tables
            else pd.DataFrame(columns=["model", "ticker", "asof_date", "y_pred"])
        )
        regimes = (
            con.execute(
                "select r.date, r.regime, r.probability from ml.regime_probabilities as r "
                "where r.ticker = ? and r.date in (select distinct date from pairs)",
                [benchmark],
            ).df()
            if has_regimes
            else pd.DataFrame(columns=["date", "regime", "probability"])
        )
    by_origin = {
        key: dict(zip(g["model"], g["y_pred"], strict=True)) for key, g in forecasts.groupby(["ticker", "asof_date"])
    }
    by_date = {
        d: {str(r): p for r, p in zip(g["regime"], g["probability"], strict=True)} for d, g in regimes.groupby("date")
    }
    requests = []
    for row in pairs.itertuples(index=False):
        date = pd.Timestamp(row.date)
        features = {c: getattr(row, c) for c in PROMPT_FEATURES}
        vol = features.get("realized_vol_21")
        requests.append(
            SignalRequest(
                PromptInputs(
                    row.ticker,
                    str(date.date()),
                    horizon,
                    features,
                    by_origin.get((row.ticker, date), {}),
                    by_date.get(date, {}),
                ),
                vol / math.sqrt(252) if vol is not None and vol == vol else math.nan,
            )
        )
    return requests


def previous_directions(warehouse: Warehouse, tickers: Sequence[str], horizon: int) -> dict[str, list[str]]:
    """Each ticker's latest valid directions at ``horizon`` (oldest first): what the flip-flop layer counts."""
    if not warehouse.has(SIGNALS_TABLE) or not len(tickers):
        return {}
    rows = warehouse.query(
        f"select ticker, direction from (select ticker, date, direction, row_number() over "
        f"(partition by ticker order by date desc) as k from {SIGNALS_TABLE} where valid and horizon = ?) "
        f"where k <= ? order by ticker, date",
        [horizon, DIRECTIONS_KEPT],
    )
    return {t: list(g["direction"]) for t, g in rows.groupby("ticker") if t in set(tickers)}


#: Columns of :func:`valid_signals`.
VALID_COLUMNS = [
    "model",
    "ticker",
    "date",
    "horizon",
    "direction",
    "expected_return",
    "confidence",
    "called_at",
    "y_true",
]


def valid_signals(warehouse: Warehouse, horizon: int | None = None, realised: bool = False) -> pd.DataFrame:
    """:data:`VALID_COLUMNS` of the valid signals (at ``horizon`` when given), by date, ticker and time asked:
    ``y_true`` is the ticker's simple return over the horizon's sessions after the signal's close, NULL until
    realised (``realised``: only the signals that are). Empty when the source has never run."""
    if not warehouse.has(SIGNALS_TABLE):
        return pd.DataFrame(columns=VALID_COLUMNS)
    return warehouse.query(
        f"""
        select s.model, s.ticker, s.date, s.horizon, s.direction, s.expected_return, s.confidence, s.called_at,
            r.fwd_return as y_true
        from {SIGNALS_TABLE} as s
        left join intermediate.int_forward_returns as r
            on r.ticker = s.ticker and r.date = s.date and r.horizon = s.horizon
        where s.valid and (? is null or s.horizon = ?) and (not ? or r.fwd_return is not null)
        order by s.date, s.ticker, s.called_at, s.model
        """,
        [horizon, horizon, realised],
    )


def realised_signals(warehouse: Warehouse) -> pd.DataFrame:
    """The valid signals whose horizon has been realised (:func:`valid_signals`), every horizon."""
    return valid_signals(warehouse, realised=True)


def forecasts_at_signals(warehouse: Warehouse) -> pd.DataFrame:
    """``model, ticker, date, horizon, y_pred``: every forecaster's forecast made at the close of a valid LLM
    signal, at its horizon (marts.forecasts), to score the time-series models on the LLM's own rows."""
    columns = ["model", "ticker", "date", "horizon", "y_pred"]
    if not warehouse.has(SIGNALS_TABLE) or not warehouse.has("marts.forecasts"):
        return pd.DataFrame(columns=columns)
    return warehouse.query(
        f"""
        select f.model, f.ticker, f.asof_date as date, f.horizon, f.y_pred
        from marts.forecasts as f
        semi join (select distinct ticker, date, horizon from {SIGNALS_TABLE} where valid) as s
            on s.ticker = f.ticker and s.date = f.asof_date and s.horizon = f.horizon
        order by f.model, f.ticker, f.asof_date
        """
    )
