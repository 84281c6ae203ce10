"""Regular NYSE holidays (exchange_calendars' XNYS rules) around the data's sessions.

A dbt Python model because the holidays come from the exchange's holiday rules, not from
any table. Only rule-based holidays are used: they are published in advance, so a
feature dated t may look forward to them. Ad-hoc closures (9/11, Hurricane Sandy,
national days of mourning) were not known beforehand and are left out on purpose.

Incremental: a run whose sessions are already covered, with half a year to spare each
side, writes nothing (the calendar library is not even imported).
"""

import pandas as pd

MARGIN = pd.DateOffset(years=1)  # written around the sessions, so each has a previous and a next holiday
SPARE = pd.Timedelta(days=183)  # NYSE holidays are never more than three months apart


def regular_holidays(start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    import exchange_calendars as xcals  # slow to import: only when the holidays are needed

    rules = xcals.get_calendar("XNYS", start="1990-01-01").regular_holidays
    days = rules.holidays(start, end)
    return pd.DataFrame({"holiday_date": pd.DatetimeIndex(days).normalize()}).drop_duplicates()


def model(dbt, session):
    dbt.config(materialized="incremental", unique_key="holiday_date")
    nothing = pd.DataFrame({"holiday_date": pd.Series(dtype="datetime64[ns]")})
    first, last = dbt.ref("int_sessions").query("s", "select min(date), max(date) from s").fetchall()[0]
    if first is None:
        return nothing
    first, last = pd.Timestamp(first), pd.Timestamp(last)
    if dbt.is_incremental:
        low, high = session.execute(f"select min(holiday_date), max(holiday_date) from {dbt.this}").fetchall()[0]
        if low is not None and pd.Timestamp(low) <= first - SPARE and pd.Timestamp(high) >= last + SPARE:
            return nothing
    return regular_holidays(first - MARGIN, last + MARGIN)
