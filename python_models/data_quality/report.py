"""The wall's findings that are not rows: copies collapsed, sessions missing, tickers silent, repairs made."""

from __future__ import annotations

import pandas as pd

from python_models.data_quality.rules import RULES
from python_models.data_quality.screening import Screening

REPORT_COLUMNS = ("ticker", "source", "check_name", "count", "detail")
#: Missing sessions named in a report row's detail (the count says how many there are).
SHOWN_SESSIONS = 5


def collapsed_copies(s: Screening) -> list[dict]:
    """Per ticker, the identical copies collapsed into one row."""
    copies = s.data.loc[s.collapsed, "ticker"]
    return [
        {"ticker": ticker, "check_name": "duplicate_identical", "count": int(n), "detail": "kept one copy"}
        for ticker, n in copies.groupby(copies).size().items()
    ]


def missing_sessions(s: Screening, clean: pd.DataFrame) -> list[dict]:
    """Per ticker, the exchange sessions between its first and last stored row that it has no row for."""
    if s.calendar is None:
        return []
    found = []
    for ticker, rows in clean.groupby("ticker"):
        span = s.calendar[(s.calendar >= rows["date"].min()) & (s.calendar <= rows["date"].max())]
        gone = span.difference(pd.DatetimeIndex(rows["date"]))
        if len(gone):
            shown = ", ".join(str(d.date()) for d in gone[:SHOWN_SESSIONS])
            shown += " ..." if len(gone) > SHOWN_SESSIONS else ""
            found.append({"ticker": ticker, "check_name": "missing_session", "count": len(gone), "detail": shown})
    return found


def silent_tickers(s: Screening, requested: list[str] | None) -> list[dict]:
    """The tickers asked for that sent no row at all."""
    return [
        {"ticker": ticker, "check_name": "no_data", "count": 0, "detail": "the source sent no rows"}
        for ticker in sorted(set(requested or []) - set(s.data["ticker"]))
    ]


def repairs(clean: pd.DataFrame) -> list[dict]:
    """Per repair rule and ticker, the stored rows it repaired."""
    found = []
    for rule in RULES:
        if rule.outcome == "repair":
            hit = clean[clean["flags"].str.contains(rule.name, regex=False)]
            found += [
                {"ticker": ticker, "check_name": rule.name, "count": int(n), "detail": "repaired, flagged"}
                for ticker, n in hit.groupby("ticker").size().items()
            ]
    return found


def findings(s: Screening, clean: pd.DataFrame, source: str, requested: list[str] | None) -> pd.DataFrame:
    """The report of one screening: :data:`REPORT_COLUMNS`, one row per finding and ticker."""
    rows = collapsed_copies(s) + missing_sessions(s, clean) + silent_tickers(s, requested) + repairs(clean)
    table = pd.DataFrame(rows, columns=[c for c in REPORT_COLUMNS if c != "source"]).assign(source=source)
    return table[list(REPORT_COLUMNS)]
