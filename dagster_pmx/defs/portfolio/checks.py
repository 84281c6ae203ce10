"""Great Expectations gates (blocking) on the signals and the allocations."""

import dagster as dg

from dagster_pmx.defs.gates import check_result
from dagster_pmx.defs.refresh import NEVER, appended_after
from dagster_pmx.resources import PmxSettings, Warehouse
from expectations import allocations as allocation_suite
from expectations import signals as signal_suite


@dg.asset_check(
    asset=dg.AssetKey(["marts", "signals"]),
    blocking=True,
    description="GX: unique (ticker, date), finite expected return and std, confidence in [0, 1].",
)
def signals_expectations(warehouse: Warehouse) -> dg.AssetCheckResult:
    frame = warehouse.query("select * from marts.signals")
    return check_result(signal_suite.check(frame), len(frame))


ALLOCATIONS = dg.AssetKey(["marts", "allocations"])


@dg.asset_check(
    asset=ALLOCATIONS,
    blocking=True,
    description="GX: weights present and finite, each within the position cap, gross exposure "
    "within the limit, weights plus cash sum to one per (strategy, date). Validates the rows the latest "
    "materialization wrote (the daily refresh's new sessions; the rows before passed when they were written).",
)
def allocations_expectations(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse, settings: PmxSettings
) -> dg.AssetCheckResult:
    # the rows the latest materialization wrote: the whole table, or the daily refresh's new sessions
    after = appended_after(context, ALLOCATIONS)
    frame = warehouse.query("select * from marts.allocations where date > ?", [after or NEVER])
    return check_result(allocation_suite.check(frame, settings.position_cap, settings.max_gross), len(frame))


#: Sessions since each ticker's last price, per (ticker, date) of the calendar.
STALENESS_SQL = """
    with stamped as (
        select r.ticker, r.date, s.session_index, r.has_price
        from intermediate.int_returns r
        join intermediate.int_sessions s on s.date = r.date
    ),

    last_price as (
        select
            ticker,
            date,
            session_index - max(case when has_price then session_index end) over (
                partition by ticker order by date rows between unbounded preceding and current row
            ) as sessions_since_price
        from stamped
    )

    select a.strategy, a.date, max(coalesce(l.sessions_since_price, 1000000)) as max_sessions_since_price
    from marts.allocations a
    left join last_price l on l.ticker = a.ticker and l.date = a.date
    where a.sleeve = 'risky' and a.weight <> 0
    group by a.strategy, a.date
"""


@dg.asset_check(
    asset=dg.AssetKey(["marts", "allocations"]),
    blocking=True,
    description="GX: no trading on stale prices. Every position taken at a close is in a ticker that has a "
    "price on that session (a gap in its prices, a delisting, or a ticker never priced fails).",
)
def allocations_on_fresh_prices(warehouse: Warehouse) -> dg.AssetCheckResult:
    staleness = warehouse.query(STALENESS_SQL)
    return check_result(allocation_suite.check_freshness(staleness), len(staleness))


@dg.asset_check(
    asset=dg.AssetKey(["marts", "allocations"]),
    blocking=True,
    description="The drawdown control is obeyed: no risky weight decided at a close where the strategy is stopped, "
    "risky gross within the scale times the gross limit where it is de-risked, and a decision on every session "
    "where the scale changed (so the de-risking trade happens at that close).",
)
def allocations_respect_the_drawdown_control(warehouse: Warehouse, settings: PmxSettings) -> dg.AssetCheckResult:
    rows = warehouse.query(
        """
        with risky as (
            select strategy, cast(date as date) as date, sum(abs(weight)) as gross
            from marts.allocations where sleeve = 'risky' group by all
        ),

        decided as (
            select distinct strategy, cast(date as date) as date from marts.allocations
        ),

        states as (
            select strategy, cast(date as date) as date, state, scale,
                   lag(scale) over (partition by strategy order by date) as previous_scale
            from marts.drawdown_control
        )

        select s.strategy, s.date, s.state, s.scale, r.gross, d.date is null as undecided
        from states s
        left join risky r on r.strategy = s.strategy and r.date = s.date
        left join decided d on d.strategy = s.strategy and d.date = s.date
        where coalesce(r.gross, 0) > s.scale * ? + 1e-9
           or (s.previous_scale <> s.scale and d.date is null)
        """,
        [settings.max_gross],
    )
    sample = rows.head(5).astype(str).to_dict("records")
    return dg.AssetCheckResult(passed=rows.empty, metadata={"violations": len(rows), "sample": str(sample)})
