"""Governance and allocations in the daily refresh resume from the state the warehouse holds.

On the full build of the slice, the rows after a date are deleted and the two assets run
incrementally: they rebuild exactly those rows, as the full build wrote them. The cut lies
far enough back that the resumed stretch holds reviews, stops or resumptions, a barbell
rebalance and drawdown-control sessions, so every kind of state is read back.
"""

import dagster as dg
import pandas as pd
import pytest

from dagster_pmx.defs.governance.assets import governance
from dagster_pmx.defs.portfolio.assets import allocations
from dagster_pmx.defs.refresh import IncrementalRun
from dagster_pmx.lake import Lake
from dagster_pmx.resources import PmxSettings, Warehouse
from tests.e2e.background import LLM_ON
from tests.e2e.helpers import SLICE, read

GOVERNANCE = {
    "ml.governed_signals": "asof_date",
    "marts.governance_decisions": "decision_date",
    "marts.governance_reviews": "review_date",
    "marts.model_risk": "date",
    "marts.feature_drift": "review_date",
}
ALLOCATIONS = {
    "marts.allocations": "date",
    "marts.drawdown_control": "date",
    "ml.strategy_decisions": "date",
    "marts.es_control": "date",
}


def table(path, name: str) -> pd.DataFrame:
    return read(path, f"select * from {name} order by all")


def resume(path, asset, tables: dict[str, str], sessions_back: int) -> pd.Timestamp:
    """Delete the rows of ``tables`` after the session ``sessions_back`` before the last, run ``asset``
    incrementally; returns the cut."""
    dates = read(path, "select distinct date from marts.model_risk order by date")["date"]
    cut = dates.iloc[-1 - sessions_back]
    with Lake.at(path).open() as con:
        for name, column in tables.items():
            con.execute(f"delete from {name} where {column} > ?", [cut])
    list(incremental(asset, path))
    return cut


def incremental(asset, path):
    """The asset as the daily refresh runs it, called as a plain function."""
    # the full build's own routing settings (tests/e2e/background.py): its last 42 sessions follow the LLM source
    routing = {k: v for k, v in LLM_ON.items() if k.startswith("llm_fallback")}
    warehouse, settings = Warehouse(path=str(path)), PmxSettings(**SLICE, **routing)
    config = IncrementalRun(incremental=True)
    return asset(dg.build_asset_context(), warehouse=warehouse, settings=settings, config=config)


@pytest.fixture
def copy(full, tmp_path):
    path = tmp_path / "pmx.ducklake"
    Lake.at(full).copy_to(path)
    return path


def test_governance_resumed_after_a_cut_writes_the_full_builds_rows(full, copy):
    cut = resume(copy, governance, GOVERNANCE, 150)
    for name, column in GOVERNANCE.items():
        expected, got = table(full, name), table(copy, name)
        assert (expected[column] > cut).sum() > 0, name
        pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-9, atol=1e-12, obj=name)
    decisions = table(copy, "marts.governance_decisions")
    assert (decisions["decision_date"] > cut).sum() > 0  # reviews (holds) at least


def test_allocations_resumed_after_a_cut_write_the_full_builds_rows(full, copy):
    cut = resume(copy, allocations, ALLOCATIONS, 150)
    for name in ALLOCATIONS:
        pd.testing.assert_frame_equal(table(copy, name), table(full, name), check_exact=True, obj=name)
    states = table(copy, "marts.drawdown_control")
    assert set(states.loc[states["date"] > cut, "strategy"]) == {"governed", "barbell", "risk_parity"}
    barbell = read(
        copy,
        "select distinct date from ml.strategy_decisions where strategy = 'barbell' and date > ?",
        [cut],
    )
    assert len(barbell) >= 25  # every fifth session of the 150 resumed


def test_a_refresh_with_nothing_new_writes_nothing(copy):
    before = {name: table(copy, name) for name in [*GOVERNANCE, *ALLOCATIONS]}
    for asset in (governance, allocations):
        results = list(incremental(asset, copy))
        assert [getattr(r.metadata["new_rows"], "value", r.metadata["new_rows"]) for r in results] == [0] * len(results)
    for name, frame in before.items():
        pd.testing.assert_frame_equal(table(copy, name), frame, obj=name)
