"""Allocation: the safe sleeve's bond proxy, and target weights per strategy under the risk limits."""

import dagster as dg
import numpy as np
import pandas as pd

from dagster_pmx.defs import schemas
from dagster_pmx.defs.backtest.engine import backtester, load_market
from dagster_pmx.defs.reads import sessions as session_calendar
from dagster_pmx.defs.refresh import APPENDED_AFTER, NEVER, IncrementalRun
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.portfolio.allocation import BOND, barbell_book, risk_parity_book
from python_models.portfolio.barbell import BarbellPolicy, risky_share
from python_models.portfolio.risk_limits import DrawdownPolicy, apply_drawdown_control
from python_models.portfolio.safe_sleeve import (
    bond_share,
    bond_total_returns,
    daily_from_monthly,
    yield_change_forecast,
)
from python_models.portfolio.sizing import CASH, confidence_scale, kelly_book

#: Strategies meant to be traded: the design's risk limits (drawdown control) apply to them.
CONTROLLED = ("governed", "barbell", "risk_parity")


@dg.asset(
    key=["ml", "safe_sleeve"],
    group_name="portfolio",
    metadata={"dagster/column_schema": schemas.SAFE_SLEEVE},
    pool="warehouse",
    kinds={"python", "duckdb"},
    deps=[dg.AssetKey(["staging", "stg_macro"]), dg.AssetKey(["intermediate", "int_sessions"])],
    description="The barbell's safe sleeve per session: the return of a constant-duration bond proxy priced off "
    "Moody's AAA yield (carry plus duration and convexity on the monthly yield change, spread over the month's "
    "sessions), and the share of the sleeve held in it, from a walk-forward forecast of the coming month's yield "
    "change (last known yield and core-CPI inflation changes, both used two months after their month). "
    "python_models.portfolio.safe_sleeve documents the proxy and its limits.",
)
def safe_sleeve(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings) -> dg.MaterializeResult:
    macro = warehouse.query(
        "select series_id, date, value from staging.stg_macro where series_id in ('AAA', 'CPILFESL') order by date"
    )
    sessions = session_calendar(warehouse)
    series = {
        k: pd.Series(g["value"].to_numpy(), index=pd.DatetimeIndex(g["date"])) for k, g in macro.groupby("series_id")
    }
    frame = pd.DataFrame({"date": sessions})
    if "AAA" not in series or "CPILFESL" not in series:
        # a source without macro series (a CSV folder): the safe sleeve is cash alone
        context.log.warning("no AAA yield or core CPI in the macro series: the safe sleeve holds cash only")
        frame = frame.assign(bond_return=np.nan, known_yield=np.nan, forecast_change=np.nan, change_std=np.nan)
        rows = warehouse.replace_table("ml.safe_sleeve", frame.assign(bond_share=0.0))
        return dg.MaterializeResult(metadata={"dagster/row_count": rows, "mean_bond_share": 0.0, "bond": "no data"})
    monthly = yield_change_forecast(series["AAA"], series["CPILFESL"])
    monthly["share"] = bond_share(monthly["forecast_change"], monthly["change_std"])
    monthly["bond_return"] = bond_total_returns(series["AAA"], settings.bond_duration)
    months = sessions.to_period("M").to_timestamp()
    frame["bond_return"] = daily_from_monthly(monthly["bond_return"], sessions).to_numpy()
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


def _long(strategy: str, wide: pd.DataFrame) -> pd.DataFrame:
    """Decisions (dates by tickers) as allocation rows of the positions held, with the CASH remainder."""
    long = wide.rename_axis(index="date", columns="ticker").stack().rename("weight").reset_index()
    long = long[long["weight"] != 0]  # positions only: a ticker first bought later adds no rows before
    cash = (1.0 - wide.sum(axis=1)).rename("weight").rename_axis("date").reset_index().assign(ticker=CASH)
    out = pd.concat([long, cash], ignore_index=True).assign(strategy=strategy)
    out["sleeve"] = np.where(out["ticker"].isin([CASH, BOND]), "safe", "risky")
    return out


def _wide(rows: pd.DataFrame) -> pd.DataFrame:
    """Allocation rows of one strategy as decisions, CASH left implicit."""
    held = rows[rows["ticker"] != CASH]
    return held.pivot(index="date", columns="ticker", values="weight").fillna(0.0).rename_axis(columns=None)


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
            ],
            description="Target weights decided at each decision's close, per strategy. 'governed': per-asset "
            "fractional Kelly (fraction x mu / sigma^2) on marts.signals' tradable rows, shrunk by confidence "
            "(x (2c - 1)). 'barbell' (regime-aware): "
            "a risky sleeve sized by the HMM regime probabilities and market volatility, filled by the multi-asset "
            "Kelly portfolio of the tradable signals (confidence-shrunk means, covariance from the forecast "
            "deviations and trailing Ledoit-Wolf correlations), the safe sleeve split between the bond proxy and "
            "cash. 'risk_parity': equal risk contributions, signal-free. These three carry the drawdown control "
            "(de-risk at 15 %, emergency stop at 25 %). Every model in marts.forecasts also gets its own "
            "ungoverned per-asset Kelly strategy. Caps: 10 % per position, 100 % gross; CASH (and BOND) make each "
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
    ],
    pool="warehouse",
)
def allocations(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings, config: IncrementalRun):
    stored = {"marts.drawdown_control", "ml.strategy_decisions", "marts.allocations"}
    since = warehouse.last("marts.drawdown_control") if config.incremental else None
    if since is not None and not stored <= warehouse.tables():
        since = None
    signals = warehouse.query(
        """
        select 'governed' as strategy, ticker, date,
               case when tradable then expected_return else 0 end as expected_return, forecast_std,
               confidence, tradable
        from marts.signals
        where date > ?
        union all
        select f.model as strategy, f.ticker, f.asof_date as date, f.y_pred, f.y_std, null, null
        from marts.forecasts f
        where f.horizon = (select max(horizon) from marts.signals) and f.asof_date > ?
        """,
        [since or NEVER] * 2,
    )
    if signals.empty and since is None:
        raise ValueError("marts.signals is empty: nothing to allocate")
    if signals.empty:
        context.log.info(f"no signals after {since.date()}: nothing to decide")
        for key in (["marts", "allocations"], ["marts", "drawdown_control"], ["ml", "strategy_decisions"]):
            yield dg.MaterializeResult(asset_key=key, metadata={"new_rows": 0, APPENDED_AFTER: str(since.date())})
        return
    signals["date"] = pd.to_datetime(signals["date"])
    # the whole history's decision dates, first date and tickers: an extension lays the same grid
    signal_dates = pd.DatetimeIndex(warehouse.query("select distinct date from marts.signals order by 1")["date"])
    universe = warehouse.query(
        """
        select min(first) as first, list_distinct(flatten(list(tickers))) as tickers from (
            select min(date) as first, list(distinct ticker) as tickers from marts.signals
            union all
            select min(asof_date), list(distinct ticker) from marts.forecasts
            where horizon = (select max(horizon) from marts.signals)
        )
        """
    ).iloc[0]
    # the governed book's Kelly bet shrinks with its signal's confidence (2c - 1, 0 below 0.55)
    sized = signals.drop(columns=["confidence", "tradable"])
    governed_rows = (signals["strategy"] == "governed").to_numpy()
    sized.loc[governed_rows, "expected_return"] *= confidence_scale(signals.loc[governed_rows, "confidence"])
    books = kelly_book(
        sized,
        settings.kelly_fraction,
        settings.position_cap,
        settings.max_gross,
    )
    market = load_market(warehouse, universe["first"])
    stocks = market.returns.drop(columns=[BOND, settings.benchmark], errors="ignore")
    signal_tickers = set(universe["tickers"])
    stocks = stocks[[t for t in stocks.columns if t in signal_tickers]]
    governed = signals[signals["strategy"] == "governed"]

    probs = warehouse.query("select date, regime, probability from ml.regime_probabilities")
    probs = probs.pivot(index="date", columns="regime", values="probability").sort_index()
    # the benchmark's annualised 21-session volatility, as dbt computes it for the features
    vol = warehouse.query("select date, market_vol_21 from intermediate.int_market")
    market_vol = pd.Series(vol["market_vol_21"].to_numpy(), index=pd.DatetimeIndex(vol["date"]))
    policy = BarbellPolicy.linear(probs.shape[1], target_vol=settings.barbell_target_vol)
    share = risky_share(probs.loc[probs.index >= signal_dates.min()], market_vol, policy)
    sleeve = warehouse.query("select date, bond_share from ml.safe_sleeve")
    bond = pd.Series(sleeve["bond_share"].to_numpy(), index=pd.DatetimeIndex(sleeve["date"]))
    wide = {
        "barbell": barbell_book(
            governed,
            stocks,
            share,
            bond,
            fraction=settings.kelly_fraction,
            cap=settings.position_cap,
            every=settings.rebalance_every,
            dates=signal_dates,
            after=since,
        ),
        "risk_parity": risk_parity_book(
            stocks, signal_dates, cap=settings.position_cap, every=settings.rebalance_every, after=since
        ),
        "governed": _wide(books[books["strategy"] == "governed"]),
    }
    scales = None
    if since is not None:  # extend the stored books and the drawdown control's path
        old = warehouse.query("select strategy, date, ticker, weight from ml.strategy_decisions")
        old["date"] = pd.to_datetime(old["date"])
        wide = {
            s: pd.concat([_wide(old[old["strategy"] == s]), w]).fillna(0.0).sort_index(axis=1) for s, w in wide.items()
        }
        scales = warehouse.query("select strategy, date, scale from marts.drawdown_control")
        scales = scales.pivot(index="date", columns="strategy", values="scale")
    run = backtester(settings, market)
    control = DrawdownPolicy(de_risk_at=settings.drawdown_de_risk, stop_at=settings.drawdown_stop)
    frames, states = [books[books["strategy"] != "governed"]], []
    for strategy in CONTROLLED:
        initial = None if scales is None or strategy not in scales else scales[strategy]
        controlled, state = apply_drawdown_control(
            wide[strategy], run, market.returns.index, control, safe=[BOND], initial=initial
        )
        frames.append(_long(strategy, controlled))
        states.append(state.rename_axis("date").reset_index().assign(strategy=strategy))
    table = pd.concat(frames, ignore_index=True)[["strategy", "date", "ticker", "weight", "sleeve"]]
    table = table.sort_values(["strategy", "date", "ticker"]).reset_index(drop=True)
    control_rows = pd.concat(states, ignore_index=True)[[c.name for c in schemas.DRAWDOWN_CONTROL.columns]]
    decisions = _decision_rows(wide)
    if since is None:
        rows = warehouse.replace_table("marts.allocations", table)
        n_control = warehouse.replace_table("marts.drawdown_control", control_rows)
        n_decisions = warehouse.replace_table("ml.strategy_decisions", decisions)
    else:  # only the new sessions' rows: the stored path before them is the one this run started from
        table = table[table["date"] > since]
        control_rows = control_rows[control_rows["date"] > since]
        decisions = decisions[decisions["date"] > since]
        rows = warehouse.append_after("marts.allocations", table, since)
        n_control = warehouse.append_after("marts.drawdown_control", control_rows, since)
        n_decisions = warehouse.append_after("ml.strategy_decisions", decisions, since)
        context.log.info(f"incremental: {len(table)} allocation rows after {since.date()}")
    risky = table[table["sleeve"] == "risky"]
    gross = risky.groupby(["strategy", "date"])["weight"].sum().groupby("strategy").mean().round(3)
    episodes = control_rows.assign(
        start=lambda d: (
            (d["state"] != "normal") & (d.groupby("strategy")["state"].shift(1, fill_value="normal") == "normal")
        )
    )
    yield dg.MaterializeResult(
        asset_key=["marts", "allocations"],
        metadata={
            "dagster/row_count": rows,
            "mean_gross_exposure": str(gross.to_dict()),
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


def _decision_rows(wide: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The controlled strategies' decisions as ``ml.strategy_decisions`` rows (zeros kept)."""
    frames = [
        w.rename_axis(index="date", columns="ticker").stack().rename("weight").reset_index().assign(strategy=s)
        for s, w in wide.items()
        if len(w)
    ]
    columns = [c.name for c in schemas.STRATEGY_DECISIONS.columns]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
