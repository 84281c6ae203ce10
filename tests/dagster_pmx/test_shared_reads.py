"""The shared reads (ibis expressions) return what the plain SQL they replaced returns, dtypes included."""

import pandas as pd
import pytest

from dagster_pmx.defs import reads
from dagster_pmx.lake import Lake
from dagster_pmx.resources import Warehouse
from tests.dagster_pmx.read_checks import seeded_warehouse, sql

SETUP = """
create schema intermediate; create schema ml;
create table intermediate.int_sessions as
    select d::date as date from range(date '2020-01-01', date '2020-03-01', interval 1 day) t(d);
create table intermediate.int_risk_free as
    select date, case when day(date) = 5 then null else random() / 1000 end as rf_daily from intermediate.int_sessions;
create table ml.regime_probabilities as
    select date, r as regime, random() as probability from intermediate.int_sessions, range(3) t(r);
create table intermediate.int_forward_returns as
    select tk as ticker, date, h::integer as horizon, random() as fwd_return
    from intermediate.int_sessions, (values ('A'), ('B')) t(tk), (values (1), (5)) u(h) where date < '2020-02-20';
create table ml.base_forecasts as
    select 'm' || m as model, tk as ticker, date as asof_date, h::integer as horizon,
        (date + interval (h) day)::timestamp as target_date, random() as y_pred, random() as y_std,
        random() as y_lower, random() as y_upper
    from intermediate.int_sessions, (values ('A'), ('B')) t(tk), (values (1), (5)) u(h), range(2) v(m);
create table ml.ensemble_forecasts as  -- as the ensembles store it: target_date in nanoseconds
    select 'ensemble' as model, * exclude (model, target_date), target_date::timestamp_ns as target_date
    from ml.base_forecasts where model = 'm0';
"""


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    return seeded_warehouse(tmp_path_factory.mktemp("reads") / "w.ducklake", SETUP, seed=0.5)


@pytest.mark.parametrize(
    ("tables", "horizon", "since", "tickers"),
    [
        (["ml.base_forecasts"], None, "2020-01-15", None),
        (["ml.base_forecasts", "ml.ensemble_forecasts"], 5, None, None),
        (["ml.base_forecasts", "ml.ensemble_forecasts"], 1, "2020-01-15", ["B"]),
    ],
)
def test_forecasts_with_outcomes_equals_the_sql_join(warehouse, tables, horizon, since, tickers):
    columns = "model, ticker, asof_date, horizon, target_date, y_pred, y_std"
    filters = [f"horizon = {horizon}"] if horizon else []
    filters += [f"asof_date >= '{since}'"] if since else []
    filters += [f"ticker in ({', '.join(repr(t) for t in tickers)})"] if tickers else []
    where = (" where " + " and ".join(filters)) if filters else ""
    stacked = " union all ".join(f"select {columns} from {t}{where}" for t in tables)
    expected = sql(
        warehouse,
        f"with f as ({stacked}) select f.*, r.fwd_return as y_true from f left join intermediate.int_forward_returns r "
        "on r.ticker = f.ticker and r.date = f.asof_date and r.horizon = f.horizon",
    )
    got = reads.forecasts_with_outcomes(warehouse, tables, columns, horizon=horizon, since=since, tickers=tickers)
    order = ["model", "ticker", "asof_date", "horizon"]
    assert got["y_true"].isna().any() and got["y_true"].notna().any()
    pd.testing.assert_frame_equal(
        got.sort_values(order).reset_index(drop=True), expected.sort_values(order).reset_index(drop=True)
    )


def test_cash_rates_regimes_and_sessions_equal_the_sql(warehouse):
    rf = sql(warehouse, "select date, rf_daily from intermediate.int_risk_free order by date")
    expected = pd.Series(rf["rf_daily"].fillna(0.0).to_numpy(), index=pd.DatetimeIndex(rf["date"]))
    pd.testing.assert_series_equal(reads.cash_rates(warehouse), expected)
    rows = sql(
        warehouse,
        "select date, arg_max(regime, probability) as regime from ml.regime_probabilities group by date order by date",
    )
    pd.testing.assert_series_equal(
        reads.market_regimes(warehouse), pd.Series(rows["regime"].to_numpy(), index=pd.DatetimeIndex(rows["date"]))
    )
    dates = sql(warehouse, "select date from intermediate.int_sessions order by date")["date"]
    pd.testing.assert_index_equal(reads.sessions(warehouse), pd.DatetimeIndex(dates))


def test_last_date_leaves_out_one_ticker_and_is_none_on_an_empty_table(warehouse, tmp_path):
    expected = sql(warehouse, "select max(date) as d from intermediate.int_forward_returns where ticker <> 'B'")["d"]
    assert reads.last_date(warehouse, "intermediate.int_forward_returns", exclude_ticker="B") == expected.iloc[0]
    empty = Warehouse(path=str(tmp_path / "empty.ducklake"))
    with Lake.at(empty.path).open() as con:
        con.execute("create schema marts; create table marts.signals (ticker varchar, date date)")
    assert reads.last_date(empty, "marts.signals") is None


def test_frame_gives_text_without_values_and_decimals_as_duckdb_does(tmp_path):
    odd = Warehouse(path=str(tmp_path / "odd.ducklake"))
    with Lake.at(odd.path).open() as con:
        con.execute(
            "create table t as select null::varchar as empty_text, 'a' as text, 1.25::decimal(9, 2) as amount, "
            "null::integer as missing_int from range(3)"
        )
    with odd.ibis() as db:
        got = reads.frame(db.table("t"))
    pd.testing.assert_frame_equal(got, sql(odd, "select * from t"))
