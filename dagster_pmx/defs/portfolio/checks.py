"""Great Expectations gates (blocking) on the signals and the allocations."""

import dagster as dg

from dagster_pmx.defs.gates import check_result
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


@dg.asset_check(
    asset=dg.AssetKey(["marts", "allocations"]),
    blocking=True,
    description="GX: weights present and finite, each within the position cap, gross exposure "
    "within the limit, weights plus cash sum to one per (strategy, date).",
)
def allocations_expectations(warehouse: Warehouse, settings: PmxSettings) -> dg.AssetCheckResult:
    frame = warehouse.query("select * from marts.allocations")
    return check_result(allocation_suite.check(frame, settings.position_cap, settings.max_gross), len(frame))
