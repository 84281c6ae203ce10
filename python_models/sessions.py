"""Session-calendar arithmetic the incremental steps share: where a resumed step starts reading so that
its windows see what a rebuild's see."""

from __future__ import annotations

import pandas as pd


def sessions_before(calendar: pd.DatetimeIndex, date: pd.Timestamp, count: int) -> pd.Timestamp:
    """The session ``count`` sessions before ``date`` in ``calendar`` (its first session if there are fewer)."""
    return calendar[max(0, int(calendar.searchsorted(pd.Timestamp(date))) - count)]
