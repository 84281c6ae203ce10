"""Tier 3: the whole graph on a small slice of the bundled data, in temporary warehouses."""

import json

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from dagster_pmx.lake import Lake, current_snapshot
from dagster_pmx.resources import PmxSettings
from python_models.forecasters.ensemble import VARIANTS
from python_models.forecasters.registry import DEFAULT_MODELS
from tests.e2e.helpers import CUT, SLICE, STAMPS, build, dbt, read


def test_every_mart_is_populated(full):
    from dagster_pmx.definitions import defs

    marts = [k.path[1] for k in defs.resolve_asset_graph().materializable_asset_keys if k.path[0] == "marts"]
    assert len(marts) == 37
    for table in marts:
        if table == "data_quality":
            continue  # the bundled slice is clean: see test_the_bundled_slice_passes_the_wall_whole
        assert read(full, f"select count(*) n from marts.{table}")["n"].iloc[0] > 0, table
    models = set(read(full, "select distinct model from marts.forecasts")["model"])
    assert models == {*DEFAULT_MODELS, *VARIANTS.values()}
    strategies = set(read(full, "select strategy from marts.backtest_summary")["strategy"])
    assert strategies == models | {"benchmark", "governed", "barbell", "risk_parity", "llm_backfill"}


def test_the_var_mart_is_each_strategys_own_window_and_its_backtest_counts_the_next_sessions(full):
    from python_models.risk.var import cornish_fisher, historical

    daily = read(full, "select strategy, date, net_return from marts.backtest_daily order by date")
    risk = read(full, "select * from marts.risk_var")
    sessions = daily.groupby("strategy").size()
    assert set(risk["strategy"]) == set(sessions[sessions > 252].index)  # the LLM's book is 42 sessions long
    estimated = risk.dropna(subset=["var", "es"])
    assert (estimated["es"] >= estimated["var"] - 1e-12).all()
    assert estimated["method"].nunique() == 3
    for strategy in ("governed", "benchmark"):
        returns = daily[daily["strategy"] == strategy].set_index("date")["net_return"]
        date = returns.index[400]
        past = returns.loc[:date].to_numpy()[-252:]
        own = risk[(risk["strategy"] == strategy) & (risk["date"] == date) & (risk["horizon"] == 10)]
        own = own.set_index(["method", "level"])
        assert own.loc[("historical", 0.99), "var"] == pytest.approx(historical(past, 0.99, 10).var, rel=1e-12)
        assert own.loc[("cornish_fisher", 0.95), "es"] == pytest.approx(cornish_fisher(past, 0.95, 10).es, rel=1e-9)
    tests = read(full, "select * from marts.var_backtests").set_index(["strategy", "method", "level"])
    one = risk[risk["horizon"] == 1].dropna(subset=["exceeded", "var"])
    counted = one.groupby(["strategy", "method", "level"])["exceeded"].agg(["size", "sum"])
    assert_allclose(tests.loc[counted.index, "sessions"], counted["size"])
    assert_allclose(tests.loc[counted.index, "exceedances"], counted["sum"])


def test_the_stress_marts_shock_every_stored_book_and_simulate_the_latest(full):
    from python_models.risk.stress import SHOCKS

    settings = PmxSettings(**SLICE)
    alloc = read(full, "select strategy, date, ticker, weight from marts.allocations")
    shocks = read(full, "select * from marts.stress_tests")
    assert set(shocks["strategy"]) == set(alloc["strategy"]) and set(shocks["scenario"]) == set(SHOCKS)
    decisions = alloc[["strategy", "date"]].drop_duplicates()
    assert len(shocks) == len(decisions) * len(SHOCKS)
    # the rate shocks are the bond weight times the proxy's closed-form move, at every decision
    bond = alloc[alloc["ticker"] == "BOND"].set_index(["strategy", "date"])["weight"]
    up = shocks[shocks["scenario"] == "rates_up_200bp"].set_index(["strategy", "date"])["loss"]
    held = bond.reindex(up.index).fillna(0.0)
    duration = settings.bond_duration  # -D dy + D^2 dy^2 / 2 at dy = +2 %, written out
    assert_allclose(up, -held * (-duration * 0.02 + 0.5 * duration**2 * 0.02**2), rtol=1e-12, atol=1e-15)
    assert (held > 0).any()
    # the slice starts after 1987: that day is the S&P 500's published -20.47 % times each asset's beta, the
    # equity shock's betas; 2008 is replayed from the slice's own returns, once it is over
    by = shocks.set_index(["strategy", "date", "scenario"])["loss"].unstack()
    assert_allclose(by["replay_1987_10_19"], by["equity_down_20"] * (1 - 224.84 / 282.70) / 0.2, rtol=1e-12, atol=1e-15)
    dates = pd.to_datetime(by.index.get_level_values("date"))
    assert by.loc[dates < "2008-10-15", "replay_2008_10_15"].isna().all()
    mc = read(full, "select * from marts.stress_monte_carlo")
    latest = decisions.groupby("strategy")["date"].max()
    assert set(mc["strategy"]) == set(latest.index)
    assert (mc.groupby("strategy")["horizon"].apply(set) == {21, 252}).all()
    simulated = pd.to_datetime(mc.groupby("strategy")["date"].first()).sort_index()
    pd.testing.assert_series_equal(simulated, pd.to_datetime(latest).sort_index(), check_names=False)
    assert mc["prob_drawdown_15"].between(0, 1).all() and (mc["es_99"] >= mc["var_99"] - 1e-12).all()


def test_the_drawdown_control_stores_the_settings_of_its_path(full):
    # the daily refresh extends the stored path only where these equal its own settings
    settings = PmxSettings(**SLICE)
    stored = read(full, "select distinct mode, de_risk_at, stop_at, cap_multiplier from marts.drawdown_control")
    assert stored.to_dict("records") == [
        {
            "mode": settings.drawdown_mode,
            "de_risk_at": settings.drawdown_de_risk,
            "stop_at": settings.drawdown_stop,
            "cap_multiplier": settings.drawdown_cap_multiplier,
        }
    ]


def test_the_es_limit_holds_at_every_priced_decision_of_the_traded_strategies(full):
    es = read(full, "select * from marts.es_control")
    assert set(es["strategy"]) == {"governed", "barbell", "risk_parity"}
    priced = es.dropna(subset=["es_before"])
    assert len(priced) > 0 and (priced["scale"].between(0, 1)).all()
    assert (priced["es_after"] <= priced["limit"] + 1e-9).all()
    bound = priced[priced["scale"] < 1]
    assert (bound["es_before"] > bound["limit"]).all()
    free = priced[priced["scale"] == 1]
    assert (free["es_before"] <= free["limit"] + 1e-12).all()
    assert_allclose(free["es_after"], free["es_before"], rtol=1e-12)


def test_every_fit_reports_its_diagnostics_and_the_policy_verdict_reads_them(full):
    # ml.fit_diagnostics: a row per walk-forward fit and diagnostic, keyed by the fit_id forecasts carry
    diagnostics = read(full, "select * from ml.fit_diagnostics")
    fits = read(full, "select distinct model, fit_id from ml.base_forecasts")
    # every fit that forecast (a fit whose forecasts were all left out as not finite has diagnostics only)
    assert set(fits["fit_id"]) <= set(diagnostics["fit_id"])
    assert set(diagnostics["fit_id"].str.split("/").str[0]) == set(DEFAULT_MODELS)
    assert set(diagnostics["model"]) == set(DEFAULT_MODELS)
    rounds = diagnostics[(diagnostics["model"] == "xgboost") & (diagnostics["diagnostic"] == "rounds_h21")]
    assert len(rounds) == fits["fit_id"].str.startswith("xgboost/").sum() and (rounds["value"] >= 1).all()
    # marts.policy_verdict: every mssa_rl fit, with its uplift where its window measured one (the slice's
    # 500-session windows hold a single block: none), and the running verdict, recomputed here
    verdict = read(full, "select * from marts.policy_verdict order by train_end")
    assert set(verdict["fit_id"]) == set(diagnostics.loc[diagnostics["model"] == "mssa_rl", "fit_id"])
    uplift = diagnostics[diagnostics["diagnostic"] == "policy_uplift"].set_index("fit_id")["value"]
    measured = verdict["fit_id"].map(uplift)
    assert_allclose(verdict["policy_uplift"].to_numpy(float), measured.to_numpy(float))
    n = measured.notna().cumsum().to_numpy()
    assert (verdict["measured_so_far"] == n).all()
    mean = measured.fillna(0).cumsum().to_numpy() / np.maximum(n, 1)
    t = mean / (measured.expanding().std().to_numpy() / np.sqrt(n))
    expected = np.where(n == 0, "not measured", np.where(t > 1.645, "learns", "learns nothing"))
    assert (verdict["verdict"] == expected).all()


def test_the_policy_verdict_follows_the_uplifts_it_reads(full, tmp_path):
    # planted uplifts on a copy (the view reads ml.fit_diagnostics as it is): none for the first fit, then
    # noise about 0 ("learns nothing"), then a run of clearly positive ones ("learns"); the mean, the
    # t statistic and the verdict recomputed by hand
    path = tmp_path / "pmx.ducklake"
    Lake.at(full).copy_to(path)
    with Lake.at(path).open() as con:
        fits = con.execute(
            "select distinct fit_id, model, ticker, train_start, train_end from ml.fit_diagnostics "
            "where model = 'mssa_rl' order by train_end"
        ).df()
        assert len(fits) >= 6
        rng = np.random.default_rng(0)
        planted = np.r_[np.nan, rng.normal(0, 0.01, 3), np.full(len(fits) - 4, 0.02)]
        rows = fits.assign(diagnostic="policy_uplift", value=planted).dropna(subset=["value"])
        con.register("planted", rows)
        con.execute("delete from ml.fit_diagnostics where diagnostic = 'policy_uplift'")
        con.execute("insert into ml.fit_diagnostics by name select * from planted")
    verdict = read(path, "select * from marts.policy_verdict order by train_end")
    uplift = pd.Series(planted)
    n = uplift.notna().cumsum().to_numpy()
    mean = uplift.fillna(0).cumsum().to_numpy() / np.maximum(n, 1)
    t = mean / (uplift.expanding().std().to_numpy() / np.sqrt(n))
    assert_allclose(verdict["mean_uplift_so_far"].iloc[1:], mean[1:])
    assert_allclose(verdict["t_stat_so_far"].iloc[2:], t[2:])
    assert_allclose(verdict["share_positive_so_far"].iloc[1:], (uplift > 0).cumsum()[1:] / n[1:])
    expected = np.where(n == 0, "not measured", np.where(t > 1.645, "learns", "learns nothing"))
    assert (verdict["verdict"] == expected).all()
    assert verdict["verdict"].iloc[0] == "not measured" and verdict["verdict"].iloc[-1] == "learns"
    assert (verdict["verdict"].iloc[1:4] == "learns nothing").all()


def test_forecasts_are_out_of_sample_and_realised_values_match_prices(full):
    f = read(full, "select * from marts.forecasts where model not like 'ensemble%'")
    assert (f["train_end"] < f["asof_date"]).all()
    assert f["asof_date"].min() >= pd.Timestamp(SLICE["forecast_start"])
    p = read(full, "select ticker, date, adj_close from marts.prices").set_index(["ticker", "date"])["adj_close"]
    sample = f.dropna(subset=["y_true"]).sample(200, random_state=0)
    keys = zip(sample["ticker"], sample["asof_date"], sample["target_date"], strict=True)
    expected = [p[(t, d2)] / p[(t, d1)] - 1 for t, d1, d2 in keys]
    assert_allclose(sample["y_true"], expected, rtol=1e-12)
    assert ((f["y_lower"] <= f["y_pred"]) & (f["y_pred"] <= f["y_upper"])).all()


def test_model_scores_match_forecasts(full):
    scores = read(full, "select * from marts.model_scores")
    f = read(
        full, "select * from marts.forecasts where model='garch' and ticker='JPM' and horizon=5 and y_true is not null"
    )
    row = scores[(scores.model == "garch") & (scores.ticker == "JPM") & (scores.horizon == 5)].iloc[0]
    assert row["n_obs"] == len(f)
    assert_allclose(row["rmse"], np.sqrt(((f.y_pred - f.y_true) ** 2).mean()))
    assert scores.loc[scores.model == "random_walk", "dm_stat"].isna().all()
    assert scores.loc[scores.model != "random_walk", "dm_pvalue"].between(0, 1).all()


def test_allocations_respect_caps_and_backtest_compounds(full):
    alloc = read(full, "select * from marts.allocations")
    risky = alloc[alloc.sleeve == "risky"]
    assert risky["weight"].between(0, 0.10 + 1e-12).all()
    assert (risky.groupby(["strategy", "date"])["weight"].sum() <= 1 + 1e-9).all()
    assert_allclose(alloc.groupby(["strategy", "date"])["weight"].sum(), 1.0)
    daily = read(full, "select * from marts.backtest_daily order by strategy, date")
    for strategy, g in daily.groupby("strategy"):
        assert_allclose(g["equity"].to_numpy(), np.cumprod(1 + g["net_return"].to_numpy()), rtol=1e-10)
        assert_allclose(g["net_return"], g["gross_return"] - g["cost"])
        # commission 10 + half-spread 2 bps of the value traded at the close, restated on the previous close's
        # equity (x (1 + gross)); impact only for the benchmark: the slice's stocks have no volume
        charged = g["turnover"] * 12 / 1e4 * (1 + g["gross_return"])
        if strategy == "benchmark":
            assert (g["cost"] >= charged - 1e-15).all() and g["cost"].sum() < 2e-3
        else:
            assert_allclose(g["cost"], charged)
    summary = read(full, "select * from marts.backtest_summary").set_index("strategy")
    ens = daily[daily.strategy == "ensemble"]
    assert_allclose(summary.loc["ensemble", "max_drawdown"], ens["drawdown"].min())
    assert (summary["max_drawdown"] <= 0).all()


def test_every_row_says_whether_its_cash_rate_was_known_and_the_benchmark_is_a_price_index(full):
    daily = read(full, "select strategy, date, cash_rate_known from marts.backtest_daily")
    rf = read(full, "select date, rf_known from intermediate.int_risk_free")
    both = daily.merge(rf, on="date", how="left")
    assert (both["cash_rate_known"] == both["rf_known"].fillna(False).astype(bool)).all()
    summary = read(full, "select * from marts.backtest_summary").set_index("strategy")
    unknown = (~daily["cash_rate_known"]).groupby(daily["strategy"]).sum()
    assert_allclose(summary.loc[unknown.index, "cash_rate_unknown_sessions"], unknown)
    assert summary.loc["benchmark", "return_basis"] == "price index"
    assert (summary.drop(index="benchmark")["return_basis"] == "total return").all()


def test_every_models_own_book_is_its_forecasts_at_the_signal_horizon_sized_alone(full):
    """The allocations read and size each model's book a model at a time: every model at the signals'
    horizon has its book, and it is the per-asset Kelly book of that model's forecasts alone."""
    from dagster_pmx.resources import PmxSettings
    from python_models.portfolio.sizing import kelly_book

    horizon = int(read(full, "select max(horizon) as h from marts.signals")["h"].iloc[0])
    forecasts = read(
        full,
        "select model as strategy, ticker, asof_date as date, y_pred as expected_return, y_std as forecast_std "
        f"from marts.forecasts where horizon = {horizon}",
    )
    alloc = read(full, "select strategy, date, ticker, weight, sleeve from marts.allocations")
    models = set(forecasts["strategy"])
    assert len(models) > 3 and set(alloc["strategy"]) == models | {"governed", "barbell", "risk_parity", "llm_backfill"}
    settings = PmxSettings(**SLICE)
    key = ["date", "ticker", "sleeve"]
    for model in sorted(models):
        own = forecasts[forecasts["strategy"] == model]
        expected = kelly_book(own, settings.kelly_fraction, settings.position_cap, settings.max_gross)
        got = alloc[alloc["strategy"] == model]
        both = got.merge(expected, on=key, how="outer", suffixes=("", "_expected"), indicator=True)
        assert (both["_merge"] == "both").all(), model
        assert_allclose(both["weight"], both["weight_expected"], rtol=0, atol=0, err_msg=model)


def test_positions_decided_at_t_are_traded_at_the_next_close_and_earn_t_plus_2(full):
    alloc = read(
        full, "select date, ticker, weight from marts.allocations where strategy='ensemble' and sleeve='risky'"
    )
    w = alloc.pivot(index="date", columns="ticker", values="weight").sort_index()
    r = read(full, "select ticker, date, simple_return from intermediate.int_returns").pivot(
        index="date", columns="ticker", values="simple_return"
    )
    daily = read(full, "select date, gross_return from marts.backtest_daily where strategy='ensemble'").set_index(
        "date"
    )
    rf = read(full, "select date, rf_daily from intermediate.int_risk_free").set_index("date")["rf_daily"]
    dates = daily.index[10:20]
    for decided, today in zip(dates[:-2], dates[2:], strict=True):
        # decided at the close of t, bought at the close of t + 1 (PMX_EXECUTION=next_close), held over t + 2
        cash = 1.0 - w.loc[decided].sum()  # the uninvested rest earns the day's T-bill rate
        expected = (w.loc[decided] * r.loc[today, w.columns]).sum() + cash * rf.loc[today]
        assert_allclose(daily.loc[today, "gross_return"], expected, rtol=1e-12)
    assert rf.loc[dates].gt(0).all()  # the slice lies inside the RF series (it ends in 2018)


COMPARE = {
    "marts.features": (["ticker", "date"], "date"),
    "ml.base_forecasts": (["model", "ticker", "asof_date", "horizon"], "asof_date"),
    "ml.ensemble_forecasts": (["model", "ticker", "asof_date", "horizon"], "asof_date"),
    "marts.signals": (["ticker", "date"], "date"),
    "ml.regime_probabilities": (["date", "regime"], "date"),
    "ml.class_probabilities": (["model", "ticker", "date", "target", "horizon"], "date"),
    "marts.allocations": (["strategy", "date", "ticker"], "date"),
    "marts.drawdown_control": (["strategy", "date"], "date"),
    "marts.es_control": (["strategy", "date"], "date"),
    "marts.stress_tests": (["strategy", "date", "scenario"], "date"),
    "ml.safe_sleeve": (["date"], "date"),
    "ml.governed_signals": (["ticker", "asof_date"], "asof_date"),
    "marts.model_risk": (["model", "date"], "date"),
    "marts.governance_decisions": (["decision_date", "action", "model"], "decision_date"),
}


@pytest.mark.parametrize("table", list(COMPARE))
def test_point_in_time_rows_before_the_cut_are_identical(full, truncated, table):
    keys, date_col = COMPARE[table]
    # target_date beyond the truncated data is unknown: NULL there, a date in the full build
    drop = ["target_date", *STAMPS]
    a = read(full, f"select * from {table} where {date_col} <= '{CUT}' order by {', '.join(keys)}")
    b = read(truncated, f"select * from {table} order by {', '.join(keys)}")
    assert len(a) > 0 and len(a) == len(b)
    a, b = a.drop(columns=drop, errors="ignore"), b.drop(columns=drop, errors="ignore")
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-10, atol=1e-14)


def test_point_in_time_targets_identical_where_the_cut_build_can_compute_them(full, truncated):
    a = read(full, f"select * from marts.targets where date <= '{CUT}' order by ticker, date")
    b = read(truncated, "select * from marts.targets order by ticker, date")
    for h in (1, 5, 21, 63):
        col = f"fwd_return_{h}d"
        known = b[col].notna()
        assert known.sum() > 0
        assert_allclose(a.loc[known, col], b.loc[known, col], rtol=1e-12)
        # The last h sessions before the cut cannot be computed from the cut data.
        assert (b.groupby("ticker")[col].apply(lambda s, n=h: s.tail(n).isna().all())).all()


# 63 s, a build of its own: the suite's budget; tests/dagster_pmx/test_ingest_and_checks.py quarantines the same rows
@pytest.mark.slow
def test_defective_csv_rows_are_quarantined_and_the_clean_rows_reach_the_backtest(tmp_path):
    from dagster_pmx.defs.ingest.sources import BundledSource

    prices = BundledSource().prices(["AAPL", "SP500"])
    prices = prices[(prices["source"] == "skfolio") & (prices["date"].dt.year.between(2008, 2012))]
    folder = tmp_path / "csv"
    folder.mkdir()
    planted = {}
    for ticker, g in prices.groupby("ticker"):
        g = g[["date", "close"]].copy().reset_index(drop=True)
        g["date"] = g["date"].dt.strftime("%Y-%m-%d")
        g["close"] = g["close"].astype(object)
        if ticker == "AAPL":
            planted = {
                g.loc[300, "date"]: "non_positive_price",
                g.loc[400, "date"]: "non_numeric",
                g.loc[500, "date"]: "unit_jump",
                g.loc[600, "date"]: "missing_close",
            }
            g.loc[300, "close"] = -g.loc[300, "close"]
            g.loc[400, "close"] = "n/a"
            g.loc[500, "close"] = g.loc[500, "close"] * 100
            g.loc[600, "close"] = None
            g = pd.concat([g, g.iloc[[100]]])  # an identical duplicate: collapsed, reported
            g = g.sample(frac=1.0, random_state=0)  # unsorted
        g.to_csv(folder / f"{ticker}.csv", index=False)
    path = tmp_path / "pmx.ducklake"
    result = build(
        path,
        tickers="AAPL",
        source="csv",
        csv_dir=str(folder),
        start_date="2008-01-01",
        forecast_start="2010-06-01",
        models="random_walk,garch",  # the wall is under test, not the forecasters
    )
    assert result.success, [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    checks = {
        e.asset_check_evaluation_data.asset_check_key.name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert checks["raw_prices_expectations"] and checks["allocations_expectations"] and checks["signals_expectations"]
    quarantine = read(path, "select * from raw.quarantine order by reason")
    got = {r.row_json and json.loads(r.row_json)["date"]: r.reason for r in quarantine.itertuples()}
    assert got == planted
    stored = read(path, "select ticker, count(*) n from raw.prices group by 1").set_index("ticker")["n"]
    sent = prices.groupby("ticker").size()
    assert stored["AAPL"] == sent["AAPL"] - len(planted) and stored["SP500"] == sent["SP500"]
    report = read(path, "select * from raw.ingest_report")
    assert report.loc[report["check_name"] == "duplicate_identical", "count"].tolist() == [1]
    assert report.loc[(report["check_name"] == "missing_session") & (report["ticker"] == "AAPL"), "count"].iloc[0] >= 4
    assert read(path, "select count(*) n from marts.backtest_summary")["n"].iloc[0] > 0
    dq = read(path, "select * from marts.data_quality where ticker = 'AAPL'")
    quarantined = dq[dq["finding"] == "quarantined"].set_index("check_name")["n_rows"].to_dict()
    assert quarantined == dict.fromkeys(planted.values(), 1)
    assert set(dq.loc[dq["finding"] == "reported", "check_name"]) >= {"duplicate_identical", "missing_session"}


def test_the_bundled_slice_passes_the_wall_whole(full):
    assert read(full, "select count(*) n from raw.quarantine")["n"].iloc[0] == 0
    dq = read(full, "select * from marts.data_quality")
    # the only findings: the two SP500 sources agree to 1e-7 and the stocks miss no NYSE session
    assert set(dq["finding"]) <= {"reported"} and set(dq["check_name"]) <= {"missing_session"}
    raw = read(full, "select count(*) n, count(*) filter (where flags <> '') repaired from raw.prices")
    assert raw["repaired"].iloc[0] == 0 and raw["n"].iloc[0] > 0


def test_python_written_tables_have_their_documented_columns(full):
    from dagster_pmx.definitions import defs

    graph = defs.resolve_asset_graph()
    documented = set()
    for key in graph.materializable_asset_keys:
        schema = graph.get(key).metadata.get("dagster/column_schema")
        if schema is None:
            continue
        documented.add(key.to_user_string())
        table = ".".join(key.path)
        actual = read(full, f"select * from {table} limit 0").columns.tolist()
        assert actual == [c.name for c in schema.columns], table
        assert all(c.description for c in schema.columns), table
    marts = {k.to_user_string() for k in graph.materializable_asset_keys if k.path[0] == "marts"}
    assert len(marts) == 37 and marts <= documented  # dbt's from YAML, Python's from dagster_pmx/defs/schemas.py
    assert {"raw/prices", "raw/macro"} <= documented


def test_targets_match_an_independent_pandas_computation(full):
    prices = read(full, "select ticker, date, adj_close from marts.prices order by ticker, date")
    targs = read(full, "select * from marts.targets order by ticker, date")
    for ticker, g in prices.groupby("ticker"):
        p = g.set_index("date")["adj_close"]
        daily_vol = np.log(p).diff().rolling(21).std()
        t = targs[targs.ticker == ticker].set_index("date")
        for h in (1, 5, 21, 63):
            fwd = p.shift(-h) / p - 1
            assert_allclose(t[f"fwd_return_{h}d"], fwd, rtol=1e-12)
            assert_allclose(t[f"fwd_risk_adj_return_{h}d"], fwd / (daily_vol * np.sqrt(h)), rtol=1e-9)
            sig = (fwd.abs() > daily_vol * np.sqrt(h)).where(fwd.notna() & daily_vol.notna())
            got = t[f"significant_move_{h}d"].astype("float").fillna(-1)
            assert (got == sig.astype("float").fillna(-1)).all()


def test_ensemble_weights_and_signal_confidence(full):
    from scipy import stats

    from python_models.governance.confidence import CONFIDENCE_WEIGHTS

    w = read(
        full,
        "select ensemble, ticker, horizon, asof_date, sum(weight) s, min(weight) lo from ml.ensemble_weights "
        "group by all",
    )
    assert set(w["ensemble"]) == set(VARIANTS.values())
    assert_allclose(w["s"], 1.0)
    n_models = len(DEFAULT_MODELS)
    shrinkage = PmxSettings(**SLICE).ensemble_shrinkage
    assert (w["lo"] >= shrinkage / n_models - 1e-12).all()  # the shrinkage toward equal weights bounds every weight
    assert (w["lo"] < 0.5 / n_models).any()  # and the weights respond: with the old 50 % none fell below this
    s = read(full, "select * from marts.signals where not starts_with(model, 'llm:')")  # routed: the LLM's own
    assert_allclose(s["conf_probability"], stats.norm.cdf(s["expected_return"].abs() / s["forecast_std"]), rtol=1e-10)
    blend = sum(share * s[f"conf_{name}"] for name, share in CONFIDENCE_WEIGHTS.items())
    assert_allclose(s["confidence"], blend, rtol=1e-12)
    assert s["confidence"].between(0, 1).all()
    assert (np.sign(s["expected_return"]) == s["direction"]).all()
    assert (s.loc[s["tradable"], "confidence"] >= 0.55).all()


def test_classifier_probabilities_carry_the_targets_events_and_are_scored_as_sklearn_scores_them(full):
    from sklearn.metrics import brier_score_loss, log_loss

    p = read(full, "select * from marts.class_probabilities")
    assert set(p["target"]) == {"direction", "significant_move"} and set(p["horizon"]) == {1, 5, 21, 63}
    assert (p["train_end"] < p["asof_date"]).all() and p["probability"].between(0, 1).all()
    # each event is marts.targets' label of the origin: up means a positive forward return
    t = read(full, "select * from marts.targets").rename(columns={"date": "asof_date"})
    joined = p.merge(t, on=["ticker", "asof_date"], how="left")
    for h in (1, 5, 21, 63):
        up = joined[(joined["target"] == "direction") & (joined["horizon"] == h)]
        expected = (up[f"fwd_return_{h}d"] > 0).astype(float).where(up[f"fwd_return_{h}d"].notna())
        assert_allclose(up["event"].astype(float).to_numpy(), expected.to_numpy())
        move = joined[(joined["target"] == "significant_move") & (joined["horizon"] == h)]
        assert_allclose(move["event"].astype(float).to_numpy(), move[f"significant_move_{h}d"].astype(float).to_numpy())
    scores = read(full, "select * from marts.classifier_scores")
    assert len(scores) == 8
    for row in scores.itertuples():
        rows = p[(p["target"] == row.target) & (p["horizon"] == row.horizon) & p["event"].notna()]
        y, prob, base = rows["event"].astype(float), rows["probability"], rows["base_rate"]
        assert row.n_obs == len(rows)
        assert row.brier == pytest.approx(brier_score_loss(y, prob), rel=1e-10)
        assert row.base_brier == pytest.approx(brier_score_loss(y, base), rel=1e-10)
        assert row.log_loss == pytest.approx(log_loss(y, prob, labels=[0, 1]), rel=1e-10)
        assert row.hit_rate == pytest.approx(((prob > 0.5) == (y > 0.5)).mean(), rel=1e-12)
        assert row.log_loss_diff_lower <= row.log_loss - row.base_log_loss <= row.log_loss_diff_upper
        assert row.verdict in {"beats the base rate", "worse than the base rate", "no different from the base rate"}
    # the confidence blend's classifier component is the probability of the signal's sign
    s = read(
        full,
        "select ticker, date, horizon, expected_return, conf_classifier from marts.signals "
        "where not starts_with(model, 'llm:')",  # a routed row has no confidence components
    )
    up = p[p["target"] == "direction"].rename(columns={"asof_date": "date"})[
        ["ticker", "date", "horizon", "probability"]
    ]
    m = s.merge(up, on=["ticker", "date", "horizon"], how="left")
    expected = np.where(m["expected_return"] > 0, m["probability"], 1 - m["probability"])
    expected = np.where(m["probability"].isna() | (m["expected_return"] == 0), 0.5, expected)
    assert_allclose(m["conf_classifier"].to_numpy(float), expected, rtol=1e-12)
    assert m["probability"].notna().mean() > 0.5


def test_signals_follow_the_model_governance_made_active(full):
    s = read(
        full,
        "select s.*, r.active, r.stopped from marts.signals s "
        "left join marts.model_risk r on r.model = s.model and r.date = s.date",
    )
    tradable = s[
        s["tradable"] & ~s["model"].str.startswith("llm:")
    ]  # the LLM's: test_the_llm_source_in_the_whole_graph
    assert len(tradable) > 0 and tradable["active"].all() and not tradable["stopped"].any()
    d = read(full, "select * from marts.governance_decisions")
    governance = d[d["model"] != "llm"]
    assert set(governance["action"]) <= {"promote", "hold", "revert", "stop", "resume", "retrain"}
    assert governance["thresholds"].str.contains("min_pf_uplift=0.03").all() and d["reason"].notna().all()
    reviews = read(full, "select * from marts.governance_reviews")
    assert reviews["dm_pvalue"].between(0, 1).all()
    # No weight where the signal may not trade.
    blocked = read(
        full,
        "select sum(a.weight) w from marts.allocations a join marts.signals s on s.ticker = a.ticker "
        "and s.date = a.date where a.strategy = 'governed' and not s.tradable",
    )
    assert blocked["w"].fillna(0).iloc[0] == 0


def test_market_regime_probabilities_are_filtered_walk_forward(full):
    regimes = read(full, "select * from ml.regime_probabilities order by date, regime")
    assert set(regimes["ticker"]) == {"SP500"} and set(regimes["regime"]) == {0, 1, 2, 3}
    assert_allclose(regimes.groupby("date")["probability"].sum(), 1.0)
    assert (regimes["train_end"] < regimes["date"]).all()
    assert regimes["probability"].between(0, 1).all()


def test_backtest_periods_compound_the_daily_returns(full):
    periods = read(full, "select * from marts.backtest_periods").set_index(["strategy", "breakdown", "period"])
    daily = read(full, "select strategy, date, net_return from marts.backtest_daily where strategy = 'benchmark'")
    daily = daily.set_index("date")["net_return"]
    y2010 = daily[daily.index.year == 2010]
    assert_allclose(periods.loc[("benchmark", "year", "2010"), "total_return"], np.prod(1 + y2010) - 1, rtol=1e-12)
    crisis = daily[(daily.index >= "2008-01-01") & (daily.index <= "2009-12-31")]
    row = periods.loc[("benchmark", "stress", "2008-2009 financial crisis")]
    assert row["sessions"] == len(crisis) and row["total_return"] == pytest.approx(np.prod(1 + crisis) - 1)
    regimes = periods.xs(("benchmark", "regime"), level=("strategy", "breakdown"))
    assert regimes["sessions"].sum() <= len(daily) and len(regimes) >= 2


def test_barbell_risk_limits_attribution_and_tearsheet(full):
    from python_models.portfolio.risk_limits import DrawdownPolicy, drawdown_states

    alloc = read(full, "select * from marts.allocations where strategy = 'barbell'")
    risky = alloc[alloc["sleeve"] == "risky"].groupby("date")["weight"].sum()
    assert risky.max() <= 0.9 + 1e-9 and risky.gt(0).any()  # the barbell's bound on the risky sleeve
    assert set(alloc.loc[alloc["sleeve"] == "safe", "ticker"]) <= {"BOND", "CASH"}
    assert (alloc.loc[alloc["ticker"] == "BOND", "weight"] > 0).any()
    # the drawdown control's states are those of the strategy's own backtested path
    daily = read(full, "select strategy, date, gross_return, net_return from marts.backtest_daily order by date")
    control = read(full, "select * from marts.drawdown_control order by date")
    for strategy, g in control.groupby("strategy"):
        net = daily[daily["strategy"] == strategy].set_index("date")["net_return"]
        states, scales, dd = drawdown_states(net.reindex(g["date"]).fillna(0.0).to_numpy(), DrawdownPolicy())
        assert_allclose(g["scale"], scales)
        assert_allclose(g["drawdown"], dd, atol=1e-12)
    # attribution adds up to the gross return of each strategy and year
    attribution = read(full, "select strategy, year, sum(contribution) c from marts.backtest_attribution group by all")
    daily["year"] = pd.DatetimeIndex(daily["date"]).year
    gross = daily.groupby(["strategy", "year"])["gross_return"].sum().rename("g").reset_index()
    both = attribution.merge(gross, on=["strategy", "year"])
    assert len(both) == len(gross)
    assert_allclose(both["c"], both["g"], atol=1e-12)
    models = read(full, "select distinct model from marts.backtest_attribution where strategy = 'governed'")
    assert set(models["model"].dropna()) <= set(read(full, "select distinct model from marts.signals")["model"])
    capacity = read(full, "select * from marts.capacity")
    assert set(capacity["strategy"]) == {"barbell", "governed", "risk_parity"}
    assert not capacity["priced"].any() and capacity["note"].str.startswith("no volume for").all()
    assert capacity["sharpe"].isna().all()  # nothing is made up where impact cannot be priced
    page = (full.parent / "reports" / "tearsheet.html").read_text()
    assert page.count("<img") >= 12 and "Model leaderboard" in page


@pytest.mark.slow  # a dbt build on a copy (~19 s); `make test-slow`
def test_a_value_breaking_its_columns_declared_rule_fails_the_models_rules_test(full, tmp_path):
    """Not-null, accepted values and ranges are column metadata checked by one column_rules test per model
    (see its macro): the full build passed them; on a copy, a NULL, a value outside the accepted ones and one
    outside its range (or an infinity) each fail marts.features' test, and a failing row names rule, column
    and value."""

    path = tmp_path / "pmx.ducklake"
    Lake.at(full).copy_to(path)
    select = ["test", "--select", "column_rules_features_"]
    assert dbt(path, tmp_path, *select).returncode == 0
    first_row = "where (ticker, date) = (select (ticker, date) from marts.features order by ticker, date limit 1)"
    with Lake.at(path).open() as con:
        con.execute(f"update marts.features set rsi_14 = 100.5, has_price = null, trend_regime = 2 {first_row}")
    failed = dbt(path, tmp_path, *select, "--store-failures")
    assert failed.returncode == 1 and "FAIL 3" in failed.stdout
    with Lake.at(path).open() as con:
        stored = con.execute(
            "select broken_rule, broken_column, broken_value from dbt_test__audit.column_rules_features_ order by all"
        )
        assert stored.fetchall() == [
            ("accepted_values", "trend_regime", "2"),
            ("not_null", "has_price", None),
            ("range", "rsi_14", "100.5"),
        ]
        con.execute(
            f"update marts.features set rsi_14 = 50, has_price = true, trend_regime = 1, beta_63 = 'inf' {first_row}"
        )
    assert "FAIL 1" in dbt(path, tmp_path, *select).stdout


@pytest.mark.slow  # a speed or memory behaviour: `make test-slow` (the default suite's 15-minute budget)
def test_a_builds_tests_of_an_incremental_model_read_the_rows_it_rewrote_and_dbt_test_reads_every_row(full, tmp_path):
    """macros/test_scope.sql: on a copy, an old row of marts.features is broken and a parent of it changes on
    the last session of one ticker, so an incremental build rewrites that session (with the parent's broken
    value). The build's rules test reads the rewritten rows and fails on that one only; `dbt test` reads every
    row and fails on both."""
    path = tmp_path / "pmx.ducklake"
    Lake.at(full).copy_to(path)
    with Lake.at(path).open() as con:
        old_row = "(ticker, date) = (select (ticker, date) from marts.features order by date, ticker limit 1)"
        con.execute(f"update marts.features set trend_regime = 2 where {old_row}")
        changed = "ticker = 'AAPL' and date = (select max(date) from intermediate.int_features_trend)"
        later = "(select max(refreshed_at) from marts.features) + interval 1 second"  # changed after the build
        con.execute(
            f"update intermediate.int_features_trend set trend_regime = 3, refreshed_at = {later} where {changed}"
        )
    build = dbt(path, tmp_path, "build", "--select", "features", "--store-failures")
    assert build.returncode == 1 and "FAIL 1 column_rules_features_" in build.stdout, build.stdout[-2000:]
    with Lake.at(path).open() as con:
        stored = con.execute("select broken_value, ticker from dbt_test__audit.column_rules_features_").fetchall()
        assert stored == [("3", "AAPL")]
        # the build rewrote the last session of every ticker (features are incremental across tickers)
        last = con.execute("select max(date) from marts.features").fetchone()[0]
        stamped = con.execute(
            "select distinct date from marts.features"
            " where refreshed_at = (select max(refreshed_at) from marts.features)"
        )
        assert stamped.fetchall() == [(last,)]
    assert "FAIL 2 column_rules_features_" in dbt(path, tmp_path, "test", "--select", "column_rules_features_").stdout


@pytest.mark.slow  # a speed or memory behaviour: `make test-slow` (the default suite's 15-minute budget)
def test_a_build_leaves_a_view_whose_sql_is_unchanged_as_it_is(full, tmp_path):
    """macros/materialization_view.sql: a view whose compiled SQL is the one it was created from (its comment
    holds the SQL's md5) is not re-created: the catalog gets no new snapshot. A view without that comment, or a
    --full-refresh, is re-created."""
    path = tmp_path / "pmx.ducklake"
    Lake.at(full).copy_to(path)
    view = ["run", "--select", "stg_prices"]

    def snapshot() -> int:
        with Lake.at(path).open(read_only=True) as con:
            return current_snapshot(con)

    def comment() -> str | None:
        with Lake.at(path).open(read_only=True) as con:
            return con.execute(
                "select comment from duckdb_views() where schema_name = 'staging' and view_name = 'stg_prices'"
            ).fetchone()[0]

    created = comment()
    assert created.startswith("pmx view of sql md5 ")  # the full build created it
    before = snapshot()
    kept = dbt(path, tmp_path, *view)
    assert kept.returncode == 0 and "unchanged" in kept.stdout, kept.stdout[-2000:]
    assert snapshot() == before
    with Lake.at(path).open() as con:
        con.execute("comment on view staging.stg_prices is null")
    for again in ([], ["--full-refresh"]):
        rebuilt = dbt(path, tmp_path, *view, *again)
        assert rebuilt.returncode == 0 and "unchanged" not in rebuilt.stdout, rebuilt.stdout[-2000:]
        assert comment() == created
    assert read(path, "select count(*) as n from staging.stg_prices")["n"].iloc[0] > 0


def test_the_llm_source_in_the_whole_graph(full):
    # the full build asks the recorded Ollama server (tests/e2e/background.py: LLM_ON)
    signals = read(full, "select * from ml.llm_signals order by date, ticker")
    dates = read(full, "select distinct date from marts.features order by date desc limit 42")["date"]
    assert len(signals) == 3 * 42 and set(signals["date"]) == set(dates)
    assert signals["valid"].all() and (signals["model"] == "good").all() and (signals["failovers"] == 1).all()
    assert signals.groupby(["ticker", "date"]).size().max() == 1
    # every prompt holds the close's own feature row
    features = read(full, "select * from marts.features")
    first = signals.iloc[0]
    prompt = json.loads(first["prompt"])
    row = features[(features["ticker"] == first["ticker"]) & (features["date"] == first["date"])].iloc[0]
    assert prompt["signal_date"] == str(first["date"].date())
    assert prompt["features"]["ret_21d"] == round(float(row["ret_21d"]), 6)
    # scored on the signals whose 21 sessions have passed, against the realised returns
    realised = read(
        full,
        "select s.expected_return, r.fwd_return from ml.llm_signals s join intermediate.int_forward_returns r "
        "on r.ticker = s.ticker and r.date = s.date and r.horizon = s.horizon where r.fwd_return is not null",
    )
    # asked long after their dates: scored as backfill, apart from live signals (there are none)
    scores = read(full, "select * from marts.llm_scores where subject = 'all'")
    assert set(scores["basis"]) == {"backfill"}
    scores = scores.set_index("metric")
    assert scores.loc["directional_accuracy", "n_signals"] == len(realised) == 3 * 21
    hits = (realised["fwd_return"] > 0).mean()  # every answer is "up"
    assert scores.loc["directional_accuracy", "value"] == pytest.approx(hits)
    assert scores.loc["always_up_accuracy", "value"] == pytest.approx(hits)
    mse = ((realised["expected_return"] - realised["fwd_return"]) ** 2).mean() / (realised["fwd_return"] ** 2).mean()
    assert scores.loc["mse_ratio", "value"] == pytest.approx(mse)
    # every forecaster scored on the same rows, beside the LLM source (marts.llm_scores, the tearsheet's panel)
    beside = read(full, "select * from marts.llm_scores where source = 'time_series'")
    forecasters = set(read(full, "select distinct model from marts.forecasts where horizon = 21")["model"])
    assert set(beside["subject"]) == forecasters and (beside["n_signals"] == 3 * 21).all()
    page = (full.parent / "reports" / "tearsheet.html").read_text()
    assert "The LLM source beside the time-series models" in page


def test_the_llm_source_drives_the_governed_book_on_the_routed_sessions_and_has_its_own_book(full):
    """llm_fallback=always with backfilled signals (tests/e2e/background.py: LLM_ON): the 42 sessions with
    LLM signals are routed, each a row of the audit trail where it starts, and the LLM's own book is sized
    from its signals alone."""
    from dagster_pmx.resources import PmxSettings
    from python_models.portfolio.sizing import kelly_book

    llm = read(full, "select ticker, date, expected_return, confidence from ml.llm_signals where valid")
    dates = sorted(set(llm["date"]))
    routing = read(full, "select * from marts.governance_decisions where model = 'llm' order by decision_date")
    assert list(routing["action"]) == ["route"] and routing["decision_date"].iloc[0] == dates[0]
    assert "llm_fallback=always" in routing["thresholds"].iloc[0] and "3 valid LLM signals" in routing["reason"].iloc[0]
    signals = read(full, "select * from marts.signals where model like 'llm:%' order by ticker, date")
    assert len(signals) == len(llm) and set(signals["date"]) == set(dates) and (signals["model"] == "llm:good").all()
    both = signals.merge(llm, on=["ticker", "date"], suffixes=("", "_llm"))
    assert_allclose(both["expected_return"], both["expected_return_llm"])
    assert_allclose(both["confidence"], both["confidence_llm"])
    assert both["tradable"].all() and both["conf_probability"].isna().all()
    # the scale the book sizes a routed signal with is the random walk's forecast spread at the same close
    rw = read(
        full,
        "select ticker, asof_date as date, y_std from marts.forecasts where model = 'random_walk' and horizon = 21",
    )
    scaled = signals.merge(rw, on=["ticker", "date"])
    assert len(scaled) == len(signals) and np.allclose(scaled["forecast_std"], scaled["y_std"], rtol=1e-12)
    # before the routed sessions the signals are governance's own
    assert not read(full, f"select * from marts.signals where date < '{dates[0]}' and model like 'llm:%'").shape[0]
    # the LLM's own book: the per-asset Kelly book of its signals, sized with the random walk's spread
    book = read(full, "select date, ticker, weight, sleeve from marts.allocations where strategy = 'llm_backfill'")
    grid = read(full, f"select distinct date from marts.signals where date >= '{dates[0]}'")["date"]
    assert set(book["date"]) == set(grid)
    own = llm.merge(rw, on=["ticker", "date"]).rename(columns={"y_std": "forecast_std"}).assign(strategy="llm_backfill")
    settings = PmxSettings(**SLICE)
    expected = kelly_book(own, settings.kelly_fraction, settings.position_cap, settings.max_gross)
    expected = expected[expected["weight"] != 0].sort_values(["date", "ticker"]).reset_index(drop=True)
    got = book[book["weight"] != 0].sort_values(["date", "ticker"]).reset_index(drop=True)
    assert_allclose(got["weight"], expected["weight"], rtol=1e-12)
    assert list(got["ticker"]) == list(expected["ticker"])
    summary = read(full, "select * from marts.backtest_summary where strategy = 'llm_backfill'")
    assert len(summary) == 1 and np.isfinite(summary["sharpe"].iloc[0])
    assert summary["start_date"].iloc[0] == dates[0]  # valued from its first decision, not from the others'


def test_the_design_targets_stress_and_regime_values_are_the_dbt_periods_aggregates(full):
    # Python bootstraps the daily returns for the intervals; its point values must be what dbt's
    # marts.backtest_periods says of the same windows and regimes (windows of 10 sessions or more, regimes of 21)
    targets = read(full, "select metric, subject, value from marts.design_targets").set_index(["metric", "subject"])
    periods = read(full, "select * from marts.backtest_periods where breakdown in ('stress', 'regime')")
    stress = periods[(periods["breakdown"] == "stress") & (periods["sessions"] >= 10)]
    regime = periods[(periods["breakdown"] == "regime") & (periods["sessions"] >= 21)]
    checked = 0
    for (metric, subject), value in targets["value"].items():
        if metric == "stress_max_drawdown":
            expected = -stress.loc[stress["strategy"] == subject, "max_drawdown"].min()
        elif metric == "worst_regime_sharpe":
            expected = regime.loc[regime["strategy"] == subject, "sharpe"].min()
        else:
            continue
        assert value == pytest.approx(expected, rel=1e-9, abs=1e-12), (metric, subject)
        checked += 1
    assert checked > 0
