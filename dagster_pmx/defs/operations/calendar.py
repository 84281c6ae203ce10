"""The NYSE calendar the schedules and freshness checks go by (exchange_calendars' XNYS)."""

from functools import cache

import pandas as pd

#: Time after the close at which a session's prices are expected to be published.
PUBLISHED_BY = pd.Timedelta(hours=18, minutes=30)
EXCHANGE_TZ = "America/New_York"


@cache
def _xnys():
    import exchange_calendars as xcals  # slow to import: only when a schedule or check asks

    return xcals.get_calendar("XNYS")


def is_session(day) -> bool:
    """Whether the NYSE trades on ``day`` (a date; holidays and weekends are not sessions)."""
    return bool(_xnys().is_session(pd.Timestamp(day).normalize().tz_localize(None)))


def covers(first, last) -> bool:
    """Whether the process's calendar (built once, on first use: ~0.2 s, most of it the holiday rules)
    spans ``first`` to ``last``; it reaches 20 years back and one ahead, exchange_calendars' default."""
    cal = _xnys()
    return cal.first_session <= pd.Timestamp(first).normalize() and pd.Timestamp(last).normalize() <= cal.last_session


def sessions_between(first, last) -> pd.DatetimeIndex:
    """NYSE sessions from ``first`` to ``last`` (inclusive), clipped to the calendar's range."""
    cal = _xnys()
    first = max(pd.Timestamp(first).normalize(), cal.first_session)
    last = min(pd.Timestamp(last).normalize(), cal.last_session)
    if first > last:
        return pd.DatetimeIndex([])
    return pd.DatetimeIndex(cal.sessions_in_range(first, last)).tz_localize(None)


def last_published_session(now: pd.Timestamp) -> pd.Timestamp:
    """The latest session whose prices should exist at ``now`` (aware or UTC): today's from
    18:30 New York time, otherwise the previous session's."""
    local = pd.Timestamp(now).tz_localize("UTC") if pd.Timestamp(now).tzinfo is None else pd.Timestamp(now)
    local = local.tz_convert(EXCHANGE_TZ)
    day = local.normalize().tz_localize(None)
    if not (is_session(day) and local - local.normalize() >= PUBLISHED_BY):
        day -= pd.Timedelta(days=1)
    while not is_session(day):
        day -= pd.Timedelta(days=1)
    return day
