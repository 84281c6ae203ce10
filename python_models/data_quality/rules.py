"""The wall's rules, one small function each, and :data:`RULES`: the table the wall applies in order.

A rule reads a :class:`~python_models.data_quality.screening.Screening` and returns the rows it
finds, as a Series indexed by row: for a ``quarantine`` rule the value is what it saw (the
quarantine row's ``detail``), for a ``repair`` rule the flag (it has mended ``data`` itself), for
the ``collapse`` rule a note. The order matters: a row keeps the first reason it is refused for,
and the later rules read only the rows still standing (see each rule).

The rules a stored table can show again carry a :class:`Gate`: the invariant ``raw.prices`` keeps
when the rule holds. The Great Expectations gate on ``raw/prices`` (``expectations/raw_prices.py``)
is built from these, so each rule is defined here once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from python_models.data_quality.normalise import PRICE_FIELDS
from python_models.data_quality.screening import Screening

#: The fields that are prices (volume is not): each must be > 0.
PRICE_LEVELS = ("open", "high", "low", "close", "adj_close")
#: Relative slack of the close-within-[low, high] test: a close printed at the high (or low) may
#: differ from it in the last bits of a float.
OHLC_TOLERANCE = 1e-9
#: The session's close in New York; a bar dated today is unfinished before it.
MARKET_CLOSE_HOUR = 16
#: Share of a ticker's dates on the calendar above which its dates are taken as they are.
ON_CALENDAR = 0.9
#: Share of a ticker's dates that must fit the calendar once shifted for the shift to be the repair.
ON_CALENDAR_SHIFTED = 0.98
#: Band of a close's ratio to its recent level that is a units error (pence for pounds, cents for dollars).
UNIT_JUMP_BAND = (50.0, 200.0)
#: Sessions of accepted closes behind the "recent level" of the unit-jump rule.
UNIT_JUMP_WINDOW = 10
#: Ratios a split (or reverse split) moves a price by. 3:2 splits are left out on purpose: real
#: one-day moves of +50 % or -33 % happen (AMD on 2016-04-22: +52 % on earnings) and would be
#: taken for one.
SPLIT_RATIOS = (2.0, 3.0, 4.0, 5.0, 10.0, 0.5, 1 / 3, 0.25, 0.2, 0.1)
#: |log| distance to a split ratio within which a jump counts as one.
SPLIT_TOLERANCE = 0.03
#: Largest day-over-day change of adj_close / close that is not a corporate action (a fraction)...
ADJ_RATIO_MOVE = 0.25
#: ... and as a |log| change, the way the rule measures it.
ADJ_RATIO_TOLERANCE = float(np.log(1 + ADJ_RATIO_MOVE))
#: Reasons whose rows stay in the series the later day-over-day rules compare: split_jump,
#: adj_close_mismatch and zero_volume_move all judge the same consecutive pairs of sessions (so a
#: one-day glitch in the adjusted close refuses that day and the day after it). A unit-jump row
#: leaves the series: the rows after it are compared with the last one in the right units.
COMPARED_THROUGH = ("split_jump", "adj_close_mismatch")
#: Consecutive sessions with one close that make a stale feed (two trading weeks: in the bundled data's
#: early 1990s, quoted in eighths, AMD, GE, JPM, KO and PG each held a close for 5 or 6 sessions, while
#: RRC's stood still for 10 to 69 sessions at a time from 1990 to 1992, 505 copies in all)...
STALE_SESSIONS = 10
#: ... when on most of its repeats (at least :data:`STALE_MARKET_SESSIONS` of them) at least
#: :data:`STALE_MARKET_MOVED` of the frame's other tickers with a row that session moved.
STALE_MARKET_MOVED = 0.5
STALE_MARKET_SESSIONS = 0.5

Outcome = Literal["quarantine", "repair", "collapse"]


@dataclass(frozen=True)
class Gate:
    """What ``raw.prices`` shows when a rule holds, for the Great Expectations gate to check again.

    Attributes
    ----------
    kind : {"not_null", "positive", "non_negative", "at_least", "unique"}
        ``not_null``, ``positive`` (> 0) and ``non_negative`` (>= 0; NULL passes both): each of
        ``columns``; ``at_least``: ``columns[0] >= columns[1]`` where both exist; ``unique``: one
        row per combination of ``columns``.
    columns : tuple of str
    """

    kind: Literal["not_null", "positive", "non_negative", "at_least", "unique"]
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Rule:
    """One row of the wall's table.

    Attributes
    ----------
    name : str
        The reason a quarantined row carries, the flag a repaired row carries, or the report's
        ``check_name`` for collapsed copies.
    outcome : {"quarantine", "repair", "collapse"}
    catches : str
        What it catches, in words.
    check : callable
        ``Screening -> Series`` of the rows it finds (see the module's docstring).
    gates : tuple of Gate
        What ``raw.prices`` shows when the rule holds; empty when a stored table cannot show it
        (the rule compares rows over time, or with the clock).
    """

    name: str
    outcome: Outcome
    catches: str
    check: Callable[[Screening], pd.Series]
    gates: tuple[Gate, ...] = ()


def _found(mask: pd.Series | np.ndarray, text: str, index: pd.Index) -> pd.Series:
    """``text`` for every row where ``mask`` (aligned with ``index``; NaN counts as False) holds."""
    hit = pd.Series(mask, index=index).fillna(False).astype(bool)
    return pd.Series(text, index=index[hit.to_numpy()], dtype="object")


def non_numeric(s: Screening) -> pd.Series:
    """A price or volume sent as text that does not parse (``n/a``, ``#N/A``); blank counts as missing."""
    found = pd.Series(pd.NA, index=s.received.index, dtype="object")
    for col in PRICE_FIELDS:  # the first field that fails names the row's detail
        sent = s.received[col]
        bad = sent.notna() & sent.astype(str).str.strip().ne("") & s.data[col].isna() & found.isna()
        found[bad] = f"{col} does not parse"
    return found.dropna()


def bad_date(s: Screening) -> pd.Series:
    """A date that does not parse."""
    return _found(s.data["date"].isna(), "date does not parse", s.data.index)


def missing_close(s: Screening) -> pd.Series:
    """No close (a NaN row): the gap is left for the report's missing sessions, not filled."""
    return _found(s.data["close"].isna(), "no close", s.data.index)


def non_positive_price(s: Screening) -> pd.Series:
    """Any price <= 0."""
    return _found((s.data[list(PRICE_LEVELS)] <= 0).any(axis=1), "a price <= 0", s.data.index)


def inconsistent_ohlc(s: Screening) -> pd.Series:
    """High below low, or the close outside [low, high] (within :data:`OHLC_TOLERANCE`), where both exist."""
    d = s.data
    inconsistent = (
        d["high"].notna()
        & d["low"].notna()
        & (
            (d["high"] < d["low"])
            | (d["close"] > d["high"] * (1 + OHLC_TOLERANCE))
            | (d["close"] < d["low"] * (1 - OHLC_TOLERANCE))
        )
    )
    return _found(inconsistent, "high < low or close outside [low, high]", d.index)


def _repeated(s: Screening) -> pd.DataFrame:
    """The standing rows whose (ticker, date) is standing more than once."""
    rows = s.data.loc[s.standing()]
    return rows[rows.duplicated(["ticker", "date"], keep=False)]


def duplicate_conflict(s: Screening) -> pd.Series:
    """One (ticker, date) sent more than once with different values: every copy, since none can be trusted."""
    repeated = _repeated(s)
    values = pd.util.hash_pandas_object(repeated[list(PRICE_FIELDS)].round(10), index=False)
    distinct = values.groupby([repeated["ticker"], repeated["date"]]).transform("nunique")
    return pd.Series("", index=repeated.index[(distinct > 1).to_numpy()], dtype="object")


def duplicate_identical(s: Screening) -> pd.Series:
    """Identical copies of one (ticker, date): all but the first (the conflicting ones are refused by now)."""
    repeated = _repeated(s)
    return _found(repeated.duplicated(["ticker", "date"], keep="first"), "kept one copy", repeated.index)


def unfinished_bar(s: Screening) -> pd.Series:
    """A bar dated after today, or today before the close: the session's numbers may still move.

    Every row is read, collapsed copies too (they are quarantined with the bar they copy)."""
    today = s.clock.normalize()
    dates = s.data["date"]
    unfinished = (dates > today) | ((dates == today) & (s.clock.hour < MARKET_CLOSE_HOUR))
    return _found(unfinished, f"dated on or after {today.date()} before the close", s.data.index)


def _shift_to_calendar(dates: pd.Series, sessions: pd.DatetimeIndex) -> int:
    """Days (+1 or -1) that put a ticker's dates on the calendar when they are off it, or 0.

    Dates a day early (a session's UTC midnight read as New York time) still fall on weekdays
    four times in five, so the test is not "mostly off the calendar" but "almost all on it
    once shifted, and clearly not as they are"."""
    if dates.isin(sessions).mean() >= ON_CALENDAR:
        return 0
    for days in (1, -1):
        if (dates + pd.Timedelta(days=days)).isin(sessions).mean() >= ON_CALENDAR_SHIFTED:
            return days
    return 0


def timezone_shifted(s: Screening) -> pd.Series:
    """A ticker's dates off the calendar that fit it one day later (or earlier): moved onto it."""
    found = []
    if s.calendar is not None:
        standing = s.standing()
        for rows in s.data.loc[standing].groupby("ticker").groups.values():
            days = _shift_to_calendar(s.data.loc[rows, "date"], s.calendar)
            if days:
                s.data.loc[rows, "date"] = s.data.loc[rows, "date"] + pd.Timedelta(days=days)
                found.append(pd.Series(f"timezone_shifted({days:+d}d)", index=rows, dtype="object"))
    return pd.concat(found) if found else pd.Series(dtype="object")


def _near_split(log_ratio: np.ndarray) -> np.ndarray:
    ratios = np.log(np.asarray(SPLIT_RATIOS))
    return (np.abs(log_ratio[:, None] - ratios[None, :]) < SPLIT_TOLERANCE).any(axis=1)


def _log_moves(values: pd.Series) -> np.ndarray:
    """Day-over-day log changes of a ticker's series (one fewer than its rows)."""
    v = values.to_numpy()
    return np.log(v[1:] / v[:-1])


def _per_ticker(s: Screening, find: Callable[[pd.DataFrame], np.ndarray], through: tuple[str, ...] = ()) -> pd.Index:
    """The rows where ``find`` (a ticker's series -> mask over its rows) holds, over every ticker."""
    hits = [rows.index[find(rows)] for rows in s.series(through)]
    return hits[0].append(hits[1:]) if hits else pd.Index([], dtype="int64")


def _unit_jumps(rows: pd.DataFrame) -> np.ndarray:
    close = rows["close"].to_numpy()
    level = pd.Series(close).shift(1).rolling(UNIT_JUMP_WINDOW, min_periods=1).median().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = close / level
    lo, hi = UNIT_JUMP_BAND
    return ((ratio >= lo) & (ratio <= hi)) | ((ratio <= 1 / lo) & (ratio >= 1 / hi))


def unit_jump(s: Screening) -> pd.Series:
    """A close ~100x (or 1/100) the median of the closes before it (units: pence for pounds)."""
    return pd.Series("close ~100x its recent level", index=_per_ticker(s, _unit_jumps), dtype="object")


def split_jump(s: Screening) -> pd.Series:
    """The adjusted close jumping by a split ratio: a split not applied to it, or applied twice.

    A raw close that jumps while the adjusted close stays smooth is a correctly adjusted split and passes."""

    def jumps(rows: pd.DataFrame) -> np.ndarray:
        return np.r_[False, _near_split(_log_moves(rows["adj_close"]))]

    return pd.Series("adjusted close jumps by a split ratio", index=_per_ticker(s, jumps), dtype="object")


def adj_close_mismatch(s: Screening) -> pd.Series:
    """The ratio adj_close / close moving more than :data:`ADJ_RATIO_TOLERANCE` in a day, without a split."""

    def mismatched(rows: pd.DataFrame) -> np.ndarray:
        log_close = _log_moves(rows["close"])
        moved = np.abs(log_close - _log_moves(rows["adj_close"])) > ADJ_RATIO_TOLERANCE
        return np.r_[False, moved & ~_near_split(log_close)]

    detail = f"adj_close / close moved more than {ADJ_RATIO_MOVE * 100:g} % without a split"
    return pd.Series(detail, index=_per_ticker(s, mismatched, COMPARED_THROUGH), dtype="object")


def zero_volume_move(s: Screening) -> pd.Series:
    """Volume 0 on a session whose close moved: no trade cannot move the price, so the volume is
    unknown, not zero (set to NULL)."""

    def zero_while_moving(rows: pd.DataFrame) -> np.ndarray:
        close = rows["close"].to_numpy()
        return (rows["volume"].to_numpy() == 0) & np.r_[False, close[1:] != close[:-1]]

    hit = _per_ticker(s, zero_while_moving, COMPARED_THROUGH)
    s.data.loc[hit, "volume"] = np.nan
    return pd.Series("zero_volume_move", index=hit, dtype="object")


def stale_close(s: Screening) -> pd.Series:
    """A close repeated unchanged for :data:`STALE_SESSIONS` sessions or more while the market moved
    (on at least :data:`STALE_MARKET_SESSIONS` of the repeats, at least :data:`STALE_MARKET_MOVED` of the
    frame's other tickers with a row that session closed elsewhere than the session before): a feed
    that stopped updating. The repeats are refused, the first close of the run kept; a ticker alone in
    its frame, or a market that stood still too (a holiday's copy everywhere), is left alone. The rule
    sees one frame: a backfill, a CSV folder (read whole at every ingest) or a first load; an API's
    daily increment of a session or two holds no run to judge."""
    series = list(s.series(COMPARED_THROUGH))
    if len(series) < 2:
        return pd.Series(dtype="object")
    moves = pd.concat(
        [
            pd.DataFrame(
                {"ticker": rows["ticker"], "date": rows["date"], "moved": np.r_[False, np.diff(rows["close"]) != 0]}
            )
            for rows in series
        ]
    )
    movers = moves.groupby("date")["moved"].agg(["sum", "size"])
    found = []
    for rows in series:
        close = rows["close"].to_numpy()
        own_moved = np.r_[False, close[1:] != close[:-1]]
        others = movers.reindex(rows["date"])
        share = (others["sum"].to_numpy() - own_moved) / np.maximum(others["size"].to_numpy() - 1, 1)
        market_moved = share >= STALE_MARKET_MOVED
        run = np.cumsum(own_moved)  # the rows of one run of one close share a number
        length = np.bincount(run)[run]
        repeat = np.r_[False, ~own_moved[1:]]  # a copy of the run's first close
        moved_share = np.bincount(run, weights=repeat & market_moved) / np.maximum(np.bincount(run, weights=repeat), 1)
        stale = repeat & (length >= STALE_SESSIONS) & (moved_share[run] >= STALE_MARKET_SESSIONS)
        if stale.any():
            details = [f"close unchanged for {n} sessions" for n in length[stale]]
            found.append(pd.Series(details, index=rows.index[stale], dtype="object"))
    return pd.concat(found).astype("object") if found else pd.Series(dtype="object")


#: The wall, in the order it applies the rules.
RULES: tuple[Rule, ...] = (
    Rule("non_numeric", "quarantine", "a price or volume that does not parse", non_numeric),
    Rule("bad_date", "quarantine", "a date that does not parse", bad_date, (Gate("not_null", ("date",)),)),
    Rule("missing_close", "quarantine", "no close (a NaN row)", missing_close, (Gate("not_null", ("close",)),)),
    Rule(
        "non_positive_price",
        "quarantine",
        "a price <= 0",
        non_positive_price,
        tuple(Gate("positive", (c,)) for c in PRICE_LEVELS),
    ),
    # the close-within-[low, high] half has a tolerance a Great Expectations pair test cannot express
    Rule(
        "inconsistent_ohlc",
        "quarantine",
        "high < low, or close outside [low, high]",
        inconsistent_ohlc,
        (Gate("at_least", ("high", "low")),),
    ),
    # per source: the stored table's key is (ticker, date, source)
    Rule(
        "duplicate_conflict",
        "quarantine",
        "one (ticker, date) sent twice with other values",
        duplicate_conflict,
        (Gate("unique", ("ticker", "date", "source")),),
    ),
    Rule("duplicate_identical", "collapse", "one (ticker, date) sent twice, identical", duplicate_identical),
    Rule("unfinished_bar", "quarantine", "today's bar before the close, or a future date", unfinished_bar),
    Rule(
        "timezone_shifted",
        "repair",
        "a ticker's dates off the calendar that fit it one day later (or earlier): date shifted",
        timezone_shifted,
    ),
    Rule("unit_jump", "quarantine", "a close ~100x (or 1/100) its recent level", unit_jump),
    Rule("split_jump", "quarantine", "the adjusted close jumps by a split ratio", split_jump),
    Rule(
        "adj_close_mismatch",
        "quarantine",
        f"adj_close / close moves > {ADJ_RATIO_MOVE * 100:g} % in a day without a split",
        adj_close_mismatch,
    ),
    Rule("zero_volume_move", "repair", "volume 0 while the price moved: volume NULL", zero_volume_move),
    Rule(
        "stale_close",
        "quarantine",
        f"a close repeated unchanged for {STALE_SESSIONS} sessions or more while the market moved",
        stale_close,
    ),
)
