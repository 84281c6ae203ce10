"""The state of one frame on its way through the wall: what each row is so far, and what the rules read."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pandas as pd

from python_models.data_quality.normalise import EXCHANGE_TZ, parse_values


@dataclass
class Screening:
    """One frame being screened: the rows as received, their parsed values and each row's fate so far.

    Rules read ``data`` (parsed, and mended by the repairs before them) and ``received`` (the text a
    source sent); the driver records what they find with :meth:`refuse`, :meth:`collapse` and
    :meth:`repair`. A row keeps the first reason it is refused for.

    Attributes
    ----------
    received : pandas.DataFrame
        The rows as received (through ``normalise_columns``), indexed 0..n-1.
    data : pandas.DataFrame
        The same rows parsed (``parse_values``); repairs change it in place.
    clock : pandas.Timestamp
        Now, in New York local time (naive).
    calendar : pandas.DatetimeIndex or None
        The exchange's sessions (normalised), or None when unknown.
    """

    received: pd.DataFrame
    data: pd.DataFrame
    clock: pd.Timestamp
    calendar: pd.DatetimeIndex | None
    reasons: pd.Series = field(init=False)
    details: pd.Series = field(init=False)
    flags: pd.Series = field(init=False)
    collapsed: pd.Series = field(init=False)

    def __post_init__(self) -> None:
        index = self.received.index
        self.reasons = pd.Series(pd.NA, index=index, dtype="object")
        self.details = pd.Series("", index=index, dtype="object")
        self.flags = pd.Series("", index=index, dtype="object")
        self.collapsed = pd.Series(False, index=index)

    @classmethod
    def start(
        cls, frame: pd.DataFrame, sessions: pd.DatetimeIndex | None = None, now: pd.Timestamp | None = None
    ) -> Screening:
        """Parse ``frame`` and read the clock (``now``, or the current time) in New York time."""
        received = frame.reset_index(drop=True).copy()
        clock = pd.Timestamp.now(tz=EXCHANGE_TZ) if now is None else pd.Timestamp(now)
        if clock.tzinfo is not None:
            clock = clock.tz_convert(EXCHANGE_TZ).tz_localize(None)
        calendar = pd.DatetimeIndex(sessions).normalize() if sessions is not None and len(sessions) else None
        return cls(received=received, data=parse_values(received), clock=clock, calendar=calendar)

    def standing(self) -> pd.Series:
        """Rows neither refused nor collapsed into an identical copy."""
        return self.reasons.isna() & ~self.collapsed

    def series(self, through: Iterable[str] = ()) -> Iterator[pd.DataFrame]:
        """Each ticker's standing rows in date order, with the rows refused for a reason in ``through``
        left in (they still count as the session before the next row)."""
        rows = ~self.collapsed & (self.reasons.isna() | self.reasons.isin(list(through)))
        ordered = self.data.loc[rows].sort_values(["ticker", "date"])
        for _, rows_of_ticker in ordered.groupby("ticker", sort=False):
            yield rows_of_ticker

    def refuse(self, found: pd.Series, reason: str) -> None:
        """Quarantine the rows of ``found`` (index: rows, values: what the rule saw) not refused already."""
        fresh = self.reasons.index.isin(found.index) & self.reasons.isna()
        self.reasons[fresh] = reason
        self.details[fresh] = found.reindex(self.reasons.index)[fresh]

    def collapse(self, found: pd.Series) -> None:
        """Drop the rows of ``found`` as copies of a row that stays (they are reported, not quarantined)."""
        self.collapsed[found.index] = True

    def repair(self, found: pd.Series) -> None:
        """Flag the rows of ``found`` (values: the flag) as repaired; the rule has mended ``data``."""
        self.flags[found.index] = self.flags[found.index] + found + ","
