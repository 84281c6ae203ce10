"""Great Expectations gate (blocking) on raw prices."""

import dagster as dg

from dagster_pmx.defs.gates import check_result
from dagster_pmx.resources import Warehouse
from expectations import raw_prices as raw_prices_suite


@dg.asset_check(
    asset=dg.AssetKey(["raw", "prices"]),
    blocking=True,
    description="GX: keys present and unique per (ticker, date, source), prices > 0, "
    "high >= low where both exist, volume >= 0.",
)
def raw_prices_expectations(warehouse: Warehouse) -> dg.AssetCheckResult:
    frame = warehouse.query("select * from raw.prices")
    return check_result(raw_prices_suite.check(frame), len(frame))
