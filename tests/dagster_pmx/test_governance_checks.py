"""Tier 2: the governance gates called as plain functions on a temporary warehouse."""

import pandas as pd
import pytest

from dagster_pmx.defs.governance.checks import allocations_respect_the_signal_gate, signals_follow_governance
from dagster_pmx.resources import PmxSettings, Warehouse

DATES = pd.bdate_range("2021-01-04", periods=3)


@pytest.fixture
def warehouse(tmp_path):
    wh = Warehouse(path=str(tmp_path / "wh.ducklake"))
    risk = pd.DataFrame(
        {
            "model": ["ensemble"] * 3 + ["xgboost"] * 3,
            "date": list(DATES) * 2,
            "rolling_accuracy": [0.55, 0.55, 0.55, 0.50, 0.44, 0.44],
            "stopped": [False, False, False, False, True, True],
            "needs_retrain": [False, False, False, False, True, True],
            "active": [False, True, True, True, False, False],  # xgboost promoted, then stopped
        }
    )
    wh.replace_table("marts.model_risk", risk)
    signals = pd.DataFrame(
        {
            "ticker": "A",
            "date": DATES,
            "model": ["xgboost", "ensemble", "ensemble"],
            "expected_return": 0.01,
            "confidence": [0.6, 0.6, 0.5],
            "tradable": [True, True, False],
            "block_reason": [None, None, "low_confidence"],
        }
    )
    wh.replace_table("marts.signals", signals)
    alloc = pd.DataFrame(
        {"strategy": "governed", "date": DATES, "ticker": "A", "weight": [0.1, 0.1, 0.0], "sleeve": "risky"}
    )
    wh.replace_table("marts.allocations", alloc)
    return wh


def test_gates_pass_when_signals_follow_governance(warehouse):
    assert signals_follow_governance(warehouse=warehouse).passed
    assert allocations_respect_the_signal_gate(warehouse=warehouse, settings=PmxSettings()).passed


@pytest.mark.parametrize(
    "sql",
    [
        "update marts.signals set model = 'xgboost' where date = '2021-01-05'",  # a stopped model traded
        "update marts.signals set confidence = 0.54 where date = '2021-01-05'",  # below the 0.55 minimum
        "update marts.signals set model = 'garch' where date = '2021-01-04'",  # a model governance never ran
    ],
)
def test_signal_gate_fails_on_a_stopped_or_unconfident_model(warehouse, sql):
    with warehouse.connect() as con:
        con.execute(sql)
    result = signals_follow_governance(warehouse=warehouse)
    assert not result.passed and result.metadata["violations"].value == 1


def test_allocation_gate_fails_when_a_blocked_signal_carries_weight(warehouse):
    with warehouse.connect() as con:
        con.execute("update marts.allocations set weight = 0.05 where date = '2021-01-06'")
    assert not allocations_respect_the_signal_gate(warehouse=warehouse, settings=PmxSettings()).passed


def test_a_routed_llm_signal_passes_only_on_a_session_the_audit_trail_routes(warehouse):
    """Fallback routing (llm_fallback): a tradable signal of the LLM source needs a `route` decision as the
    last routing decision at or before its date, and the 0.55 minimum."""
    with warehouse.connect() as con:
        con.execute("update marts.signals set model = 'llm:good' where date = '2021-01-05'")
    assert not signals_follow_governance(warehouse=warehouse).passed  # no audit trail of routing at all
    decisions = pd.DataFrame(
        {"decision_date": [DATES[0], DATES[1]], "action": ["route_refused", "route"], "model": "llm", "reason": "r"}
    )
    warehouse.replace_table("marts.governance_decisions", decisions)
    assert signals_follow_governance(warehouse=warehouse).passed
    with warehouse.connect() as con:
        con.execute("update marts.signals set confidence = 0.54 where date = '2021-01-05'")
    assert signals_follow_governance(warehouse=warehouse).metadata["violations"].value == 1
    with warehouse.connect() as con:
        con.execute("update marts.signals set confidence = 0.6 where date = '2021-01-05'")
        con.execute("update marts.governance_decisions set action = 'unroute' where decision_date = '2021-01-05'")
    assert signals_follow_governance(warehouse=warehouse).metadata["violations"].value == 1
    # a model's tradable signal on a session routed to the LLM source is a violation too
    with warehouse.connect() as con:
        con.execute("update marts.signals set model = 'ensemble' where date = '2021-01-05'")
        con.execute("update marts.governance_decisions set action = 'route' where decision_date = '2021-01-04'")
    assert signals_follow_governance(warehouse=warehouse).metadata["violations"].value == 1
