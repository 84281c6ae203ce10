"""Freshness: the analyst-facing prices and signals reach the last NYSE session that should be published.

Warnings, not gates: a stale table is shown as a failed check in the UI (and in `make run`'s
output) while everything downstream still runs on the data there is. The bundled default data
is a fixed snapshot, so on it these checks fail by design and say how far behind it is.
"""

import dagster as dg
import pandas as pd

from dagster_pmx.defs.operations.calendar import last_published_session, sessions_between
from dagster_pmx.defs.reads import last_date
from dagster_pmx.resources import PmxSettings, Warehouse


def expected_session(settings: PmxSettings) -> pd.Timestamp:
    """The session the tables should reach: PMX_END_DATE's last session for a truncated build,
    else the last one published at PMX_AS_OF (default: now)."""
    if settings.end_date:
        return sessions_between(pd.Timestamp(settings.end_date) - pd.Timedelta(days=10), settings.end_date)[-1]
    return last_published_session(pd.Timestamp(settings.as_of) if settings.as_of else pd.Timestamp.now(tz="UTC"))


def freshness(table: str, last, settings: PmxSettings) -> dg.AssetCheckResult:
    expected = expected_session(settings)
    if last is None or pd.isna(last):
        behind, last_text = None, "empty"
    else:
        last = pd.Timestamp(last)
        behind, last_text = len(sessions_between(last + pd.Timedelta(days=1), expected)), str(last.date())
    passed = behind is not None and behind <= settings.freshness_sessions
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{table} ends {last_text}; the last published NYSE session is {expected.date()}"
        + ("" if behind is None else f" ({behind} sessions behind, {settings.freshness_sessions} allowed)"),
        metadata={
            "last_date": last_text,
            "expected_session": str(expected.date()),
            "sessions_behind": -1 if behind is None else behind,
        },
    )


@dg.asset_check(
    asset=dg.AssetKey(["marts", "prices"]),
    description="Fresh: marts.prices reaches the last published NYSE session (18:30 New York on a session day), "
    "at most PMX_FRESHNESS_SESSIONS behind. Warning severity.",
)
def prices_are_fresh(warehouse: Warehouse, settings: PmxSettings) -> dg.AssetCheckResult:
    return freshness("marts.prices", last_date(warehouse, "marts.prices", exclude_ticker=settings.benchmark), settings)


@dg.asset_check(
    asset=dg.AssetKey(["marts", "signals"]),
    description="Fresh: marts.signals reaches the last published NYSE session, at most PMX_FRESHNESS_SESSIONS "
    "behind (signals lag when forecasting has not run on the latest prices). Warning severity.",
)
def signals_are_fresh(warehouse: Warehouse, settings: PmxSettings) -> dg.AssetCheckResult:
    return freshness("marts.signals", last_date(warehouse, "marts.signals"), settings)
