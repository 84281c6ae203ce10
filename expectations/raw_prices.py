"""Expectations on ``raw.prices``: the gate in front of every feature and forecast."""

from __future__ import annotations

import great_expectations as gx
import pandas as pd

from expectations.runner import Validation, validate


def suite() -> list:
    E = gx.expectations
    return [
        E.ExpectColumnValuesToNotBeNull(column="ticker"),
        E.ExpectColumnValuesToNotBeNull(column="date"),
        E.ExpectColumnValuesToNotBeNull(column="adj_close"),
        E.ExpectCompoundColumnsToBeUnique(column_list=["ticker", "date", "source"]),
        E.ExpectColumnValuesToBeBetween(column="adj_close", min_value=0, strict_min=True),
        E.ExpectColumnValuesToBeBetween(column="close", min_value=0, strict_min=True),
        E.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="high", column_B="low", or_equal=True, ignore_row_if="either_value_is_missing"
        ),
        E.ExpectColumnValuesToBeBetween(column="volume", min_value=0),
    ]


def check(frame: pd.DataFrame) -> Validation:
    return validate(frame, "raw_prices", suite())
