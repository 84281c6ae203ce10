"""The forecasting and validation reads (ibis expressions) return what the SQL they replaced returned,
dtypes and row order included."""

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal, assert_series_equal

from dagster_pmx.defs.forecasting import reads
from tests.dagster_pmx.read_checks import seeded_warehouse, sql

SETUP = """
create schema intermediate; create schema marts; create schema ml;
create table intermediate.int_sessions as
    select d::date as date from range(date '2020-01-01', date '2020-04-01', interval 1 day) t(d);
create table intermediate.int_returns as
    select tk as ticker, d::date as date, random() as close,
        case when day(d) = 7 then null else random() / 100 end as log_return, now()::timestamp as refreshed_at
    from intermediate.int_sessions t(d), (values ('A'), ('B'), ('C'), ('SPX')) u(tk);
create table marts.features as
    select ticker, date, random() as ret_1d, case when day(date) < 3 then null else 1 end::integer as trend_regime,
        day(date)::bigint as session_of_month, day(date) = 1 as turn_of_month, refreshed_at
    from intermediate.int_returns;
create table ml.base_forecasts as
    select 'm' || m as model, ticker, date::timestamp as asof_date, h::bigint as horizon, random() as y_pred,
        (date + interval (h) day)::timestamp_ns as target_date
    from intermediate.int_returns, (values (1), (5)) v(h), range(2) w(m) where ticker <> 'SPX';
create table ml.model_fits (
    fit_id varchar not null, model varchar not null, ticker varchar not null, train_start timestamp not null,
    train_end timestamp not null, converged boolean, fitted_by varchar not null, run_id varchar,
    fitted_at timestamp not null, params varchar, fit blob not null);
insert into ml.model_fits values
    ('m/A/1', 'm', 'A', '2020-01-01', '2020-02-01', true, 'walk_forward', 'r1', '2020-03-01 10:00', '{}', 'old'::blob),
    ('m/A/2', 'm', 'A', '2020-01-05', '2020-02-05', false, 'retrain', 'r2', '2020-03-08 10:00', '{}', 'new'::blob),
    ('m/*/1', 'm', '*', '2020-01-01', '2020-02-01', null, 'walk_forward', 'r1', '2020-03-01 10:00', '{}', 'p'::blob),
    ('n/A/1', 'n', 'A', '2020-01-01', '2020-02-01', true, 'walk_forward', 'r1', '2020-03-01 10:00', '{}', 'x'::blob);
create table ml.regime_probabilities as
    select 'SPX' as ticker, date::timestamp as date, r::bigint as regime, random() as probability,
        date::timestamp as train_end
    from intermediate.int_sessions, range(3) t(r);
create table ml.ensemble_forecasts as select 'ensemble' as model, * exclude (model) from ml.base_forecasts;
create table marts.forecasts as
    select model, ticker, asof_date::date as asof_date, horizon::integer as horizon, y_pred,
        case when day(asof_date) > 25 then null else random() end as y_true
    from ml.base_forecasts;
create table marts.backtest_daily as
    select s as strategy, date::timestamp as date, random() as net_return, random() as excess_return
    from (select distinct date from intermediate.int_returns), (values ('x'), ('y')) t(s);
create table marts.signals as
    select ticker, asof_date as date, horizon, model, random() as expected_return, random() < 0.7 as tradable
    from marts.forecasts where model = 'm1';
"""


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    return seeded_warehouse(tmp_path_factory.mktemp("reads") / "w.ducklake", SETUP, seed=0.25)


@pytest.mark.parametrize("since", [None, pd.Timestamp("2020-02-10")])
@pytest.mark.parametrize("tickers", [[], ["A", "C"]])
def test_model_inputs_are_the_sql_frames(warehouse, since, tickers):
    after = "" if since is None else f" and date >= '{since:%Y-%m-%d}'"
    returns = sql(
        warehouse,
        "select ticker, date, log_return from intermediate.int_returns "
        f"where log_return is not null and ticker <> ?{after} order by ticker, date",
        ["SPX"],
    )
    features = sql(
        warehouse,
        f"select * exclude (refreshed_at) from marts.features where ticker <> ?{after} order by date, ticker",
        ["SPX"],
    )
    if tickers:  # the SQL read every ticker and the asset kept the universe's: now the database filters
        returns = returns[returns["ticker"].isin(tickers)].reset_index(drop=True)
        features = features[features["ticker"].isin(tickers)].reset_index(drop=True)
    got_returns, got_features = reads.model_inputs(warehouse, "SPX", tickers, since, features=True)
    assert_frame_equal(got_returns, returns)
    assert_frame_equal(got_features, features)  # trend_regime: Int32 with NULLs, as DuckDB's .df() gives it
    assert str(got_features["trend_regime"].dtype) == "Int32"
    assert reads.model_inputs(warehouse, "SPX", tickers, since, features=False)[1] is None


def test_forecast_state_is_the_last_origin_per_model_and_ticker(warehouse):
    last, columns = reads.forecast_state(warehouse)
    expected = sql(warehouse, "select model, ticker, max(asof_date) as last from ml.base_forecasts group by all")
    order = ["model", "ticker"]
    assert_frame_equal(last.sort_values(order, ignore_index=True), expected.sort_values(order, ignore_index=True))
    assert columns == list(sql(warehouse, "select * from ml.base_forecasts limit 0").columns)


def test_current_fits_are_the_last_stored_per_model_and_ticker(warehouse):
    rows = reads.current_fits(warehouse, ["m"])
    got = {(r.model, r.ticker): (bytes(r.fit), r.converged, r.train_end) for r in rows.itertuples()}
    assert got.keys() == {("m", "A"), ("m", "*")}
    assert got[("m", "A")][:2] == (b"new", False) and got[("m", "A")][2] == pd.Timestamp("2020-02-05")
    assert got[("m", "*")][0] == b"p" and pd.isna(got[("m", "*")][1])
    assert reads.current_fits(warehouse, []).empty


def test_regime_reads(warehouse):
    series, last = reads.benchmark_returns(warehouse, "SPX", regimes_stored=True)
    expected = sql(
        warehouse,
        "select date, log_return from intermediate.int_returns where ticker = ? and log_return is not null "
        "order by date",
        ["SPX"],
    )
    assert_series_equal(
        series, pd.Series(expected["log_return"].to_numpy(float), index=pd.DatetimeIndex(expected["date"]))
    )
    assert last == pd.Timestamp("2020-03-31")
    assert reads.benchmark_returns(warehouse, "SPX", regimes_stored=False)[1] is None
    assert_frame_equal(
        reads.latest_regimes(warehouse),
        sql(
            warehouse,
            "select * from ml.regime_probabilities where date = (select max(date) from ml.regime_probabilities)",
        ),
    )
    regimes, since = reads.ensemble_inputs(warehouse, ensembles_stored=True)
    assert_frame_equal(regimes, sql(warehouse, "select date, regime, probability from ml.regime_probabilities"))
    assert since == pd.Timestamp("2020-03-31")


def test_scoring_and_validation_reads(warehouse):
    assert_frame_equal(
        reads.scored_forecasts(warehouse),
        sql(warehouse, "select model, ticker, asof_date, horizon, y_pred, y_true from marts.forecasts"),
    )
    tickers = sql(warehouse, "select distinct ticker from marts.forecasts order by ticker")["ticker"].tolist()
    assert len(tickers) > 1
    for batch in (tickers[:1], tickers[1:]):
        columns = "model, ticker, asof_date, horizon, y_pred, y_true"
        expected_rows = sql(
            warehouse,
            f"select {columns} from marts.forecasts where y_true is not null and list_contains(?, ticker)",
            [batch],
        )
        assert_frame_equal(reads.realised_forecasts(warehouse, batch), expected_rows)
    assert_frame_equal(
        reads.scored_forecasts(warehouse, tickers[:1]),
        sql(
            warehouse,
            "select model, ticker, asof_date, horizon, y_pred, y_true from marts.forecasts where ticker = ?",
            tickers[:1],
        ),
    )
    daily, governed = reads.validation_inputs(warehouse, "m0")
    order = ["date", "strategy"]
    expected_daily = sql(
        warehouse, "select strategy, date, net_return, excess_return from marts.backtest_daily order by date"
    )
    assert_frame_equal(
        daily.sort_values(order, ignore_index=True), expected_daily.sort_values(order, ignore_index=True)
    )
    assert daily["date"].is_monotonic_increasing
    expected = sql(
        warehouse,
        """
        select 'governed' as model, s.ticker, s.date as asof_date, s.expected_return as y_pred, f.y_true
        from marts.signals s join marts.forecasts f on f.model = s.model and f.ticker = s.ticker
            and f.asof_date = s.date and f.horizon = s.horizon
        where s.tradable and f.y_true is not null
        union all
        select 'random_walk@governed' as model, s.ticker, s.date, f.y_pred, f.y_true
        from marts.signals s join marts.forecasts f on f.model = ? and f.ticker = s.ticker
            and f.asof_date = s.date and f.horizon = s.horizon
        where s.tradable and f.y_true is not null
        """,
        ["m0"],
    )
    order = ["model", "ticker", "asof_date", "y_pred"]
    assert len(governed) and set(governed["model"]) == {"governed", "random_walk@governed"}
    assert_frame_equal(governed.sort_values(order, ignore_index=True), expected.sort_values(order, ignore_index=True))
