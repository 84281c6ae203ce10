"""The data-quality wall for incoming daily prices: normalise, then pass, repair or quarantine.

Every row a source sends ends in exactly one place: on to the warehouse (perhaps repaired,
with a flag saying how) or in quarantine with a reason and the row as it was received.
Nothing is silently dropped or changed. Findings that are not rows (a session missing against
the exchange calendar, a ticker that sent nothing, identical duplicates collapsed) go to the
report. :func:`screen_prices` applies the table :data:`~python_models.data_quality.rules.RULES`
in order: the columns are mapped by :func:`normalise_columns` (``normalise.py``), each rule is a
small function in ``rules.py``, and the report's findings are in ``report.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from python_models.data_quality.normalise import PRICE_FIELDS
from python_models.data_quality.report import findings
from python_models.data_quality.rules import RULES, Outcome, Rule
from python_models.data_quality.screening import Screening

__all__ = [
    "QUARANTINE_COLUMNS",
    "Screened",
    "screen_prices",
]

QUARANTINE_COLUMNS = ("ticker", "date", "source", "reason", "detail", "row_json")

#: What the driver does with the rows a rule finds, by the rule's outcome.
OUTCOMES: dict[Outcome, Callable[[Screening, Rule, pd.Series], None]] = {
    "quarantine": lambda s, rule, found: s.refuse(found, rule.name),
    "repair": lambda s, rule, found: s.repair(found),
    "collapse": lambda s, rule, found: s.collapse(found),
}


@dataclass(frozen=True)
class Screened:
    """What :func:`screen_prices` makes of a frame.

    ``clean`` has :data:`COLUMNS` plus ``flags`` (comma-separated repairs, empty for none);
    ``quarantine`` has :data:`QUARANTINE_COLUMNS` (``row_json`` the row as received, JSON);
    ``report`` has :data:`REPORT_COLUMNS`.
    """

    clean: pd.DataFrame
    quarantine: pd.DataFrame
    report: pd.DataFrame


def screen_prices(
    frame: pd.DataFrame,
    source: str,
    sessions: pd.DatetimeIndex | None = None,
    now: pd.Timestamp | None = None,
    requested: list[str] | None = None,
) -> Screened:
    """Screen a price frame (already through :func:`normalise_columns`) from ``source``.

    Parameters
    ----------
    frame : pandas.DataFrame
        ``ticker``, ``date``, the price fields; values may be strings.
    source : str
        Source name, stored with every row.
    sessions : pandas.DatetimeIndex, optional
        Exchange sessions covering the data (timezone shifts and missing sessions need them).
    now : pandas.Timestamp, optional
        The current time (timezone-aware or New York local); the bar of a session that has not
        closed yet is unfinished. Defaults to the clock.
    requested : list of str, optional
        Tickers asked for: one that sent nothing is reported as ``no_data``.

    Returns
    -------
    Screened
        The clean rows, the quarantined ones and the report.
    """
    s = Screening.start(frame, sessions, now)
    for rule in RULES:
        OUTCOMES[rule.outcome](s, rule, rule.check(s))
    clean = _clean(s, source)
    return Screened(clean=clean, quarantine=_quarantine(s, source), report=findings(s, clean, source, requested))


def _clean(s: Screening, source: str) -> pd.DataFrame:
    """The rows that pass, as parsed and repaired, in (ticker, date) order, with their flags."""
    ok = s.standing()
    clean = s.data.loc[ok, ["ticker", "date", *PRICE_FIELDS]].assign(source=source, flags=s.flags[ok].str.rstrip(","))
    return clean.sort_values(["ticker", "date"]).reset_index(drop=True)


def _quarantine(s: Screening, source: str) -> pd.DataFrame:
    """The refused rows: parsed ticker and date, the reason, what the rule saw, the row as received."""
    bad = s.reasons.notna()
    return pd.DataFrame(
        {
            "ticker": s.data.loc[bad, "ticker"],
            "date": s.data.loc[bad, "date"],
            "source": source,
            "reason": s.reasons[bad].astype(str),
            "detail": s.details[bad].astype(str),
            "row_json": _rows_as_received(s.received.loc[bad]) if bad.any() else pd.Series(dtype="object"),
        }
    ).reset_index(drop=True)


def _rows_as_received(frame: pd.DataFrame) -> pd.Series:
    return frame.apply(lambda r: json.dumps({k: None if pd.isna(v) else str(v) for k, v in r.items()}), axis=1)
