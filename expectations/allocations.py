"""Expectations on ``marts.allocations``: weights finite, within caps, exposure bounded."""

from __future__ import annotations

import great_expectations as gx
import pandas as pd

from expectations.runner import Validation, validate


def suite() -> list:
    E = gx.expectations
    return [
        E.ExpectCompoundColumnsToBeUnique(column_list=["strategy", "date", "ticker"]),
        E.ExpectColumnValuesToNotBeNull(column="weight"),
        E.ExpectColumnValuesToBeInSet(column="sleeve", value_set=["risky", "safe"]),
    ]


def exposure_suite(position_cap: float, max_gross: float) -> list:
    E = gx.expectations
    return [
        E.ExpectColumnValuesToBeBetween(column="max_abs_weight", min_value=0.0, max_value=position_cap + 1e-9),
        E.ExpectColumnValuesToBeBetween(column="gross_exposure", min_value=0.0, max_value=max_gross + 1e-9),
        E.ExpectColumnValuesToBeBetween(column="total_weight", min_value=1.0 - 1e-9, max_value=1.0 + 1e-9),
    ]


def exposures(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (strategy, date): largest risky weight, gross risky exposure, and the sum of all weights."""
    risky = frame[frame["sleeve"] == "risky"].assign(abs_weight=lambda d: d["weight"].abs())
    per_date = risky.groupby(["strategy", "date"]).agg(
        max_abs_weight=("abs_weight", "max"), gross_exposure=("abs_weight", "sum")
    )
    total = frame.groupby(["strategy", "date"])["weight"].sum().rename("total_weight")
    return per_date.join(total, how="outer").fillna({"max_abs_weight": 0.0, "gross_exposure": 0.0}).reset_index()


def check(frame: pd.DataFrame, position_cap: float, max_gross: float) -> Validation:
    """Row-level and per-date expectations; fails if either fails. Non-finite weights fail the bounds."""
    rows = validate(frame, "allocations", suite())
    agg = validate(exposures(frame), "allocation_exposures", exposure_suite(position_cap, max_gross))
    return Validation(
        success=rows.success and agg.success,
        evaluated=rows.evaluated + agg.evaluated,
        failures=rows.failures + agg.failures,
    )


def freshness_suite() -> list:
    E = gx.expectations
    return [E.ExpectColumnValuesToBeBetween(column="max_sessions_since_price", min_value=0, max_value=0)]


def check_freshness(staleness: pd.DataFrame) -> Validation:
    """``staleness`` has one row per (strategy, date) with ``max_sessions_since_price``: over the
    positions held from that close, the most sessions since a ticker last had a price (0 =
    priced on the decision session; a ticker never priced counts as stale)."""
    return validate(staleness, "allocation_freshness", freshness_suite())
