"""The governance and portfolio reads (ibis expressions) return what the SQL they replaced returned,
dtypes included: the library receives the same frames."""

import ibis
import pandas as pd
import pytest

from dagster_pmx.defs.governance import reads as governance
from dagster_pmx.defs.portfolio import reads as portfolio
from dagster_pmx.defs.reads import frame
from dagster_pmx.lake import Lake
from dagster_pmx.resources import Warehouse
from python_models.governance.governor import GovernanceState
from python_models.governance.policy import GovernancePolicy
from tests.dagster_pmx.read_checks import seeded_warehouse, sql

SETUP = """
create schema intermediate; create schema marts; create schema ml; create schema staging;
create table intermediate.int_sessions as
    select d::date as date from range(date '2020-01-01', date '2020-04-01', interval 1 day) t(d);
create table intermediate.int_returns as
    select tk as ticker, date, random() / 100 as simple_return
    from intermediate.int_sessions, (values ('A'), ('B'), ('SPX')) t(tk) where not (tk = 'B' and day(date) = 7);
create table marts.features as
    select ticker, date, random() > 0.1 as has_price, random() as variance_ratio_z_10,
        case when day(date) < 5 then null else (random() * 3)::integer end as trend_regime,
        dayofweek(date)::bigint as day_of_week, random() as ret_1d, now()::timestamp as refreshed_at
    from intermediate.int_returns;
create table marts.model_risk as
    select m as model, date::timestamp as date, random() as rolling_accuracy, random() > 0.7 as stopped,
        random() > 0.5 as needs_retrain,
        m = case when day(date) % 3 = 0 then 'm' when day(date) % 3 = 1 then 'ensemble' end as active,
        random() > 0.5 as accuracy_stop,
        case when day(date) < 3 then null else random() * 12 end as decay_cusum
    from intermediate.int_sessions, (values ('ensemble'), ('m')) t(m);
create table marts.governance_reviews as select date as review_date from marts.model_risk where day(date) = 10;
create table ml.governed_signals (asof_date date);
create table marts.governance_decisions (decision_date timestamp);
create table marts.feature_drift (review_date timestamp);
create table marts.signals as
    select ticker, date, 5::integer as horizon, random() / 50 as expected_return, 0.05::double as forecast_std,
        random() as confidence, random() > 0.4 as tradable
    from intermediate.int_returns where ticker <> 'SPX' and date >= '2020-02-01';
create table marts.forecasts as
    select 'm' || m as model, ticker, date as asof_date, h::integer as horizon, random() / 50 as y_pred,
        random() / 10 as y_std
    from intermediate.int_returns, range(2) t(m), (values (1), (5)) u(h) where ticker <> 'SPX' and date >= '2020-01-20';
create table ml.regime_probabilities as
    select 'SPX' as ticker, date::timestamp as date, r as regime, random() as probability
    from intermediate.int_sessions, range(3) t(r);
create table intermediate.int_market as select date, random() / 5 as market_vol_21 from intermediate.int_sessions;
create table ml.safe_sleeve as select date::timestamp as date, random() as bond_share from intermediate.int_sessions;
create table ml.strategy_decisions as
    select s as strategy, date::timestamp as date, ticker, random() / 10 as weight
    from marts.signals, (values ('barbell'), ('governed')) t(s);
create table marts.drawdown_control as
    select s as strategy, date::timestamp as date, 'normal' as state, round(random()) as scale, 0.0::double as drawdown
    from intermediate.int_sessions, (values ('barbell'), ('governed')) t(s);
create table marts.allocations (strategy varchar, date date, ticker varchar, weight double, sleeve varchar);
create table staging.stg_macro as
    select s as series_id, date, random() as value
    from intermediate.int_sessions, (values ('AAA'), ('CPILFESL'), ('X')) t(s) where day(date) = 1;
"""
SINCE = pd.Timestamp("2020-02-10")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    return seeded_warehouse(tmp_path_factory.mktemp("domain_reads") / "w.ducklake", SETUP, seed=0.25)


def series(frame: pd.DataFrame, value: str) -> pd.Series:
    return pd.Series(frame[value].to_numpy(), index=pd.DatetimeIndex(frame["date"]))


def test_nullable_integer_and_boolean_columns_come_back_as_duckdb_gives_them(warehouse):
    query = (
        "select ticker, date, trend_regime, has_price, null::boolean as flag, refreshed_at, "
        "refreshed_at::timestamp_ns as stamp_ns from marts.features"
    )
    with warehouse.ibis() as db:
        t = db.table("features", database="marts")
        got = frame(
            t.select(
                "ticker",
                "date",
                "trend_regime",
                "has_price",
                flag=ibis.null("boolean"),
                refreshed_at=t.refreshed_at,
                stamp_ns=t.refreshed_at.cast("timestamp(9)"),
            )
        )
    expected = sql(warehouse, query)
    assert str(expected["trend_regime"].dtype) == "Int32" and str(expected["flag"].dtype) == "boolean"
    assert str(expected["stamp_ns"].dtype) == "datetime64[ns]"
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


@pytest.mark.parametrize("since", [None, SINCE])
def test_governance_reads_equal_the_sql(warehouse, since):
    after = since or pd.Timestamp("1900-01-01")
    vr = "select ticker, date, variance_ratio_z_10 as z from marts.features where ticker <> ? and date >= ?"
    pd.testing.assert_frame_equal(
        governance.variance_ratios(warehouse, "SPX", since), sql(warehouse, vr, ["SPX", after]), check_exact=True
    )
    features = sql(
        warehouse,
        "select * exclude (ticker, refreshed_at) from marts.features where ticker <> ? and date >= ?",
        ["SPX", after],
    ).drop(columns=["day_of_week"])
    got = governance.drift_features(warehouse, "SPX", since, ("day_of_week", "month"))
    pd.testing.assert_frame_equal(got, features, check_exact=True)


def test_the_stored_governance_state_and_active_history_equal_the_sql(warehouse):
    stored = sql(
        warehouse,
        "select date, coalesce(any_value(model) filter (where active), '') as model from marts.model_risk "
        "where date >= ? group by date order by date",
        [SINCE],
    )
    pd.testing.assert_series_equal(
        governance.stored_active(warehouse, SINCE), series(stored, "model"), check_exact=True
    )
    assert set(stored["model"]) == {"", "m", "ensemble"}
    last = pd.Timestamp("2020-03-31")
    rows = sql(warehouse, "select * from marts.model_risk where date = ?", [last])

    def by_model(column: str, kind: type) -> dict:
        return {m: kind(x) for m, x in zip(rows["model"], rows[column], strict=True)}

    state = governance.stored_state(warehouse, GovernancePolicy())
    expected = GovernanceState(
        last,
        "",
        by_model("stopped", bool),
        pd.Timestamp("2020-03-10"),
        by_model("accuracy_stop", bool),
        by_model("decay_cusum", float),
        by_model("needs_retrain", bool),
    )
    assert state == expected


@pytest.mark.parametrize("since", [None, SINCE])
def test_the_signal_inputs_equal_the_sql(warehouse, since):
    after = since or pd.Timestamp("1900-01-01")
    expected = sql(
        warehouse,
        """
        select 'governed' as strategy, ticker, date,
               case when tradable then expected_return else 0 end as expected_return, forecast_std,
               confidence, tradable
        from marts.signals
        where date > ?
        """,
        [after],
    )
    inputs = portfolio.signal_inputs(warehouse, since)
    assert inputs is not None
    pd.testing.assert_frame_equal(inputs.signals, expected, check_exact=True)
    assert inputs.horizon == sql(warehouse, "select max(horizon) as h from marts.signals")["h"].iloc[0]
    own = """
        select f.model as strategy, f.ticker, f.asof_date as date, f.y_pred as expected_return,
               f.y_std as forecast_std, null::double as confidence, null::boolean as tradable
        from marts.forecasts f
        where f.horizon = (select max(horizon) from marts.signals) and f.asof_date > ?
        """
    models = sql(warehouse, f"select distinct strategy from ({own}) order by 1", [after])["strategy"]
    assert inputs.models == tuple(models) and len(models) > 1
    for model in models:  # each model's own signals, read one model at a time
        expected = sql(warehouse, f"select * from ({own}) where strategy = ?", [after, model])
        got = portfolio.model_signals(warehouse, model, inputs.horizon, since)
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
    # every model's at once (what the daily refresh reads)
    key = ["strategy", "ticker", "date"]
    every = sql(warehouse, own, [after]).sort_values(key, ignore_index=True)
    got = portfolio.model_signals(warehouse, None, inputs.horizon, since).sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(got, every, check_exact=True)
    if since is None:  # a full build reads a model at a time
        assert inputs.model_rows is None
    else:  # the refresh's inputs hold every model's new rows, as that read gives them
        pd.testing.assert_frame_equal(inputs.model_rows.sort_values(key, ignore_index=True), every, check_exact=True)
    dates = sql(warehouse, "select distinct date from marts.signals order by 1")["date"]
    pd.testing.assert_index_equal(inputs.grid, pd.DatetimeIndex(dates))  # the whole history's, whatever since
    universe = sql(
        warehouse,
        """
        select min(first) as first, list_distinct(flatten(list(tickers))) as tickers from (
            select min(date) as first, list(distinct ticker) as tickers from marts.signals
            union all
            select min(asof_date), list(distinct ticker) from marts.forecasts
            where horizon = (select max(horizon) from marts.signals)
        )
        """,
    ).iloc[0]
    assert (inputs.first, inputs.tickers) == (universe["first"], set(universe["tickers"]))
    assert portfolio.signal_inputs(warehouse, pd.Timestamp("2020-04-01")) is None  # nothing after the last


def test_the_portfolio_reads_equal_the_sql(warehouse):
    probs = sql(warehouse, "select date, regime, probability from ml.regime_probabilities")
    expected = probs.pivot(index="date", columns="regime", values="probability").sort_index()
    pd.testing.assert_frame_equal(portfolio.regime_probabilities(warehouse), expected, check_exact=True)
    vol = sql(warehouse, "select date, market_vol_21 from intermediate.int_market")
    pd.testing.assert_series_equal(portfolio.market_volatility(warehouse), series(vol, "market_vol_21"))
    sleeve = sql(warehouse, "select date, bond_share from ml.safe_sleeve")
    pd.testing.assert_series_equal(portfolio.bond_shares(warehouse), series(sleeve, "bond_share"))
    decisions = sql(warehouse, "select strategy, date, ticker, weight from ml.strategy_decisions")
    pd.testing.assert_frame_equal(portfolio.stored_decisions(warehouse), decisions, check_exact=True)
    scales = sql(warehouse, "select strategy, date, scale from marts.drawdown_control")
    expected = scales.pivot(index="date", columns="strategy", values="scale")
    pd.testing.assert_frame_equal(portfolio.stored_scales(warehouse), expected, check_exact=True)
    macro = sql(
        warehouse,
        "select series_id, date, value from staging.stg_macro where series_id in ('AAA', 'CPILFESL') order by date",
    )
    got = portfolio.macro_series(warehouse, ("AAA", "CPILFESL"))
    assert list(got) == ["AAA", "CPILFESL"]
    for name, g in macro.groupby("series_id"):
        pd.testing.assert_series_equal(got[name], series(g, "value"), check_exact=True)


def test_allocations_resume_only_when_every_table_is_stored(warehouse, tmp_path):
    assert portfolio.resume_date(warehouse) == pd.Timestamp("2020-03-31")
    partial = Warehouse(path=str(tmp_path / "partial.ducklake"))
    with Lake.at(partial.path).open() as con:
        con.execute("create schema marts; create table marts.drawdown_control as select now()::timestamp as date")
    assert portfolio.resume_date(partial) is None


def test_the_drawdown_controls_stored_settings_and_none_from_an_older_table(warehouse, tmp_path):
    assert portfolio.stored_drawdown_settings(warehouse) == []  # the fixture's table predates the columns
    stored = Warehouse(path=str(tmp_path / "settings.ducklake"))
    with Lake.at(stored.path).open() as con:
        con.execute(
            "create schema marts; create table marts.drawdown_control as select now()::timestamp as date, "
            "'hard_cap' as mode, 0.15::double as de_risk_at, 0.25::double as stop_at, 10.0::double as cap_multiplier "
            "from range(3)"
        )
    assert portfolio.stored_drawdown_settings(stored) == [
        {"mode": "hard_cap", "de_risk_at": 0.15, "stop_at": 0.25, "cap_multiplier": 10.0}
    ]
