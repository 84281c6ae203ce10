"""Great Expectations gate (blocking) on raw prices: the wall's rules, checked again on the stored table."""

import dagster as dg

from dagster_pmx.defs.gates import check_result
from dagster_pmx.defs.ingest.reads import stored_prices
from dagster_pmx.defs.ingest.sources import PRICE_COLUMNS
from dagster_pmx.resources import Warehouse
from expectations import raw_prices as raw_prices_suite

#: The rules of the data-quality wall the gate checks again (those a stored table can show).
GATED_RULES = list(dict.fromkeys(name for name, _ in raw_prices_suite.gates() if name != "table"))


@dg.asset_check(
    asset=dg.AssetKey(["raw", "prices"]),
    blocking=True,
    description="GX: raw.prices still obeys the data-quality wall's rules a stored table can show "
    f"({', '.join(GATED_RULES)}): dates and closes present, prices > 0, high >= low where both exist, one row "
    "per (ticker, date, source); and every row has a ticker and an adjusted close, volume >= 0.",
)
def raw_prices_expectations(warehouse: Warehouse) -> dg.AssetCheckResult:
    # only the columns the suite reads, in the table's order
    columns = [c for c in PRICE_COLUMNS if c in raw_prices_suite.columns()]
    frame = stored_prices(warehouse, columns)
    return check_result(raw_prices_suite.check(frame), len(frame))
