"""Allocation: the safe sleeve's bond proxy, and target weights per strategy under the risk limits.

The assets read (:mod:`dagster_pmx.defs.portfolio.reads`), call the library and write. The
allocations asset's full build decides every date and replaces its tables; the daily refresh
decides the dates after the last stored one, extends the stored books and the drawdown control's
path (:mod:`python_models.portfolio.books`) and appends the new rows.
"""

from collections.abc import Iterator

import dagster as dg
import numpy as np
import pandas as pd

from dagster_pmx.defs import schemas
from dagster_pmx.defs.backtest.engine import Market, backtester, load_market
from dagster_pmx.defs.portfolio import reads
from dagster_pmx.defs.reads import sessions as session_calendar
from dagster_pmx.defs.refresh import APPENDED_AFTER, IncrementalRun
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.portfolio.allocation import BOND, barbell_book, risk_parity_book
from python_models.portfolio.barbell import BarbellPolicy, risky_share
from python_models.portfolio.books import (
    ALLOCATION_COLUMNS,
    allocation_table,
    book_of,
    control_books,
    decision_rows,
    extend_books,
    kelly_signals,
)
from python_models.portfolio.risk_limits import DrawdownPolicy, EsLimit, apply_es_limit
from python_models.portfolio.safe_sleeve import (
    bond_share,
    daily_bond_returns,
    yield_change_forecast,
)
from python_models.portfolio.sizing import CASH, kelly_book

#: Strategies meant to be traded: the design's risk limits (drawdown control) apply to them.
CONTROLLED = ("governed", "barbell", "risk_parity")
#: The tables the allocations asset writes.
OUTPUTS = (
    ["marts", "allocations"],
    ["marts", "drawdown_control"],
    ["ml", "strategy_decisions"],
    ["marts", "es_control"],
)
DRAWDOWN_COLUMNS = [c.name for c in schemas.DRAWDOWN_CONTROL.columns]
ES_CONTROL_COLUMNS = [c.name for c in schemas.ES_CONTROL.columns]
DECISION_COLUMNS = [c.name for c in schemas.STRATEGY_DECISIONS.columns]


@dg.asset(
    key=["ml", "safe_sleeve"],
    group_name="portfolio",
    metadata={"dagster/column_schema": schemas.SAFE_SLEEVE},
    pool="warehouse",
    kinds={"python", "duckdb"},
    deps=[dg.AssetKey(["staging", "stg_macro"]), dg.AssetKey(["intermediate", "int_sessions"])],
    description="The barbell's safe sleeve per session: the return of a constant-duration bond proxy priced off "
    "Moody's AAA yield (the month's carry accrued over its sessions; the price effect of its yield change, by "
    "duration and convexity, on the first session of the next month, when the monthly average is published), "
    "and the share of the sleeve held in it, from a walk-forward forecast of the coming month's yield "
    "change (last known yield and core-CPI inflation changes, both used two months after their month). "
    "python_models.portfolio.safe_sleeve documents the proxy and its limits.",
)
def safe_sleeve(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings) -> dg.MaterializeResult:
    series = reads.macro_series(warehouse, ("AAA", "CPILFESL"))
    sessions = session_calendar(warehouse)
    frame = pd.DataFrame({"date": sessions})
    if "AAA" not in series or "CPILFESL" not in series:
        # a source without macro series (a CSV folder): the safe sleeve is cash alone
        context.log.warning("no AAA yield or core CPI in the macro series: the safe sleeve holds cash only")
        frame = frame.assign(bond_return=np.nan, known_yield=np.nan, forecast_change=np.nan, change_std=np.nan)
        rows = warehouse.replace_table("ml.safe_sleeve", frame.assign(bond_share=0.0))
        return dg.MaterializeResult(metadata={"dagster/row_count": rows, "mean_bond_share": 0.0, "bond": "no data"})
    monthly = yield_change_forecast(series["AAA"], series["CPILFESL"])
    monthly["share"] = bond_share(monthly["forecast_change"], monthly["change_std"])
    months = sessions.to_period("M").to_timestamp()
    frame["bond_return"] = daily_bond_returns(series["AAA"], sessions, settings.bond_duration).to_numpy()
    for col in ("known_yield", "forecast_change", "change_std", "share"):
        frame[col] = monthly[col].reindex(months).to_numpy()
    # no bond where the month's return is unknown: the sleeve is cash there
    frame["bond_share"] = np.where(frame["bond_return"].notna(), frame.pop("share").fillna(0.0), 0.0)
    rows = warehouse.replace_table("ml.safe_sleeve", frame)
    held = frame.loc[frame["bond_share"] > 0, "date"]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "mean_bond_share": round(float(frame["bond_share"].mean()), 3),
            "bond_from": str(held.min().date()) if len(held) else "never",
            "bond_to": str(held.max().date()) if len(held) else "never",
        }
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["marts", "allocations"],
            group_name="portfolio",
            kinds={"python", "duckdb"},
            metadata={"dagster/column_schema": schemas.ALLOCATIONS},
            deps=[
                dg.AssetKey(["marts", "signals"]),
                dg.AssetKey(["marts", "forecasts"]),
                dg.AssetKey(["ml", "regime_probabilities"]),
                dg.AssetKey(["ml", "safe_sleeve"]),
                dg.AssetKey(["intermediate", "int_returns"]),
                dg.AssetKey(["intermediate", "int_risk_free"]),
                dg.AssetKey(["intermediate", "int_market"]),
                dg.AssetKey(["marts", "features"]),
                dg.AssetKey(["ml", "llm_signals"]),  # the LLM source's own books
            ],
            description="Target weights decided at each decision's close, per strategy. 'governed': per-asset "
            "fractional Kelly (fraction x mu / sigma^2) on marts.signals' tradable rows, shrunk by confidence "
            "(x (2c - 1)). 'barbell' (regime-aware): "
            "a risky sleeve sized by the HMM regime probabilities and market volatility, filled by the multi-asset "
            "Kelly portfolio of the tradable signals (confidence-shrunk means, covariance from the forecast "
            "deviations and trailing Ledoit-Wolf correlations), the safe sleeve split between the bond proxy and "
            "cash. 'risk_parity': equal risk contributions, signal-free. These three carry the drawdown control "
            "(de-risk at 15 %, emergency stop at 25 %). Every model in marts.forecasts also gets its own "
            "ungoverned per-asset Kelly strategy, and so do the LLM source's valid signals where it has any ('llm': "
            "asked live, 'llm_backfill': asked later). Caps: 10 % per position, 100 % gross; CASH (and BOND) make each "
            "decision sum to one.",
        ),
        dg.AssetSpec(
            ["marts", "drawdown_control"],
            group_name="portfolio",
            kinds={"python", "duckdb"},
            metadata={"dagster/column_schema": schemas.DRAWDOWN_CONTROL},
            deps=[dg.AssetKey(["marts", "signals"]), dg.AssetKey(["ml", "safe_sleeve"])],
            description="Per controlled strategy and session: the drawdown control's state (normal, de_risked, "
            "stopped), the scale it put on the risky positions decided at that close, and the drawdown it read.",
        ),
        dg.AssetSpec(
            ["ml", "strategy_decisions"],
            group_name="portfolio",
            kinds={"python", "duckdb"},
            metadata={"dagster/column_schema": schemas.STRATEGY_DECISIONS},
            deps=[dg.AssetKey(["marts", "signals"]), dg.AssetKey(["ml", "safe_sleeve"])],
            description="The controlled strategies' decisions before the drawdown control scaled them (every "
            "decision date, zeros kept): what the books would hold without the risk limits, and the state the "
            "daily refresh extends instead of re-deciding the whole history.",
        ),
        dg.AssetSpec(
            ["marts", "es_control"],
            group_name="portfolio",
            kinds={"python", "duckdb"},
            metadata={"dagster/column_schema": schemas.ES_CONTROL},
            deps=[dg.AssetKey(["marts", "signals"]), dg.AssetKey(["ml", "safe_sleeve"])],
            description="Per controlled strategy and decision: the one-session expected shortfall (97.5 %) of the "
            "decided positions revalued on the last 252 sessions of their assets' returns, before and after the ES "
            "limit (PMX_ES_LIMIT, 3 %) scaled the risky positions down to it, and the scale. Applied before the "
            "drawdown control, which can only scale them further down.",
        ),
    ],
    pool="warehouse",
)
def allocations(
    context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings, config: IncrementalRun
) -> Iterator[dg.MaterializeResult]:
    """Decide every date (full build), or the dates after the stored ones (daily refresh)."""
    since = reads.resume_date(warehouse) if config.incremental else None
    if since is not None and not warehouse.has("marts.es_control"):
        context.log.warning("marts.es_control is missing (a warehouse from before the ES limit): deciding every date")
        since = None
    if since is not None and reads.stored_es_settings(warehouse) != _es_settings(settings):
        context.log.warning("the ES limit's settings changed since the stored decisions: deciding every date")
        since = None
    if since is not None and reads.stored_drawdown_settings(warehouse) != [_drawdown_settings(settings)]:
        # a stored path of other settings (or of a warehouse from before they were stored) is not this one's
        context.log.warning("the drawdown control's settings changed since the stored path: deciding every date")
        since = None
    if since is None:
        yield from _full_build(warehouse, settings)
    else:
        yield from _resume(context, warehouse, settings, since)


def _full_build(warehouse: Warehouse, settings: PmxSettings) -> Iterator[dg.MaterializeResult]:
    """Decide every date of the signals' history and replace the tables: the controlled strategies
    first, then each model's own book one model at a time (staged on disk by
    :meth:`~dagster_pmx.resources.Warehouse.replace_tables_in_batches`), every table replaced at the end."""
    inputs = reads.signal_inputs(warehouse, None)
    if inputs is None:
        raise ValueError("marts.signals is empty: nothing to allocate")
    wide, market = _decide(warehouse, settings, inputs, after=None)
    controlled, control_rows, es_rows = _control(
        settings, market, wide, stored_scales=None, stored_es=None, scenarios=_scenario_returns(warehouse, market)
    )
    gross: dict[str, float] = {}

    def batches() -> Iterator[dict[str, pd.DataFrame]]:
        yield {
            "marts.drawdown_control": control_rows,
            "ml.strategy_decisions": _decision_rows(wide),
            "marts.es_control": es_rows,
        }
        # in strategy order, each strategy's rows in date and ticker order, as one allocation_table of every
        # strategy gives them (the lake may still store them in another order: a table's rows have none)
        llm = reads.llm_books(warehouse, inputs.horizon)
        for strategy in sorted({*controlled, *inputs.models, *llm}):
            own = controlled.get(strategy)
            if own is None:
                own = (
                    _llm_book(warehouse, settings, inputs, strategy, None)
                    if strategy in llm
                    else _model_book(warehouse, settings, inputs, strategy)
                )
            table = allocation_table([own])
            gross.update(_gross_exposure(table))
            yield {"marts.allocations": table}

    rows = warehouse.replace_tables_in_batches(batches())
    counts = tuple(rows[".".join(key)] for key in OUTPUTS)
    yield from _materializations(counts, gross, control_rows, es_rows, since=None)


def _resume(
    context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings, since: pd.Timestamp
) -> Iterator[dg.MaterializeResult]:
    """Decide the dates after ``since`` only, extend the stored books and the drawdown control's path,
    and replace the rows after ``since``."""
    inputs = reads.signal_inputs(warehouse, since)
    if inputs is None:
        context.log.info(f"no signals after {since.date()}: nothing to decide")
        for key in OUTPUTS:
            yield dg.MaterializeResult(asset_key=key, metadata={"new_rows": 0, APPENDED_AFTER: str(since.date())})
        return
    new, market = _decide(warehouse, settings, inputs, after=since)
    wide = extend_books(new, reads.stored_decisions(warehouse))
    controlled, control_rows, es_rows = _control(
        settings,
        market,
        wide,
        stored_scales=reads.stored_scales(warehouse),
        stored_es=reads.stored_es_scales(warehouse),
        scenarios=_scenario_returns(warehouse, market),
    )
    # the models' books after ``since`` are a few sessions: signal_inputs read every model's signals at
    # once, which costs the daily refresh less than a read per model (a full build reads a model at a time)
    own = _kelly(settings, inputs.model_rows) if inputs.models and inputs.model_rows is not None else None
    llm = [_llm_book(warehouse, settings, inputs, book, since) for book in reads.llm_books(warehouse, inputs.horizon)]
    table = allocation_table([*([own] if own is not None else []), *[b for b in llm if len(b)], *controlled.values()])
    # only the new sessions' rows: the stored path before them is the one this run started from
    table, control_rows, decisions, es_rows = (
        f[f["date"] > since] for f in (table, control_rows, _decision_rows(wide), es_rows)
    )
    rows = warehouse.append_after_many(
        [
            ("marts.allocations", table, since, "date"),
            ("marts.drawdown_control", control_rows, since, "date"),
            ("ml.strategy_decisions", decisions, since, "date"),
            ("marts.es_control", es_rows, since, "date"),
        ]
    )
    counts = tuple(rows[".".join(key)] for key in OUTPUTS)
    context.log.info(f"incremental: {len(table)} allocation rows after {since.date()}")
    yield from _materializations(counts, _gross_exposure(table), control_rows, es_rows, since)


def _kelly(settings: PmxSettings, signals: pd.DataFrame) -> pd.DataFrame:
    """The per-asset Kelly books of ``signals``' strategies, as allocation rows."""
    return kelly_book(kelly_signals(signals), settings.kelly_fraction, settings.position_cap, settings.max_gross)


def _model_book(warehouse: Warehouse, settings: PmxSettings, inputs: reads.SignalInputs, model: str) -> pd.DataFrame:
    """``model``'s own ungoverned per-asset Kelly book over the whole history, as allocation rows."""
    return _kelly(settings, reads.model_signals(warehouse, model, inputs.horizon, None))


def _llm_book(
    warehouse: Warehouse, settings: PmxSettings, inputs: reads.SignalInputs, book: str, since: pd.Timestamp | None
) -> pd.DataFrame:
    """The LLM source's own ungoverned per-asset Kelly book ``book`` after ``since``, as allocation rows."""
    signals = reads.llm_book_signals(warehouse, book, inputs.horizon, since)
    return _kelly(settings, signals) if len(signals) else pd.DataFrame(columns=ALLOCATION_COLUMNS)


def _decide(
    warehouse: Warehouse, settings: PmxSettings, inputs: reads.SignalInputs, after: pd.Timestamp | None
) -> tuple[dict[str, pd.DataFrame], Market]:
    """The controlled strategies' decisions on the dates of the signals read (those after ``after``),
    before the drawdown control: dates by tickers, on the whole history's grid; and the market they are
    valued on."""
    signals, grid = inputs.signals, inputs.grid  # the whole history's grid: an extension lays the same
    market = load_market(warehouse, inputs.first)
    stocks = market.returns.drop(columns=[BOND, settings.benchmark], errors="ignore")
    stocks = stocks[[t for t in stocks.columns if t in inputs.tickers]]
    probs = reads.regime_probabilities(warehouse)
    policy = BarbellPolicy.linear(probs.shape[1], target_vol=settings.barbell_target_vol)
    share = risky_share(probs.loc[probs.index >= grid.min()], reads.market_volatility(warehouse), policy)
    governed = _kelly(settings, signals) if len(signals) else pd.DataFrame(columns=ALLOCATION_COLUMNS)
    wide = {
        "barbell": barbell_book(
            signals,
            stocks,
            share,
            reads.bond_shares(warehouse),
            fraction=settings.kelly_fraction,
            cap=settings.position_cap,
            every=settings.rebalance_every,
            dates=grid,
            after=after,
        ),
        "risk_parity": risk_parity_book(
            stocks, grid, cap=settings.position_cap, every=settings.rebalance_every, after=after
        ),
        "governed": book_of(governed),
    }
    return wide, market


def _control(
    settings: PmxSettings,
    market: Market,
    wide: dict[str, pd.DataFrame],
    stored_scales: pd.DataFrame | None,
    stored_es: pd.DataFrame | None,
    scenarios: pd.DataFrame,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, pd.DataFrame]:
    """The risk limits on the controlled strategies' decisions: the ES limit at each decision (positions
    revalued on ``scenarios``, the returns from a window before the first decision), then the drawdown
    control on the result (each from its stored path when resuming). Returns each strategy's allocation
    rows, the drawdown control's per-session states and the ES limit's per-decision rows."""
    run = backtester(settings, market)
    policy = DrawdownPolicy(
        de_risk_at=settings.drawdown_de_risk,
        stop_at=settings.drawdown_stop,
        mode=settings.drawdown_mode,
        cap_multiplier=settings.drawdown_cap_multiplier,
    )
    es_policy = EsLimit(limit=settings.es_limit, level=settings.es_level)
    controlled, es_frames = {}, []
    for s in CONTROLLED:
        known = None if stored_es is None or s not in stored_es else stored_es[s]
        controlled[s], es = apply_es_limit(wide[s], scenarios, es_policy, safe=[BOND, CASH], stored=known)
        es_frames.append(es.assign(strategy=s))
    rows, states = control_books(controlled, run, market.returns.index, policy, stored_scales)
    es_rows = pd.concat(es_frames, ignore_index=True)[ES_CONTROL_COLUMNS]
    return (
        dict(zip(controlled, rows, strict=True)),
        pd.concat(states, ignore_index=True).assign(**_drawdown_settings(settings))[DRAWDOWN_COLUMNS],
        es_rows,
    )


def _drawdown_settings(settings: PmxSettings) -> dict[str, str | float]:
    """The drawdown control's settings, as marts.drawdown_control stores them on every row."""
    return {
        "mode": settings.drawdown_mode,
        "de_risk_at": float(settings.drawdown_de_risk),
        "stop_at": float(settings.drawdown_stop),
        "cap_multiplier": float(settings.drawdown_cap_multiplier),
    }


def _es_settings(settings: PmxSettings) -> set[tuple[float, float]]:
    """The (limit, level) pairs marts.es_control holds when written with ``settings``."""
    return set() if settings.es_limit == 0 else {(float(settings.es_limit), float(settings.es_level))}


def _scenario_returns(warehouse: Warehouse, market: Market) -> pd.DataFrame:
    """Every ticker's (and the bond proxy's) returns from the ES limit's window of sessions before the
    market's first session: the scenarios the first decisions are revalued on."""
    calendar = session_calendar(warehouse)
    first = calendar.searchsorted(market.returns.index.min())
    return load_market(warehouse, calendar[max(first - EsLimit().window, 0)]).returns


def _decision_rows(wide: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The controlled strategies' decisions as ``ml.strategy_decisions`` rows (zeros kept)."""
    return decision_rows(wide)[DECISION_COLUMNS]


def _gross_exposure(table: pd.DataFrame) -> dict[str, float]:
    """Each strategy's mean gross exposure over its decisions (sum of its risky weights per date), of
    allocation rows that hold every decision of their strategies."""
    risky = table[table["sleeve"] == "risky"]
    return risky.groupby(["strategy", "date"])["weight"].sum().groupby("strategy").mean().round(3).to_dict()


def _materializations(
    counts: tuple[int, ...],
    gross: dict[str, float],
    control_rows: pd.DataFrame,
    es_rows: pd.DataFrame,
    since: pd.Timestamp | None,
) -> Iterator[dg.MaterializeResult]:
    """One materialization per table with its row count, the books' mean gross exposure, the
    drawdown control's episodes and the decisions the ES limit scaled."""
    rows, n_control, n_decisions, n_es = counts
    episodes = control_rows.assign(
        start=lambda d: (
            (d["state"] != "normal") & (d.groupby("strategy")["state"].shift(1, fill_value="normal") == "normal")
        )
    )
    yield dg.MaterializeResult(
        asset_key=["marts", "allocations"],
        metadata={
            "dagster/row_count": rows,
            "mean_gross_exposure": str(dict(sorted(gross.items()))),
            **({} if since is None else {APPENDED_AFTER: str(since.date())}),
        },
    )
    yield dg.MaterializeResult(
        asset_key=["marts", "drawdown_control"],
        metadata={
            "dagster/row_count": n_control,
            "episodes": str(episodes.groupby("strategy")["start"].sum().astype(int).to_dict()),
            "sessions_not_normal": str(
                control_rows[control_rows["state"] != "normal"].groupby("strategy").size().to_dict()
            ),
        },
    )
    yield dg.MaterializeResult(asset_key=["ml", "strategy_decisions"], metadata={"dagster/row_count": n_decisions})
    yield dg.MaterializeResult(
        asset_key=["marts", "es_control"],
        metadata={
            "dagster/row_count": n_es,
            "decisions_scaled": str(es_rows[es_rows["scale"] < 1].groupby("strategy").size().to_dict()),
            **({} if since is None else {APPENDED_AFTER: str(since.date())}),
        },
    )
