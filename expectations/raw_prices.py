"""Expectations on ``raw.prices``: the gate in front of every feature and forecast.

Every row of ``raw.prices`` came through the data-quality wall, so this gate re-checks, on the
stored table, each wall rule a table can show (the :class:`~python_models.data_quality.rules.Gate`
of its row in :data:`~python_models.data_quality.rules.RULES`): it fails when the table was changed
behind the wall's back. The rules are defined once, in the wall's table; the expectations here are
built from it. :data:`TABLE_GATES` are what the table promises beyond the wall's rules.
"""

from __future__ import annotations

import great_expectations as gx
import pandas as pd

from expectations.runner import Validation, validate
from python_models.data_quality.rules import RULES, Gate

#: Invariants of the stored table that no wall rule states: every row names its ticker and has an
#: adjusted close (returns are computed from it), and no volume is negative.
TABLE_GATES = (
    Gate("not_null", ("ticker",)),
    Gate("not_null", ("adj_close",)),
    Gate("non_negative", ("volume",)),
)


def gates() -> list[tuple[str, Gate]]:
    """Every gate of the suite with what it stands for: a wall rule's name, or ``table``."""
    return [(rule.name, gate) for rule in RULES for gate in rule.gates] + [("table", gate) for gate in TABLE_GATES]


def columns() -> list[str]:
    """The columns of ``raw.prices`` the suite reads (the gate reads only these)."""
    return list(dict.fromkeys(c for _, gate in gates() for c in gate.columns))


def expectation(gate: Gate) -> gx.expectations.Expectation:
    """The Great Expectations expectation that checks ``gate``."""
    E = gx.expectations
    column = gate.columns[0]
    if gate.kind == "not_null":
        return E.ExpectColumnValuesToNotBeNull(column=column)
    if gate.kind == "positive":
        return E.ExpectColumnValuesToBeBetween(column=column, min_value=0, strict_min=True)
    if gate.kind == "non_negative":
        return E.ExpectColumnValuesToBeBetween(column=column, min_value=0)
    if gate.kind == "unique":
        return E.ExpectCompoundColumnsToBeUnique(column_list=list(gate.columns))
    return E.ExpectColumnPairValuesAToBeGreaterThanB(
        column_A=column, column_B=gate.columns[1], or_equal=True, ignore_row_if="either_value_is_missing"
    )


def suite() -> list:
    """The suite, one expectation per gate."""
    return [expectation(gate) for _, gate in gates()]


def check(frame: pd.DataFrame) -> Validation:
    """Validate ``frame`` (``raw.prices``, at least :func:`columns`) against :func:`suite`."""
    return validate(frame, "raw_prices", suite())
