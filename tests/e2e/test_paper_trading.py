"""Paper trading on the default data: the ledger reconciles, tracks the backtest, books each day once."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from dagster_pmx.definitions import build_definitions
from dagster_pmx.defs.backtest.engine import cost_model, load_market
from dagster_pmx.defs.trading import ledger
from dagster_pmx.defs.trading.checks import paper_ledger_reconciles
from dagster_pmx.lake import Lake
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.backtest.engine import run_backtest
from python_models.trading.paper_trading import Ledger
from tests.e2e.helpers import SLICE, read

LEDGER = [f"marts.paper_{name}" for name in ledger.SCHEMAS]


def book(path, strategies: str = "barbell") -> dg.ExecuteInProcessResult:
    """Materialize the trading group alone, as the daily refresh's last steps do."""
    settings = PmxSettings(**{**SLICE, "paper_strategies": strategies})
    defs = build_definitions({"warehouse": Warehouse(path=str(path)), "settings": settings})
    keys = dg.AssetSelection.groups("trading").resolve(defs.resolve_asset_graph())
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), asset_selection=list(keys), raise_on_error=False
    )


def rows(path, table, strategy: str | None = None) -> pd.DataFrame:
    where = f"where strategy = '{strategy}'" if strategy else ""
    return read(path, f"select * exclude (run_id, booked_at) from {table} {where} order by all")


def cut_ledger(path, sessions: int) -> None:
    """The ledger as it stood ``sessions`` sessions before its last (only a test removes ledger rows)."""
    cut = read(path, "select date from marts.paper_nav order by date")["date"].iloc[-sessions - 1]
    with Lake.at(path).open() as con:
        for name, table in zip(ledger.SCHEMAS, LEDGER, strict=True):
            column = "decision_date" if name == "orders" else "date"
            con.execute(f"delete from {table} where {column} > ?", [cut])


def test_the_paper_book_is_the_backtest_of_what_it_executed_and_tracks_the_decisions(full):
    nav = read(full, "select * from marts.paper_nav order by date").set_index("date")
    # a new ledger starts 63 sessions before the last one, and books every session since
    assert len(nav) == 64 and set(read(full, "select strategy from marts.paper_nav")["strategy"]) == {"barbell"}
    assert nav.index[-1] == pd.Timestamp("2012-12-31")
    warehouse, settings = Warehouse(path=str(full)), PmxSettings(**SLICE)
    assert paper_ledger_reconciles(warehouse=warehouse).passed

    market = load_market(warehouse, nav.index[0])
    returns = market.returns.loc[: nav.index[-1]]
    fills = read(full, "select date from marts.paper_fills where quantity <> 0")
    positions = read(full, "select date, ticker, value from marts.paper_positions")
    held = positions.pivot(index="date", columns="ticker", values="value").reindex(nav.index).fillna(0.0)
    traded = pd.DatetimeIndex(fills["date"].unique())
    executed = held.loc[traded].div(nav.loc[traded, "nav"], axis=0)
    daily = run_backtest(
        executed,
        returns,
        costs=cost_model(settings, impact=False),
        execution="close",
        cash_rate=market.cash_rate,
        safe_assets=("BOND",),
    )
    # same prices, costs and cash rate: the paper NAV is the backtest of the weights it held after each fill
    assert_allclose(nav["nav"] / settings.aum, daily["equity"], rtol=1e-5)

    tracking = read(full, "select * from marts.paper_tracking order by date")
    gap = tracking["paper_equity"].iloc[-1] - tracking["backtest_equity"].iloc[-1]
    # against the backtest of the decisions, the gap is the one-session drift between sizing an order at the
    # decision's close and filling it at the next close (plus whole shares and the minimum trade): small and
    # without a sign, and the costs agree to within the drift of the traded values
    assert abs(gap) < 0.005 and tracking["return_gap"].abs().max() < 0.003
    assert abs(tracking["return_gap"].mean()) < 1e-4
    paper_cost, backtest_cost = tracking["paper_cost"].sum(), tracking["backtest_cost"].sum()
    assert paper_cost > 0 and abs(paper_cost / backtest_cost - 1) < 0.05


def test_a_rerun_books_nothing_and_a_resumed_ledger_books_the_same_rows(full, tmp_path):
    path = tmp_path / "pmx.ducklake"
    Lake.at(full).copy_to(path)
    before = {t: read(path, f"select * from {t} order by all") for t in LEDGER}
    assert book(path).success
    for table, frame in before.items():  # nothing new to book: not one row added or changed
        pd.testing.assert_frame_equal(read(path, f"select * from {table} order by all"), frame, obj=table)

    cut_ledger(path, 20)  # the warehouse as it stood 20 sessions earlier
    assert book(path).success
    for table in LEDGER:
        pd.testing.assert_frame_equal(rows(path, table), rows(full, table), obj=table)
    runs = read(path, "select count(distinct run_id) as n from marts.paper_nav")["n"].iloc[0]
    assert runs == 2


def test_a_resumed_ledger_and_a_new_one_in_one_run_book_what_each_books_alone(full, tmp_path):
    # one run reads the market once, from the earliest session any of its ledgers books: the new ledger's
    # first session here, 63 sessions back, while the resumed one continues from 20 sessions back
    both, alone = tmp_path / "both.ducklake", tmp_path / "alone.ducklake"
    for path in (both, alone):
        Lake.at(full).copy_to(path)
    cut_ledger(both, 20)
    assert book(both, "barbell,risk_parity").success
    assert book(alone, "risk_parity").success  # the new ledger in a run of its own (barbell is up to date)
    for table in LEDGER:
        pd.testing.assert_frame_equal(rows(both, table, "barbell"), rows(full, table, "barbell"), obj=table)
        pd.testing.assert_frame_equal(rows(both, table, "risk_parity"), rows(alone, table, "risk_parity"), obj=table)
    # the new ledger starts where a new ledger starts (63 sessions before the last) and books every session since
    dates = read(both, "select date from marts.paper_nav where strategy = 'risk_parity' order by date")["date"]
    assert len(dates) == 64 and dates.iloc[0] == read(full, "select min(date) as d from marts.paper_nav")["d"].iloc[0]


def test_a_session_cannot_be_booked_twice_and_a_broken_ledger_fails_the_check(full, tmp_path):
    path = tmp_path / "pmx.ducklake"
    Lake.at(full).copy_to(path)
    warehouse = Warehouse(path=str(path))
    stored = ledger.read_ledger(warehouse, "barbell")
    last = stored.nav.iloc[[-1]].drop(columns=["strategy", "run_id", "booked_at"])
    empty = {name: frame.iloc[:0] for name, frame in stored.tables().items() if name != "nav"}
    with pytest.raises(ValueError, match="second booking"):
        ledger.append(warehouse, {"barbell": Ledger(**empty, nav=last)}, "a-second-run")
    # the refused transaction changed nothing
    pd.testing.assert_frame_equal(ledger.read_ledger(warehouse, "barbell").nav, stored.nav)

    day = stored.cash["date"].iloc[10]
    with Lake.at(path).open() as con:
        con.execute("update marts.paper_cash set interest = interest + 1000 where date = ?", [day])
    result = paper_ledger_reconciles(warehouse=warehouse)
    assert not result.passed and result.metadata["breaks"].value == 1
    assert str(day.date()) in result.metadata["first_breaks"].value
    with Lake.at(path).open() as con:
        con.execute("update marts.paper_cash set interest = interest - 1000 where date = ?", [day])
        con.execute("delete from marts.paper_nav where date = ?", [stored.nav["date"].iloc[30]])
    result = paper_ledger_reconciles(warehouse=warehouse)
    assert not result.passed and "session not booked" in result.metadata["first_breaks"].value
    assert np.isfinite(stored.nav["nav"]).all()
