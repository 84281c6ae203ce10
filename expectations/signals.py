"""Expectations on ``marts.signals``: what allocation is allowed to read."""

from __future__ import annotations

import great_expectations as gx
import pandas as pd

from expectations.runner import Validation, validate


def suite() -> list:
    E = gx.expectations
    return [
        E.ExpectCompoundColumnsToBeUnique(column_list=["ticker", "date"]),
        E.ExpectColumnValuesToNotBeNull(column="expected_return"),
        E.ExpectColumnValuesToBeBetween(column="expected_return", min_value=-1.0, max_value=10.0),
        E.ExpectColumnValuesToNotBeNull(column="forecast_std"),
        E.ExpectColumnValuesToBeBetween(column="forecast_std", min_value=0, strict_min=True, max_value=10.0),
        E.ExpectColumnValuesToBeBetween(column="confidence", min_value=0.0, max_value=1.0),
        E.ExpectColumnValuesToBeInSet(column="direction", value_set=[-1, 0, 1]),
    ]


def check(frame: pd.DataFrame) -> Validation:
    return validate(frame, "signals", suite())
