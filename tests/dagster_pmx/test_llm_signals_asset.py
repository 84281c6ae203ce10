"""The LLM signal asset on a seeded warehouse against a local server speaking Ollama's chat API: off by
default, the call budget and the incremental runs, the prompt's data taken at the signal's close only, and
every answer kept with its verdict."""

import json

import dagster as dg
import pandas as pd
import pytest

from dagster_pmx.defs.llm import reads
from dagster_pmx.defs.llm.assets import HOST_VARIABLE, llm_signals
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.llm.signals import PROMPT_FEATURES
from tests.dagster_pmx.read_checks import seeded_warehouse, sql
from tests.python_models.llm.ollama_server import RecordedOllama

FEATURES = ", ".join(f"random() - 0.5 as {c}" for c in PROMPT_FEATURES if c != "realized_vol_21")
SETUP = f"""
create schema marts; create schema ml;
create table marts.features as
    select t.ticker, d::timestamp as date, true as has_price, 0.2 + random() / 10 as realized_vol_21, {FEATURES}
    from range(date '2020-01-01', date '2020-01-11', interval 1 day) r(d),
        (values ('AAA'), ('BBB'), ('SP500')) t(ticker);
create table ml.base_forecasts as
    select m.model, f.ticker, f.date as asof_date, h.horizon, random() / 100 as y_pred
    from marts.features f, (values ('garch'), ('random_walk')) m(model), (values (1), (21)) h(horizon);
create table ml.ensemble_forecasts as
    select 'ensemble' as model, ticker, asof_date, horizon, avg(y_pred) as y_pred
    from ml.base_forecasts group by all;
create table ml.regime_probabilities as
    select 'SP500' as ticker, date, g.regime, 0.25 as probability
    from (select distinct date from marts.features) d, range(4) g(regime);
"""


def _settings(**overrides) -> PmxSettings:
    base = {"llm_models": "missing,good", "llm_history": 3, "llm_max_calls": 4, "llm_read_timeout": 2.0}
    return PmxSettings(**{**base, **overrides})


def _run(warehouse: Warehouse, settings: PmxSettings) -> dg.MaterializeResult:
    result = dg.materialize([llm_signals], resources={"warehouse": warehouse, "settings": settings})
    assert result.success
    return result.asset_materializations_for_node("ml__llm_signals")[0]


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    return seeded_warehouse(tmp_path / "w.ducklake", SETUP)


def test_off_by_default_it_only_makes_the_table(warehouse, monkeypatch):
    monkeypatch.delenv(HOST_VARIABLE, raising=False)
    event = _run(warehouse, PmxSettings())
    assert event.metadata["state"].value == "off: PMX_LLM_HOST and llm_models not set"
    stored = sql(warehouse, "select * from ml.llm_signals")
    assert stored.empty and list(stored.columns) == [
        c.name for c in llm_signals.metadata_by_key[dg.AssetKey(["ml", "llm_signals"])]["dagster/column_schema"].columns
    ]


def test_on_it_asks_within_its_budget_oldest_first_and_keeps_every_answer(warehouse, monkeypatch):
    with RecordedOllama() as server:
        monkeypatch.setenv(HOST_VARIABLE, server.url)
        first = _run(warehouse, _settings())
        stored = sql(warehouse, "select * from ml.llm_signals order by date, ticker")
        # the latest three sessions of two tickers (not the benchmark): six pairs; four asked, the oldest first
        assert first.metadata["new_rows"].value == 4 and first.metadata["valid"].value == 4
        assert list(zip(stored["date"].dt.day, stored["ticker"], strict=True)) == [
            (8, "AAA"),
            (8, "BBB"),
            (9, "AAA"),
            (9, "BBB"),
        ]
        assert (stored["model"] == "good").all() and (stored["failovers"] == 1).all()  # 'missing' answered 404
        assert (stored["direction"] == "up").all() and stored["valid"].all() and stored["rejection"].isna().all()
        assert stored["prompt_hash"].nunique() == 4 and stored["answer_hash"].nunique() == 1
        assert not stored["attempt_log"].str.contains("127.0.0.1").any()  # the host is never stored
        log = json.loads(stored["attempt_log"].iloc[0])
        assert [(a["model"], a["outcome"]) for a in log] == [("missing", "error"), ("good", "ok")]
        # the next run asks for the two left, the one after for none
        assert _run(warehouse, _settings()).metadata["new_rows"].value == 2
        assert _run(warehouse, _settings()).metadata["new_rows"].value == 0
        assert len(sql(warehouse, "select * from ml.llm_signals")) == 6


def test_the_prompt_holds_the_signal_closes_data_and_nothing_later(warehouse):
    pairs = reads.pending_pairs(warehouse, "SP500", 3, 21, 10)
    (request,) = [r for r in reads.signal_requests(warehouse, pairs, "SP500", 21) if r.inputs.ticker == "AAA"][:1]
    date = pd.Timestamp(request.inputs.date)
    row = sql(warehouse, "select * from marts.features where ticker = 'AAA' and date = ?", [date]).iloc[0]
    assert request.inputs.features == {c: row[c] for c in PROMPT_FEATURES}
    assert request.daily_volatility == pytest.approx(row["realized_vol_21"] / 252**0.5)
    made = sql(
        warehouse,
        "select model, y_pred from ml.base_forecasts where ticker = 'AAA' and asof_date = ? and horizon = 21 "
        "union all select model, y_pred from ml.ensemble_forecasts where ticker = 'AAA' and asof_date = ? "
        "and horizon = 21",
        [date, date],
    )
    assert request.inputs.forecasts == dict(zip(made["model"], made["y_pred"], strict=True))
    assert request.inputs.regimes == {str(g): 0.25 for g in range(4)}
    # what is dated after the signal's close changes, and its prompt does not
    with warehouse.connect() as con:
        con.execute("update marts.features set ret_21d = 99 where date > ?", [date])
        con.execute("update ml.base_forecasts set y_pred = 99 where asof_date > ?", [date])
        con.execute("update ml.regime_probabilities set probability = 0.99 where date > ?", [date])
    again = [
        r
        for r in reads.signal_requests(warehouse, pairs, "SP500", 21)
        if (r.inputs.ticker, r.inputs.date) == (request.inputs.ticker, request.inputs.date)
    ]
    assert again == [request]


def test_the_table_keeps_its_types_and_a_server_down_is_asked_again_later(warehouse, monkeypatch):
    monkeypatch.delenv(HOST_VARIABLE, raising=False)
    _run(warehouse, PmxSettings())  # off: the empty table, with its column types
    types = dict(sql(warehouse, "select column_name, column_type from (describe ml.llm_signals)").values)
    assert types["ticker"] == types["rejection"] == types["attempt_log"] == "VARCHAR"
    assert types["valid"] == "BOOLEAN" and types["date"] == "TIMESTAMP_NS" and types["failovers"] == "BIGINT"
    with RecordedOllama() as server:
        monkeypatch.setenv(HOST_VARIABLE, server.url)
        down = _run(warehouse, _settings(llm_models="missing"))  # no model answers: the run stops after 3
        assert down.metadata["new_rows"].value == 3 and down.metadata["valid"].value == 0
        stored = sql(warehouse, "select * from ml.llm_signals")
        assert (stored["model"] == "").all() and (stored["rejection"] == "empty").all()
        # the next run asks those pairs again (and stores the answers: the failed calls stay on record)
        again = _run(warehouse, _settings())
        assert again.metadata["new_rows"].value == 4 and again.metadata["valid"].value == 4
        answered = sql(warehouse, "select * from ml.llm_signals where model <> '' order by date, ticker")
        unanswered = sql(warehouse, "select * from ml.llm_signals where model = '' order by date, ticker")
        assert list(answered[["ticker", "date"]].itertuples(index=False))[:3] == list(
            unanswered[["ticker", "date"]].itertuples(index=False)
        )
        # a rejected answer after valid ones: its text columns were typed from the start
        rejected = _run(warehouse, _settings(llm_models="malformed"))
        assert rejected.metadata["rejections"].value == "{'malformed_json': 2}"
