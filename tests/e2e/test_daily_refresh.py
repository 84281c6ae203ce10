"""The daily refresh and the weekly retrain on a warehouse built to an earlier day.

The daily refresh forecasts only the new sessions, with the stored fits; while they lie in the
fold those fits were made for, its rows are the full build's. Re-running a day changes nothing.
The weekly retrain stores new fit versions, and the forecasts after it name them.
"""

import dagster as dg
import pandas as pd
from numpy.testing import assert_allclose

from dagster_pmx.definitions import build_definitions
from dagster_pmx.defs.transform.project import DBT_DIR
from dagster_pmx.lake import Lake
from dagster_pmx.resources import PmxSettings, Warehouse
from tests.e2e.helpers import CUT, SLICE, dbt_run, read, without_stamps

REFRESHED = "2011-07-15"  # ten sessions after the truncated build's last one
KEY = ["model", "ticker", "asof_date", "horizon"]


def run(path, job: str, **overrides) -> dg.ExecuteInProcessResult:
    settings = PmxSettings(**{**SLICE, **overrides})
    defs = build_definitions({"warehouse": Warehouse(path=str(path)), "settings": settings})
    result = defs.resolve_job_def(job).execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return result


def forecasts(path) -> pd.DataFrame:
    return read(path, "select * from ml.base_forecasts order by model, ticker, asof_date, horizon")


def test_the_daily_refresh_forecasts_only_new_sessions_with_the_stored_fits(truncated, full, tmp_path):
    path = tmp_path / "pmx.ducklake"
    Lake.at(truncated).copy_to(path)
    before = forecasts(path)
    fits = read(path, "select fit_id, model, ticker, train_end, fitted_by from ml.model_fits")
    assert set(fits["fitted_by"]) == {"walk_forward"} and len(fits) > 0

    result = run(path, "daily_refresh", end_date=REFRESHED)
    ran = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    assert "base_forecasts" in ran and "backtest_daily" not in ran  # research waits for the weekly retrain
    # each dbt step's invocation folder under dbt_project/target (a copy of the parse) went with the step
    assert {"dbt_features", "dbt_signals"} <= ran
    assert not list((DBT_DIR / "target").glob(f"*-{result.run_id[:7]}-*"))
    after = forecasts(path)
    old = after[after["asof_date"] <= pd.Timestamp(CUT)]
    # history untouched, except target dates that have now arrived
    pd.testing.assert_frame_equal(
        old.drop(columns="target_date").reset_index(drop=True), before.drop(columns="target_date"), check_exact=True
    )
    arrived = before["target_date"].isna() & old["target_date"].reset_index(drop=True).notna()
    assert arrived.sum() > 0
    new = after[after["asof_date"] > pd.Timestamp(CUT)]
    sessions = read(path, "select count(distinct date) n from intermediate.int_returns where date > ?", [CUT])["n"]
    assert new["asof_date"].nunique() == sessions.iloc[0] == 10  # July 4th is a holiday
    assert set(new["fit_id"]) <= set(fits["fit_id"])  # every new row names a stored fit

    # the same origins in the full build: identical wherever the full build used the same fit
    reference = forecasts(full)
    joined = new.merge(reference, on=KEY, suffixes=("", "_full"))
    same_fit = joined[joined["fit_id"] == joined["fit_id_full"]]
    assert len(same_fit) > 0.5 * len(new)
    assert_allclose(same_fit["y_pred"], same_fit["y_pred_full"], rtol=1e-9, atol=1e-12)
    assert_allclose(same_fit["y_std"], same_fit["y_std_full"], rtol=1e-9, atol=1e-12)
    # the regime probabilities of the new sessions are the full build's (their fold alone was refitted)
    regimes = "select * from ml.regime_probabilities where date <= ? order by date, regime"
    pd.testing.assert_frame_equal(
        read(path, regimes, [REFRESHED]), read(full, regimes, [REFRESHED]), check_exact=False, rtol=1e-9
    )
    # and the classifier's: the fold that holds the new sessions refitted from the rows its window reads
    probabilities = "select * from ml.class_probabilities where date <= ? order by model, ticker, date, target, horizon"
    new_probabilities = read(path, probabilities, [REFRESHED])
    assert new_probabilities["date"].max() == pd.Timestamp(REFRESHED)
    pd.testing.assert_frame_equal(
        new_probabilities, read(full, probabilities, [REFRESHED]), check_exact=False, rtol=1e-9
    )
    # marts.forecasts, extended by the refresh (its origins of the last 120 days recomputed), is what a rebuild gives
    rebuilt = tmp_path / "rebuilt.ducklake"
    Lake.at(path).copy_to(rebuilt)
    dbt_run(rebuilt, tmp_path, "--full-refresh", part="--select")
    everything = "select * from marts.forecasts order by model, ticker, asof_date, horizon"
    pd.testing.assert_frame_equal(read(path, everything), read(rebuilt, everything))
    assert read(path, "select count(*) n from marts.forecasts where y_true is not null and asof_date > ?", [CUT])[
        "n"
    ].iloc[0]  # the new origins' one-session targets arrived within the refresh
    # signals, allocations and the paper book reach the new session
    for table in ("marts.signals", "marts.allocations", "marts.paper_nav"):
        assert read(path, f"select max(date) as d from {table}")["d"].iloc[0] == pd.Timestamp(REFRESHED), table

    # re-running the day gives identical rows
    tables = [
        "ml.base_forecasts",
        "ml.regime_probabilities",
        "ml.class_probabilities",
        "ml.ensemble_weights",
        "marts.signals",
        "marts.allocations",
    ]
    snapshot = {t: without_stamps(read(path, f"select * from {t} order by all")) for t in tables}
    ledger = read(path, "select * from marts.paper_nav order by all")
    run(path, "daily_refresh", end_date=REFRESHED)
    for table, frame in snapshot.items():
        pd.testing.assert_frame_equal(without_stamps(read(path, f"select * from {table} order by all")), frame)
    pd.testing.assert_frame_equal(read(path, "select * from marts.paper_nav order by all"), ledger)


def test_the_weekly_retrain_stores_new_fit_versions_that_later_forecasts_name(truncated, tmp_path):
    path = tmp_path / "pmx.ducklake"
    Lake.at(truncated).copy_to(path)
    # the weekly retrain's forecasting step alone (test_definitions checks the job's selection)
    defs = build_definitions({"warehouse": Warehouse(path=str(path)), "settings": PmxSettings(**SLICE)})
    job = defs.resolve_job_def("weekly_retrain")
    assert job.run_config["ops"]["base_forecasts"]["config"]["mode"] == "retrain"
    step = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=[
            dg.AssetKey(["ml", "base_forecasts"]),
            dg.AssetKey(["ml", "fit_diagnostics"]),
            dg.AssetKey(["marts", "feature_importances"]),
        ],
        run_config={"ops": {"base_forecasts": job.run_config["ops"]["base_forecasts"]}},
    )
    assert step.success
    fits = read(path, "select * from ml.model_fits order by fitted_at")
    retrained = fits[fits["fitted_by"] == "retrain"]
    models = read(path, "select distinct model from ml.base_forecasts")["model"]
    assert set(retrained["model"]) == set(models)
    # each refit ends the purge and embargo (63 + 5 sessions) before the last session
    sessions = read(path, "select distinct date from intermediate.int_returns where ticker = 'AAPL' order by date")
    assert (retrained["train_end"] == sessions["date"].iloc[-1 - 68]).all()
    assert (retrained["train_start"] == sessions["date"].iloc[-68 - 500]).all()
    # the retrain's fits report their diagnostics beside the walk-forward's
    reported = read(path, "select distinct fit_id from ml.fit_diagnostics")["fit_id"]
    assert set(retrained["fit_id"]) <= set(reported)

    run(path, "daily_refresh", end_date=REFRESHED)
    new = read(path, "select distinct fit_id from ml.base_forecasts where asof_date > ?", [CUT])["fit_id"]
    assert set(new) <= set(retrained["fit_id"]) and len(new) == len(retrained)
