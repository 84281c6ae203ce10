"""What the portfolio assets read from the warehouse, as ibis expressions.

Filters and aggregations run in DuckDB and only their result reaches pandas; :func:`~dagster_pmx.defs.reads.frame`
gives the dtypes DuckDB's ``.df()`` gave, so the library receives the frames it received when
these reads were SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
import pandas as pd

from dagster_pmx.defs.reads import frame
from dagster_pmx.resources import Warehouse
from python_models.forecasters.registry import BASELINE
from python_models.llm.scores import BOOK_OF_BASIS, LIVE, LIVE_DAYS

#: The tables the allocations asset writes: a resumed run extends all of them.
ALLOCATION_TABLES = ("marts.allocations", "marts.drawdown_control", "ml.strategy_decisions")


def resume_date(warehouse: Warehouse) -> pd.Timestamp | None:
    """The last session the stored allocations decided (the drawdown control's last state), or None
    when a table is missing or empty: the daily refresh then rebuilds them."""
    since = warehouse.last("marts.drawdown_control")
    return since if since is not None and warehouse.has(*ALLOCATION_TABLES) else None


def macro_series(warehouse: Warehouse, series: tuple[str, ...]) -> dict[str, pd.Series]:
    """Each of the staged macro ``series`` that has values, by date."""
    with warehouse.ibis() as db:
        t = db.table("stg_macro", database="staging")
        rows = frame(t.filter(t.series_id.isin(list(series))).select("series_id", "date", "value").order_by("date"))
    return {
        k: pd.Series(g["value"].to_numpy(), index=pd.DatetimeIndex(g["date"])) for k, g in rows.groupby("series_id")
    }


@dataclass(frozen=True)
class SignalInputs:
    """What the books are decided from: the governed ``signals`` (see :func:`signal_inputs`), the
    decision grid (every date of marts.signals), the first decision date and the tickers of any strategy
    over the whole history (an extension lays the same grid on the same universe), and the signals'
    ``horizon`` and the ``models`` with forecasts at it after the dates already decided. Their own
    books' signals: on the daily refresh ``model_rows``, every model's at once (:func:`model_signals`'
    rows, read with the query that names the models); on a full build None, and :func:`model_signals`
    reads a model at a time, so the build never holds every model's forecasts at once."""

    signals: pd.DataFrame
    grid: pd.DatetimeIndex
    first: pd.Timestamp
    tickers: set[str]
    horizon: int
    models: tuple[str, ...]
    model_rows: pd.DataFrame | None = None


def signal_inputs(warehouse: Warehouse, since: pd.Timestamp | None) -> SignalInputs | None:
    """The decisions' inputs after ``since``; None when there is no signal after it.

    ``signals`` has ``strategy, ticker, date, expected_return, forecast_std, confidence,
    tradable`` per decision of the governed book (a row that may not trade expects 0). One ibis
    session for the queries: each table is looked up once.
    """
    with warehouse.ibis() as db:
        s, f = db.table("signals", database="marts"), db.table("forecasts", database="marts")
        found = frame(s.aggregate(horizon=s.horizon.max()))["horizon"].iloc[0]
        if pd.isna(found):
            return None
        horizon = int(found)
        at_horizon = f.filter(f.horizon == horizon)
        governed, models = s, at_horizon
        if since is not None:
            governed, models = s.filter(s.date > pd.Timestamp(since)), models.filter(f.asof_date > pd.Timestamp(since))
        signals = frame(
            governed.select(
                strategy=ibis.literal("governed"),
                ticker=s.ticker,
                date=s.date,
                expected_return=ibis.ifelse(s.tradable, s.expected_return, 0),
                forecast_std=s.forecast_std,
                confidence=s.confidence,
                tradable=s.tradable,
            )
        )
        if since is None:
            model_rows = None
            names = tuple(sorted(frame(models.select("model").distinct())["model"]))
        else:  # the refresh reads every model's few new rows: one read names the models and gives them
            model_rows = frame(_own_signals(f, models))
            names = tuple(sorted(model_rows["strategy"].unique()))
        if signals.empty and not names:
            return None
        grid = pd.DatetimeIndex(frame(s.select("date").distinct().order_by("date"))["date"])
        both = s.select("ticker", "date").union(at_horizon.select("ticker", date=f.asof_date), distinct=False)
        universe = frame(both.aggregate(first=both.date.min(), tickers=both.ticker.collect(distinct=True)))
    return SignalInputs(
        signals,
        grid,
        pd.Timestamp(universe["first"].iloc[0]),
        set(universe["tickers"].iloc[0]),
        horizon,
        names,
        model_rows,
    )


def model_signals(warehouse: Warehouse, model: str | None, horizon: int, since: pd.Timestamp | None) -> pd.DataFrame:
    """``model``'s own forecasts at ``horizon`` (after ``since``) as signals of its ungoverned book, or
    every model's where ``model`` is None: :func:`signal_inputs`' columns, without confidence or gate."""
    with warehouse.ibis() as db:
        f = db.table("forecasts", database="marts")
        rows = f.filter(f.horizon == horizon)
        if model is not None:
            rows = rows.filter(f.model == model)
        if since is not None:
            rows = rows.filter(f.asof_date > pd.Timestamp(since))
        return frame(_own_signals(f, rows))


def _own_signals(f: ir.Table, rows: ir.Table) -> ir.Table:
    """``rows`` of marts.forecasts ``f`` as signals of each model's own book (:func:`model_signals`)."""
    return rows.select(
        strategy=f.model,
        ticker=f.ticker,
        date=f.asof_date,
        expected_return=f.y_pred,
        forecast_std=f.y_std,
        confidence=ibis.null("float64"),
        tradable=ibis.null("boolean"),
    )


def regime_probabilities(warehouse: Warehouse) -> pd.DataFrame:
    """The HMM's filtered market-regime probabilities, sessions by regimes."""
    with warehouse.ibis() as db:
        t = db.table("regime_probabilities", database="ml")
        probs = frame(t.select("date", "regime", "probability"))
    return probs.pivot(index="date", columns="regime", values="probability").sort_index()


def market_volatility(warehouse: Warehouse) -> pd.Series:
    """The benchmark's annualised 21-session volatility per session, as dbt computes it for the features."""
    with warehouse.ibis() as db:
        t = db.table("int_market", database="intermediate")
        vol = frame(t.select("date", "market_vol_21"))
    return pd.Series(vol["market_vol_21"].to_numpy(), index=pd.DatetimeIndex(vol["date"]))


def bond_shares(warehouse: Warehouse) -> pd.Series:
    """The safe sleeve's share in the bond proxy per session (ml.safe_sleeve)."""
    with warehouse.ibis() as db:
        t = db.table("safe_sleeve", database="ml")
        sleeve = frame(t.select("date", "bond_share"))
    return pd.Series(sleeve["bond_share"].to_numpy(), index=pd.DatetimeIndex(sleeve["date"]))


def stored_decisions(warehouse: Warehouse) -> pd.DataFrame:
    """The stored ``ml.strategy_decisions`` rows (``strategy, date, ticker, weight``)."""
    with warehouse.ibis() as db:
        t = db.table("strategy_decisions", database="ml")
        return frame(t.select("strategy", "date", "ticker", "weight"))


def stored_scales(warehouse: Warehouse) -> pd.DataFrame:
    """The stored drawdown control's scale per session (rows) and strategy (columns)."""
    with warehouse.ibis() as db:
        t = db.table("drawdown_control", database="marts")
        scales = frame(t.select("strategy", "date", "scale"))
    return scales.pivot(index="date", columns="strategy", values="scale")


def stored_es_scales(warehouse: Warehouse) -> pd.DataFrame:
    """The stored ES limit's scale per decision date (rows) and strategy (columns)."""
    with warehouse.ibis() as db:
        t = db.table("es_control", database="marts")
        scales = frame(t.select("strategy", "date", "scale"))
    return scales.pivot(index="date", columns="strategy", values="scale")


def allocations_of(warehouse: Warehouse, strategies: Sequence[str], after: pd.Timestamp) -> pd.DataFrame:
    """``strategy, date, ticker, weight, sleeve`` of the marts.allocations rows of ``strategies`` after ``after``."""
    with warehouse.ibis() as db:
        t = db.table("allocations", database="marts")
        wanted = t.filter(t.strategy.isin(list(strategies)), t.date > pd.Timestamp(after))
        return frame(wanted.select("strategy", "date", "ticker", "weight", "sleeve"))


def stored_drawdown_settings(warehouse: Warehouse) -> list[dict[str, str | float]]:
    """The drawdown control's settings marts.drawdown_control was written with (empty: a table from before they
    were stored)."""
    with warehouse.ibis() as db:
        t = db.table("drawdown_control", database="marts")
        names = ["mode", "de_risk_at", "stop_at", "cap_multiplier"]
        if not set(names) <= set(t.columns):
            return []
        rows = frame(t.select(*names).distinct())
    return [
        {"mode": str(m), "de_risk_at": float(d), "stop_at": float(s), "cap_multiplier": float(c)}
        for m, d, s, c in rows.itertuples(index=False)
    ]


def stored_es_settings(warehouse: Warehouse) -> set[tuple[float, float]]:
    """The (limit, level) pairs marts.es_control was written with (empty: written with the limit off)."""
    with warehouse.ibis() as db:
        t = db.table("es_control", database="marts")
        pairs = frame(t.select("limit", "level").distinct())
    return {(float(a), float(b)) for a, b in pairs.itertuples(index=False)}


def es_control_after(warehouse: Warehouse, after: pd.Timestamp) -> pd.DataFrame:
    """The marts.es_control rows dated after ``after``."""
    with warehouse.ibis() as db:
        t = db.table("es_control", database="marts")
        return frame(t.filter(t.date > pd.Timestamp(after)))


def stored_signals(warehouse: Warehouse) -> pd.DataFrame:
    """Every row and column of marts.signals (what its expectations validate)."""
    with warehouse.ibis() as db:
        return frame(db.table("signals", database="marts"))


def allocations_after(warehouse: Warehouse, after: pd.Timestamp) -> pd.DataFrame:
    """Every column of the marts.allocations rows dated after ``after``."""
    with warehouse.ibis() as db:
        t = db.table("allocations", database="marts")
        return frame(t.filter(t.date > pd.Timestamp(after)))


def price_staleness(warehouse: Warehouse, after: pd.Timestamp | None = None) -> pd.DataFrame:
    """``strategy, date, max_sessions_since_price`` per decision of marts.allocations (dated after ``after``,
    when given): over its nonzero risky weights, the most sessions since the ticker's last price at that
    close (1,000,000 for a ticker with no price up to then, or none in intermediate.int_returns)."""
    with warehouse.ibis() as db:
        r = db.table("int_returns", database="intermediate")
        s = db.table("int_sessions", database="intermediate")
        stamped = r.join(s, r.date == s.date).select(r.ticker, r.date, s.session_index, r.has_price)
        priced = ibis.ifelse(stamped.has_price, stamped.session_index, ibis.null("int64"))
        since_price = stamped.session_index - priced.max().over(
            ibis.cumulative_window(group_by="ticker", order_by="date")
        )
        last_price = stamped.select("ticker", "date", sessions_since_price=since_price)
        a = db.table("allocations", database="marts")
        a = a.filter(a.sleeve == "risky", a.weight != 0)
        if after is not None:
            a = a.filter(a.date > pd.Timestamp(after))
        joined = a.left_join(last_price, [a.ticker == last_price.ticker, a.date == last_price.date])
        return frame(
            joined.group_by([a.strategy, a.date]).aggregate(
                max_sessions_since_price=last_price.sessions_since_price.fill_null(1_000_000).max()
            )
        )


def drawdown_control_violations(
    warehouse: Warehouse, max_gross: float, after: pd.Timestamp | None = None
) -> pd.DataFrame:
    """``strategy, date, state, scale, gross, undecided`` of each session of marts.drawdown_control (after
    ``after``, when given) whose control marts.allocations breaks, by strategy and date: risky gross
    (``gross``, NULL where nothing risky was decided) above the scale times ``max_gross``, or no decision
    (``undecided``) on a session where the scale changed (from the session before, read either way)."""
    with warehouse.ibis() as db:
        a = db.table("allocations", database="marts")
        if after is not None:
            a = a.filter(a.date > pd.Timestamp(after))
        day = a.date.cast("date")
        risky = (
            a.filter(a.sleeve == "risky").group_by([a.strategy, day.name("date")]).aggregate(gross=a.weight.abs().sum())
        )
        decided = a.select(a.strategy, date=day).distinct()
        c = db.table("drawdown_control", database="marts")
        states = c.select(
            "strategy",
            "state",
            "scale",
            date=c.date.cast("date"),
            previous_scale=c.scale.lag().over(group_by="strategy", order_by=c.date),
        )
        if after is not None:  # after the lag: the first session's change is from the one before it
            states = states.filter(states.date > pd.Timestamp(after).date())
        joined = states.left_join(
            risky, [states.strategy == risky.strategy, states.date == risky.date], rname="{name}_risky"
        ).left_join(decided, [states.strategy == decided.strategy, states.date == decided.date], rname="{name}_decided")
        undecided = decided.date.isnull()
        rows = joined.filter(
            (risky.gross.fill_null(0) > states.scale * max_gross + 1e-9)
            | ((states.previous_scale != states.scale) & undecided)
        ).select(states.strategy, states.date, states.state, states.scale, risky.gross, undecided=undecided)
        return frame(rows.order_by(["strategy", "date"]))


#: The LLM source's own books (marts.allocations strategies): its live signals, and its backfilled ones
#: (asked more than :data:`~python_models.llm.scores.LIVE_DAYS` days after their close), apart.
LLM_BOOKS = {book: basis == LIVE for basis, book in BOOK_OF_BASIS.items()}


def llm_books(warehouse: Warehouse, horizon: int) -> tuple[str, ...]:
    """The LLM books with at least one valid signal at ``horizon`` (none when the source never ran)."""
    if not warehouse.has("ml.llm_signals"):
        return ()
    rows = warehouse.query(
        f"select distinct {_IS_LIVE} as live from ml.llm_signals as l where valid and horizon = ?", [horizon]
    )
    have = set(rows["live"].astype(bool))
    return tuple(name for name, live in sorted(LLM_BOOKS.items()) if live in have)


def llm_book_signals(warehouse: Warehouse, book: str, horizon: int, since: pd.Timestamp | None) -> pd.DataFrame:
    """The signals of the LLM source's own ungoverned book ``book`` (:data:`LLM_BOOKS`), after ``since``:
    :func:`signal_inputs`' columns, without confidence or gate, on every decision date of marts.signals from
    the book's first signal on and for every ticker it ever signalled, so a date or ticker without a signal is
    a decision to hold none of it. The expected return is the LLM's (the earliest answer where a pair was
    asked twice); the spread it is sized with, the random walk's forecast standard deviation at the same
    origin, the scale of the horizon's return without a view (a signal without one is not sized)."""
    live = LLM_BOOKS[book]
    return warehouse.query(
        f"""
        with answers as (
            select l.ticker, l.date, l.expected_return,
                row_number() over (partition by l.ticker, l.date order by l.called_at) as k
            from ml.llm_signals as l
            where l.valid and l.horizon = ? and {_IS_LIVE} = ?
        ),
        first_answers as (select * from answers where k = 1),
        grid as (
            select distinct date from marts.signals
            where date >= (select min(date) from first_answers)
                and date > coalesce(cast(? as timestamp), timestamp '1900-01-01')
        ),
        tickers as (select distinct ticker from first_answers),
        scale as (
            select ticker, asof_date as date, y_std from marts.forecasts where model = ? and horizon = ?
        ),
        final as (
            select ? as strategy, t.ticker, g.date,
                case when s.y_std > 0 then a.expected_return end as expected_return,
                coalesce(s.y_std, 1.0) as forecast_std,
                cast(null as double) as confidence, cast(null as boolean) as tradable
            from grid as g
            cross join tickers as t
            left join first_answers as a on a.ticker = t.ticker and a.date = g.date
            left join scale as s on s.ticker = t.ticker and s.date = g.date
        )
        select * from final order by date, ticker
        """,
        [horizon, live, None if since is None else pd.Timestamp(since), BASELINE, horizon, book],
    )


#: Whether an ml.llm_signals row ``l`` was asked live (python_models.llm.scores.is_live).
_IS_LIVE = f"(l.called_at - l.date <= interval {LIVE_DAYS} day)"
