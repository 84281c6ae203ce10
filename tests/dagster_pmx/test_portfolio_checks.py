"""Tier 2: the drawdown-control gate and the capacity rows, called as plain functions on a temporary warehouse."""

import dagster as dg
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


def check(warehouse: Warehouse) -> dg.AssetCheckResult:
    """The gate as a full build runs it: on every session."""
    return allocations_respect_the_drawdown_control(
        dg.build_asset_check_context(), warehouse=warehouse, settings=PmxSettings()
    )


def test_gate_passes_when_the_control_is_obeyed(warehouse):
    assert allocations_respect_the_drawdown_control(
        dg.build_asset_check_context(), warehouse=warehouse, settings=PmxSettings()
    ).passed


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
    result = allocations_respect_the_drawdown_control(
        dg.build_asset_check_context(), warehouse=warehouse, settings=PmxSettings()
    )
    assert not result.passed and result.metadata["violations"].value >= 1


def test_after_a_daily_refresh_the_gate_checks_the_sessions_it_appended(warehouse):
    with warehouse.connect() as con:  # a risky weight decided while stopped, on the 6th
        con.execute("update marts.allocations set weight = 0.05 where date = '2021-01-06' and ticker = 'A'")
    instance = dg.DagsterInstance.ephemeral()
    context = dg.build_asset_check_context(instance=instance)
    for appended_after, passed in [("2021-01-06", True), ("2021-01-05", False)]:
        metadata = {"appended_after": appended_after}
        instance.report_runless_asset_event(dg.AssetMaterialization(["marts", "allocations"], metadata=metadata))
        result = allocations_respect_the_drawdown_control(context, warehouse=warehouse, settings=PmxSettings())
        assert result.passed == passed


def test_the_es_gate_blocks_a_planted_breach(tmp_path, monkeypatch):
    import numpy as np

    from dagster_pmx.defs.portfolio import checks
    from python_models.portfolio.books import allocation_rows
    from python_models.portfolio.risk_limits import EsLimit, apply_es_limit

    rng = np.random.default_rng(0)
    dates = pd.bdate_range("2019-01-01", periods=320)
    returns = pd.DataFrame(rng.normal(0.0003, 0.012, (320, 2)), index=dates, columns=["A", "B"])
    returns.iloc[280:290] -= 0.04  # a crash the later decisions' windows hold
    decided = dates[[290, 300, 319]]
    policy = EsLimit(limit=0.03, level=0.975)
    scaled, es_rows = apply_es_limit(pd.DataFrame({"A": 0.5, "B": 0.5}, index=decided), returns, policy)
    wh = Warehouse(path=str(tmp_path / "wh.ducklake"))
    wh.replace_table("marts.es_control", es_rows.assign(strategy="governed"))
    wh.replace_table("marts.allocations", allocation_rows("governed", scaled))
    monkeypatch.setattr(checks, "sessions", lambda warehouse: dates)
    monkeypatch.setattr(checks, "load_market", lambda warehouse, start: type("M", (), {"returns": returns})())
    settings = PmxSettings(es_limit=0.03, es_level=0.975)
    assert (es_rows["scale"] < 1).all()  # the limit bound at every decision...
    assert checks.allocations_respect_the_es_limit(
        dg.build_asset_check_context(), warehouse=wh, settings=settings
    ).passed
    with wh.connect() as con:  # ...and a position above what it allowed
        con.execute(f"update marts.allocations set weight = 0.5 where date = '{decided[1].date()}' and ticker = 'A'")
    result = checks.allocations_respect_the_es_limit(dg.build_asset_check_context(), warehouse=wh, settings=settings)
    assert not result.passed and result.metadata["breaches"].value == 1
