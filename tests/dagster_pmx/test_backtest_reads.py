"""The backtest and report reads (ibis expressions) return what the SQL they replaced returned, dtypes
and NULLs included."""

import pandas as pd
import pytest

from dagster_pmx.defs.backtest import reads
from tests.dagster_pmx.read_checks import seeded_warehouse, sql

SETUP = """
create schema intermediate; create schema marts; create schema ml;
create table intermediate.int_returns as
    select tk as ticker, d::date as date, random() / 100 as simple_return,
        case when tk = 'B' then null else 10 + random() end as open,
        10 + random() as close, 10 + random() as adj_close
    from range(date '2020-01-01', date '2020-03-01', interval 1 day) t(d), (values ('A'), ('B')) u(tk);
insert into intermediate.int_returns  -- C stops trading in January
    select 'C', d::date, random() / 100, 10 + random(), 10 + random(), 10 + random()
    from range(date '2020-01-01', date '2020-01-15', interval 1 day) t(d);
create table intermediate.int_risk_free as
    select date, random() / 1e4 as rf_daily from (select distinct date from intermediate.int_returns);
create table marts.features as
    select ticker, date, case when ticker = 'A' then random() * 1e6 end as dollar_volume,
        random() as realized_vol_21, now()::timestamp as refreshed_at
    from intermediate.int_returns where day(date) <> 7;
create table ml.safe_sleeve as  -- one row a session (distinct before random())
    select date, random() / 1000 as bond_return from (select distinct date from intermediate.int_returns);
create table marts.allocations as
    select s as strategy, date::timestamp as date, ticker, random() as weight
    from intermediate.int_returns, (values ('barbell'), ('governed'), ('risk_parity')) v(s);
create table marts.signals as select ticker, date, 'm' || (day(date) % 3) as model from intermediate.int_returns;
create table marts.backtest_daily as
    select strategy, date, random() as net_return, random() as excess_return, random() as turnover,
        random() as exposure, 1 + random() as equity, -random() as drawdown
    from marts.allocations group by strategy, date;
create table marts.backtest_summary as
    select strategy, case when strategy = 'governed' then null else random() end as sharpe, random() as sortino,
        random() as cagr, random() as volatility, -random() as max_drawdown, random() as calmar,
        random() as information_ratio, random() as turnover, random() as exposure
    from (select distinct strategy from marts.allocations);
create table marts.model_leaderboard as
    select h as horizon, r as rank, 'm' || r as model, random() as mse_ratio, random() as directional_accuracy,
        random() as da_low, random() as da_high
    from (values (21), (1)) a(h), range(3) b(r);
"""


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    return seeded_warehouse(tmp_path_factory.mktemp("backtest_reads") / "w.ducklake", SETUP, seed=0.25)


def by(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys).reset_index(drop=True)


def test_market_rows_equal_the_sql_join_and_window(warehouse):
    expected = sql(
        warehouse,
        """
        select r.ticker, r.date, r.simple_return,
               r.open * r.adj_close / r.close / lag(r.adj_close) over (partition by r.ticker order by r.date) - 1
                   as open_return,
               f.dollar_volume,
               f.realized_vol_21 / sqrt(252) as volatility
        from intermediate.int_returns r
        left join marts.features f on f.ticker = r.ticker and f.date = r.date
        """,
    )
    got, tickers = reads.market_rows(warehouse)
    assert got["open_return"].isna().any() and got["volatility"].isna().any()
    pd.testing.assert_frame_equal(by(got, ["ticker", "date"]), by(expected, ["ticker", "date"]))
    assert tickers == sorted(expected["ticker"].unique())
    # from a later session on: the same rows (its first open return still from the close before it)
    since = sorted(expected["date"].unique())[len(expected["date"].unique()) // 2]
    later, _ = reads.market_rows(warehouse, since)
    assert later["open_return"].notna().any()
    from_since = expected[expected["date"] >= since].reset_index(drop=True)
    pd.testing.assert_frame_equal(by(later, ["ticker", "date"]), by(from_since, ["ticker", "date"]))


def test_sleeve_allocations_signals_and_daily_equal_the_sql(warehouse):
    sleeve = sql(warehouse, "select date, bond_return from ml.safe_sleeve")
    expected = pd.Series(sleeve["bond_return"].to_numpy(), index=pd.DatetimeIndex(sleeve["date"]))
    pd.testing.assert_series_equal(reads.bond_returns(warehouse).sort_index(), expected.sort_index())
    keys = ["strategy", "date", "ticker"]
    alloc = sql(warehouse, "select strategy, date, ticker, weight from marts.allocations")
    pd.testing.assert_frame_equal(by(reads.allocation_rows(warehouse), keys), by(alloc, keys))
    some = sql(warehouse, "select strategy, date, ticker, weight from marts.allocations where strategy in ('barbell')")
    pd.testing.assert_frame_equal(by(reads.allocation_rows(warehouse, ["barbell"]), keys), by(some, keys))
    signals = sql(warehouse, "select ticker, date, model from marts.signals order by date")
    got = reads.signal_models(warehouse)
    assert got["date"].is_monotonic_increasing
    pd.testing.assert_frame_equal(by(got, ["ticker", "date"]), by(signals, ["ticker", "date"]))
    daily = sql(
        warehouse,
        "select strategy, date, net_return, excess_return, turnover, exposure from marts.backtest_daily order by date",
    )
    got = reads.daily_results(warehouse, ["net_return", "excess_return", "turnover", "exposure"])
    pd.testing.assert_frame_equal(by(got, ["strategy", "date"]), by(daily, ["strategy", "date"]))


def test_tearsheet_inputs_equal_the_sql_in_its_order(warehouse):
    daily, summary, leaderboard = reads.tearsheet_inputs(warehouse)
    expected = sql(warehouse, "select strategy, date, net_return, equity, drawdown from marts.backtest_daily")
    pd.testing.assert_frame_equal(by(daily, ["strategy", "date"]), by(expected, ["strategy", "date"]))
    pd.testing.assert_frame_equal(
        summary,
        sql(
            warehouse,
            "select strategy, sharpe, sortino, cagr, volatility, max_drawdown, calmar, information_ratio, turnover, "
            "exposure from marts.backtest_summary order by sharpe desc",
        ),
    )
    assert summary["sharpe"].isna().iloc[-1]  # NULLs last, as DuckDB's order by puts them
    pd.testing.assert_frame_equal(
        leaderboard,
        sql(
            warehouse,
            "select horizon, rank, model, mse_ratio, directional_accuracy, da_low, da_high "
            "from marts.model_leaderboard order by horizon, rank",
        ),
    )


def test_impact_is_priced_where_the_market_read_from_the_same_session_prices_it(warehouse):
    from dagster_pmx.defs.backtest.engine import load_market

    # A has a volume on every session but the 7th of each month; B and C none
    for since, tickers in [(None, ["A"]), ("2020-02-08", ["A"]), ("2020-02-08", ["A", "B"]), (None, [])]:
        market = load_market(warehouse, since or "2020-01-01")
        assert reads.impact_priced(warehouse, tickers, since) == market.impact_priced(tickers)
    assert reads.impact_priced(warehouse, ["A"], "2020-02-08") and not reads.impact_priced(warehouse, ["A"])


def test_the_market_from_a_later_start_is_the_whole_historys_cut_with_every_ticker(warehouse):
    from dagster_pmx.defs.backtest.engine import load_market

    whole, later = load_market(warehouse, "2020-01-01"), load_market(warehouse, "2020-02-01")
    for name in ("returns", "open_returns", "dollar_volume", "volatility"):
        pd.testing.assert_frame_equal(getattr(later, name), getattr(whole, name).loc["2020-02-01":])
    assert "C" in later.returns.columns and later.returns["C"].isna().all()  # no row of C after the start
    assert later.open_returns["A"].notna().all()  # the first session's open return: from the close before it
