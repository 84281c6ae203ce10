"""Regular NYSE holidays (exchange_calendars' XNYS rules) around the data's sessions.

A dbt Python model because the holidays come from the exchange's holiday rules, not from
any table. Only rule-based holidays are used: they are published in advance, so a
feature dated t may look forward to them. Ad-hoc closures (9/11, Hurricane Sandy,
national days of mourning) were not known beforehand and are left out on purpose.
"""

import exchange_calendars as xcals
import pandas as pd


def regular_holidays(start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    rules = xcals.get_calendar("XNYS", start="1990-01-01").regular_holidays
    days = rules.holidays(start, end)
    return pd.DataFrame({"holiday_date": pd.DatetimeIndex(days).normalize()}).drop_duplicates()


def model(dbt, session):
    dbt.config(materialized="table")
    sessions = dbt.ref("int_sessions").df()
    if sessions.empty:
        return pd.DataFrame({"holiday_date": pd.Series(dtype="datetime64[ns]")})
    first, last = pd.Timestamp(sessions["date"].min()), pd.Timestamp(sessions["date"].max())
    # A year of margin each side so every session has a previous and a next holiday.
    return regular_holidays(first - pd.DateOffset(years=1), last + pd.DateOffset(years=1))
