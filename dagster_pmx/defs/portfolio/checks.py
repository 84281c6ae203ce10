"""Great Expectations gates (blocking) on the signals and the allocations."""

import dagster as dg
import pandas as pd

from dagster_pmx.defs.backtest.engine import load_market
from dagster_pmx.defs.gates import check_result
from dagster_pmx.defs.portfolio import reads
from dagster_pmx.defs.reads import sessions
from dagster_pmx.defs.refresh import NEVER, appended_after
from dagster_pmx.resources import PmxSettings, Warehouse
from expectations import allocations as allocation_suite
from expectations import signals as signal_suite
from python_models.portfolio.risk_limits import EsLimit, es_limit_breaches


@dg.asset_check(
    asset=dg.AssetKey(["marts", "signals"]),
    blocking=True,
    description="GX: unique (ticker, date), finite expected return and std, confidence in [0, 1].",
)
def signals_expectations(warehouse: Warehouse) -> dg.AssetCheckResult:
    frame = reads.stored_signals(warehouse)
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
    frame = reads.allocations_after(warehouse, after or NEVER)
    return check_result(allocation_suite.check(frame, settings.position_cap, settings.max_gross), len(frame))


@dg.asset_check(
    asset=dg.AssetKey(["marts", "allocations"]),
    blocking=True,
    description="GX: no trading on stale prices. Every position taken at a close is in a ticker that has a "
    "price on that session (a gap in its prices, a delisting, or a ticker never priced fails). Checks the "
    "decisions the latest materialization wrote.",
)
def allocations_on_fresh_prices(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
    staleness = reads.price_staleness(warehouse, appended_after(context, ALLOCATIONS))
    return check_result(allocation_suite.check_freshness(staleness), len(staleness))


@dg.asset_check(
    asset=dg.AssetKey(["marts", "allocations"]),
    blocking=True,
    description="The drawdown control is obeyed: no risky weight decided at a close where the strategy is stopped, "
    "risky gross within the scale times the gross limit where it is de-risked, and a decision on every session "
    "where the scale changed (so the de-risking trade happens at that close). Checks the sessions the latest "
    "materialization wrote.",
)
def allocations_respect_the_drawdown_control(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse, settings: PmxSettings
) -> dg.AssetCheckResult:
    rows = reads.drawdown_control_violations(warehouse, settings.max_gross, appended_after(context, ALLOCATIONS))
    sample = rows.head(5).astype(str).to_dict("records")
    return dg.AssetCheckResult(passed=rows.empty, metadata={"violations": len(rows), "sample": str(sample)})


@dg.asset_check(
    asset=dg.AssetKey(["marts", "allocations"]),
    blocking=True,
    description="The ES limit is obeyed: each decision of a controlled strategy that marts.es_control priced holds "
    "positions whose one-session expected shortfall (PMX_ES_LEVEL), revalued on the last 252 sessions of their "
    "assets' returns, is within PMX_ES_LIMIT, unless only the safe sleeve is left. Recomputed from the stored "
    "allocations, after every risk limit. Checks the decisions the latest materialization wrote.",
)
def allocations_respect_the_es_limit(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse, settings: PmxSettings
) -> dg.AssetCheckResult:
    after = appended_after(context, ALLOCATIONS)
    decisions = reads.es_control_after(warehouse, after or NEVER)
    policy = EsLimit(limit=settings.es_limit, level=settings.es_level)
    if decisions.empty or policy.limit == 0:
        return dg.AssetCheckResult(passed=True, metadata={"decisions": 0})
    calendar = sessions(warehouse)
    first = calendar[max(calendar.searchsorted(decisions["date"].min()) - policy.window, 0)]
    allocations = reads.allocations_of(warehouse, sorted(set(decisions["strategy"])), first - pd.Timedelta(days=1))
    rows = es_limit_breaches(allocations, load_market(warehouse, first).returns, decisions, policy)
    sample = rows.head(5).astype(str).to_dict("records")
    return dg.AssetCheckResult(
        passed=rows.empty, metadata={"decisions": len(decisions), "breaches": len(rows), "sample": str(sample)}
    )
