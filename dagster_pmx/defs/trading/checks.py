"""Reconciliation of the paper ledger (blocking)."""

import dagster as dg
import pandas as pd

from dagster_pmx.defs.reads import sessions as session_calendar
from dagster_pmx.defs.trading import ledger
from dagster_pmx.resources import Warehouse
from python_models.trading.paper_trading import reconcile


@dg.asset_check(
    asset=dg.AssetKey(["marts", "paper_nav"]),
    blocking=True,
    description="Reconciliation, every booked session of every paper book: NAV = cash + positions marked at the "
    "close; positions = cumulative fills; cash = opening + interest - purchases + sales - costs and carried to the "
    "next session; one NAV row per session, with no session of the calendar skipped. Fails with the sessions "
    "that break.",
)
def paper_ledger_reconciles(warehouse: Warehouse) -> dg.AssetCheckResult:
    sessions = session_calendar(warehouse)
    breaks, booked = [], 0
    for strategy in ledger.booked_strategies(warehouse):
        book = ledger.read_ledger(warehouse, strategy)
        booked += len(book.nav)
        found = reconcile(book).assign(strategy=strategy)
        dates = pd.DatetimeIndex(book.nav["date"])
        if dates.has_duplicates:
            found = pd.concat([found, pd.DataFrame({"strategy": strategy, "identity": "session booked twice"}, [0])])
        calendar = sessions[(sessions >= dates.min()) & (sessions <= dates.max())]
        skipped = calendar.difference(dates)
        if len(skipped):
            found = pd.concat(
                [found, pd.DataFrame({"strategy": strategy, "date": skipped, "identity": "session not booked"})]
            )
        breaks.append(found)
    table = pd.concat(breaks, ignore_index=True) if breaks else pd.DataFrame()
    return dg.AssetCheckResult(
        passed=table.empty,
        metadata={
            "sessions_checked": booked,
            "breaks": len(table),
            "first_breaks": dg.MetadataValue.md(table.head(10).astype(str).to_markdown(index=False))
            if len(table)
            else "none",
        },
    )
