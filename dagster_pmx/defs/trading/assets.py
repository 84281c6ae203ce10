"""Paper trading assets: the ledger the paper broker books each session, and its tracking of the backtest."""

from dataclasses import replace

import dagster as dg
import pandas as pd

from dagster_pmx.defs import schemas
from dagster_pmx.defs.backtest.engine import backtester, load_market, read_books
from dagster_pmx.defs.reads import sessions as session_calendar
from dagster_pmx.defs.trading import ledger, reads
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.backtest.tearsheet import line_plot, markdown_image
from python_models.trading.paper_broker import PaperBroker
from python_models.trading.paper_trading import trade_sessions

LEDGER_DEPS = [
    dg.AssetKey(["marts", "allocations"]),
    dg.AssetKey(["intermediate", "int_returns"]),
    dg.AssetKey(["intermediate", "int_risk_free"]),
    dg.AssetKey(["ml", "safe_sleeve"]),
    dg.AssetKey(["marts", "features"]),
]
DESCRIPTIONS = {
    "orders": "Paper orders: placed at each decision's close from the difference between the target weights "
    "(marts.allocations) and the shares held, in whole lots, orders under PMX_PAPER_MIN_TRADE dropped, purchases "
    "scaled to the cash. Day orders: they execute in the next session or are cancelled.",
    "fills": "Paper fills, one per order: at the next session's close (or open with PMX_EXECUTION=next_open) with "
    "the backtester's costs; partial where the order exceeds PMX_PAPER_PARTICIPATION of the session's dollar "
    "volume or the cash; cancelled without a price.",
    "positions": "Shares held by each paper book at each booked close, marked in total-return terms.",
    "cash": "Each paper book's cash per session: opening, interest, purchases, sales, costs and closing cash.",
    "nav": "Each paper book's NAV per booked session: cash plus marked positions. A session is booked once: the "
    "table's key refuses a second booking, and a rerun books only sessions not yet booked.",
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["marts", f"paper_{name}"],
            group_name="trading",
            kinds={"python", "duckdb"},
            deps=LEDGER_DEPS,
            metadata={"dagster/column_schema": ledger.SCHEMAS[name]},
            description=DESCRIPTIONS[name] + " Append-only; each row names the run that booked it.",
        )
        for name in ledger.SCHEMAS
    ],
    pool="warehouse",
)
def paper_ledger(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings):
    strategies = [s.strip() for s in settings.paper_strategies.split(",") if s.strip()]
    books = read_books(warehouse, strategies)
    unknown = sorted(set(strategies) - set(books))
    if unknown:
        raise ValueError(f"PMX_PAPER_STRATEGIES names strategies with no allocations: {unknown}")
    sessions = session_calendar(warehouse)
    with warehouse.connect() as con:
        ledger.ensure_tables(con)
    stored = {strategy: reads.booked_state(warehouse, strategy) for strategy in strategies}
    lasts = [ledger.last_booked(state) for state in stored.values()]
    # the market and closes a run reads start at the earliest last booked close (a new ledger's first
    # session): the refresh pivots a few sessions, not the whole history
    earliest = min(
        (last if last is not None else ledger.first_session(sessions, settings) for last in lasts), default=None
    )
    market = load_market(warehouse, earliest if earliest is not None else sessions[0])
    closes = ledger.raw_closes(warehouse, market, earliest)
    ledgers, booked = {}, {}
    for strategy in strategies:
        state = ledger.state_of(strategy, stored[strategy], closes)
        start = ledger.first_session(sessions, settings) if state.last is None else None
        dates = sessions[sessions > state.last] if state.last is not None else sessions[sessions >= start]
        dates = dates[dates.isin(market.returns.index)]
        config = ledger.paper_config(settings, books[strategy].columns, warehouse)
        broker = PaperBroker(config, state.account, state.open_orders)
        targets = books[strategy].loc[books[strategy].index.isin(dates)]
        ledgers[strategy] = trade_sessions(
            strategy, broker, targets, ledger.session_bars(market, closes, dates), config, state.nav
        )
        booked[strategy] = dates
        context.log.info(f"{strategy}: {len(dates)} sessions to book after {state.last or 'a new ledger'}")
    counts = ledger.append(warehouse, ledgers, context.run_id)
    nav, rows = reads.ledger_summary(warehouse, ledger.SCHEMAS)
    latest = nav.groupby("strategy")["nav"].last().round(2).to_dict()
    for name in ledger.SCHEMAS:
        metadata = {"rows_appended": counts[name], "dagster/row_count": rows[name]}
        if name == "nav":
            metadata |= {
                "sessions_booked": str({s: len(d) for s, d in booked.items()}),
                "first_date": str(nav["date"].min())[:10] if len(nav) else "",
                "last_date": str(nav["date"].max())[:10] if len(nav) else "",
                "latest_nav": str(latest),
            }
            if len(nav):
                lines = {s: g.set_index("date")["nav"] for s, g in nav.groupby("strategy")}
                metadata["nav_plot"] = dg.MetadataValue.md(markdown_image("paper NAV", line_plot(lines, "Paper NAV")))
        yield dg.MaterializeResult(asset_key=["marts", f"paper_{name}"], metadata=metadata)


@dg.asset(
    key=["marts", "paper_tracking"],
    group_name="trading",
    pool="warehouse",
    kinds={"python", "duckdb"},
    deps=[dg.AssetKey(["marts", "paper_nav"]), dg.AssetKey(["marts", "paper_fills"])],
    metadata={"dagster/column_schema": schemas.PAPER_TRACKING},
    description="The paper NAV against the backtest of the same strategy's decisions over the same sessions, "
    "both from cash at the ledger's first session: daily returns, their gap and the costs each charged. The gap "
    "comes from what the backtest idealises: fractional weights set exactly at the fill (the paper book sizes "
    "whole shares at the decision's close, so its weights drift one session before they trade), orders under "
    "the minimum trade size, and cash limits.",
)
def paper_tracking(warehouse: Warehouse, settings: PmxSettings) -> dg.MaterializeResult:
    frames = []
    for strategy in ledger.booked_strategies(warehouse):
        nav = ledger.read_ledger(warehouse, strategy).nav.set_index("date")
        book = read_books(warehouse, [strategy])[strategy]
        market = load_market(warehouse, nav.index[0])
        market = replace(market, returns=market.returns.loc[: nav.index[-1]])
        daily = backtester(settings, market)(book.loc[nav.index[0] : nav.index[-1]])
        daily = daily.reindex(nav.index)
        capital = nav["nav"].iloc[0] / (1 + nav["daily_return"].iloc[0])
        frames.append(
            pd.DataFrame(
                {
                    "strategy": strategy,
                    "date": nav.index,
                    "paper_return": nav["daily_return"].to_numpy(),
                    "backtest_return": daily["net_return"].to_numpy(),
                    "paper_cost": (nav["costs"] / (nav["nav"] / (1 + nav["daily_return"]))).to_numpy(),
                    "backtest_cost": daily["cost"].to_numpy(),
                    "paper_equity": (nav["nav"] / capital).to_numpy(),
                    "backtest_equity": daily["equity"].to_numpy(),
                }
            )
        )
    columns = [c.name for c in schemas.PAPER_TRACKING.columns]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    table["return_gap"] = table["paper_return"] - table["backtest_return"]
    rows = warehouse.replace_table("marts.paper_tracking", table[columns])
    metadata: dict = {"dagster/row_count": rows}
    for strategy, g in table.groupby("strategy"):
        gap = g["paper_equity"].iloc[-1] - g["backtest_equity"].iloc[-1]
        metadata[f"{strategy}/equity_gap"] = round(float(gap), 6)
        metadata[f"{strategy}/daily_gap_std"] = round(float(g["return_gap"].std()), 6)
        lines = {"paper": g.set_index("date")["paper_equity"], "backtest": g.set_index("date")["backtest_equity"]}
        metadata[f"{strategy}/plot"] = dg.MetadataValue.md(
            markdown_image(strategy, line_plot(lines, f"{strategy}: paper NAV vs backtest"))
        )
    return dg.MaterializeResult(metadata=metadata)
