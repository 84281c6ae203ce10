"""Tier 2: the drawdown-control gate and the capacity rows, called as plain functions on a temporary warehouse."""

import pandas as pd
import pytest

from dagster_pmx.defs.portfolio.checks import allocations_respect_the_drawdown_control
from dagster_pmx.resources import PmxSettings, Warehouse

DATES = pd.bdate_range("2021-01-04", periods=4)


@pytest.fixture
def warehouse(tmp_path):
    wh = Warehouse(path=str(tmp_path / "wh.ducklake"))
    control = pd.DataFrame(
        {
            "strategy": "barbell",
            "date": DATES,
            "state": ["normal", "de_risked", "stopped", "stopped"],
            "scale": [1.0, 0.5, 0.0, 0.0],
            "drawdown": [-0.05, -0.16, -0.26, -0.27],
        }
    )
    wh.replace_table("marts.drawdown_control", control)
    alloc = pd.DataFrame(
        {
            "strategy": "barbell",
            "date": [DATES[0]] * 3 + [DATES[1]] * 3 + [DATES[2]] * 3,
            "ticker": ["A", "B", "CASH"] * 3,
            "weight": [0.4, 0.4, 0.2, 0.2, 0.2, 0.6, 0.0, 0.0, 1.0],
            "sleeve": ["risky", "risky", "safe"] * 3,
        }
    )
    wh.replace_table("marts.allocations", alloc)
    return wh


def test_gate_passes_when_the_control_is_obeyed(warehouse):
    assert allocations_respect_the_drawdown_control(warehouse=warehouse, settings=PmxSettings()).passed


@pytest.mark.parametrize(
    "sql",
    [
        # a risky weight decided while stopped
        "update marts.allocations set weight = 0.05 where date = '2021-01-06' and ticker = 'A'",
        # more than half the gross limit while de-risked
        "update marts.allocations set weight = 0.35 where date = '2021-01-05' and ticker = 'A'",
        # no de-risking trade on the session the scale changed
        "delete from marts.allocations where date = '2021-01-05'",
    ],
)
def test_gate_fails_when_the_control_is_broken(warehouse, sql):
    with warehouse.connect() as con:
        con.execute(sql)
    result = allocations_respect_the_drawdown_control(warehouse=warehouse, settings=PmxSettings())
    assert not result.passed and result.metadata["violations"].value >= 1
