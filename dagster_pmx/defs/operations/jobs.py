"""Jobs and schedules: the full build, a daily refresh after the US close and a weekly retrain."""

import dagster as dg
import pandas as pd

from dagster_pmx.defs.operations.calendar import EXCHANGE_TZ, is_session

#: Research assets: rebuilt by the full build and the weekly retrain, not every evening.
RESEARCH = (
    dg.AssetSelection.groups("backtest", "risk", "validation")
    | dg.AssetSelection.assets(["marts", "model_scores"])
    | dg.AssetSelection.assets(["marts", "paper_tracking"])
)


#: Assets that extend their stored history in the daily refresh (see defs.refresh.IncrementalRun).
EXTENDED = ("governance", "dbt_signals", "allocations")


def forecast_mode(mode: str) -> dict:
    """Run config that sets the forecasting assets' mode (see forecasting.assets.ForecastRun). In
    ``incremental`` mode (the daily refresh) governance and allocations also extend their stored history
    (defs.refresh.IncrementalRun), the dbt tests of marts.forecasts read its recent origins only, and the
    feature build leaves out the dbt tests that marts.features repeats."""
    ops = {
        op: {"config": {"mode": mode}}
        for op in ("base_forecasts", "ml__regime_probabilities", "ml__class_probabilities", "ensemble")
    }
    if mode == "incremental":
        ops.update({op: {"config": {"incremental": True}} for op in EXTENDED})
        ops["dbt_features"] = {"config": {"repeated_tests": False}}
    return {"ops": ops}


full_build_job = dg.define_asset_job(
    "full_build",
    selection=dg.AssetSelection.all(),
    description="Everything from scratch: ingest, features and targets, the whole walk-forward history of every "
    "forecaster (storing each model's last fit), ensembles, governance, signals, allocations, paper orders, "
    "backtests, validation and the tearsheet. What `make run` runs.",
)

daily_refresh_job = dg.define_asset_job(
    "daily_refresh",
    selection=dg.AssetSelection.all() - RESEARCH,
    config=forecast_mode("incremental"),
    description="After the close: ingest the new session, extend the features (incremental dbt models), forecast "
    "only the new sessions with the current fits (ml.model_fits), extend the ensembles, governance (resuming its "
    "stops, promoted model and review calendar) and the allocations (resuming the books and the drawdown control), "
    "test marts.forecasts' recent origins, rebuild marts.signals, and book the paper book's fills and orders. The "
    "dbt tests of the intermediate feature models are left to the other jobs (marts.features repeats each of "
    "them). Backtests and validation wait for the weekly retrain.",
)

refresh_tickers_job = dg.define_asset_job(
    "refresh_tickers",
    selection=dg.AssetSelection.assets(["raw", "prices"], ["raw", "quarantine"], ["raw", "ingest_report"]).downstream(),
    description="Refresh or backfill chosen tickers, then rebuild everything downstream. In the Launchpad set "
    "ops.raw_prices.config: tickers (e.g. [AAPL]), and start_date / end_date for a backfill of that range; "
    "stored rows of other tickers are kept.",
)

weekly_retrain_job = dg.define_asset_job(
    "weekly_retrain",
    selection=dg.AssetSelection.groups("forecasting").downstream(),
    config=forecast_mode("retrain"),
    description="Refit every forecaster on the latest rolling window (purge and embargo kept), store the new fit "
    "versions in ml.model_fits, forecast any session not yet forecast with them, and rebuild everything downstream: "
    "ensembles, governance, signals, allocations, paper book, backtests, validation and the tearsheet.",
)


@dg.schedule(
    name="daily_refresh_after_close",
    job=daily_refresh_job,
    cron_schedule="30 18 * * 1-5",
    execution_timezone=EXCHANGE_TZ,
    description="Weekdays 18:30 New York, after the close; skipped on NYSE holidays.",
)
def daily_refresh_schedule(context: dg.ScheduleEvaluationContext):
    day = pd.Timestamp(context.scheduled_execution_time).tz_convert(EXCHANGE_TZ).normalize().tz_localize(None)
    if not is_session(day):
        return dg.SkipReason(f"{day.date()} is not an NYSE session: nothing to refresh")
    return dg.RunRequest(run_key=f"daily_refresh:{day.date()}", tags={"pmx/session": str(day.date())})


weekly_retrain_schedule = dg.ScheduleDefinition(
    name="weekly_retrain_saturday",
    job=weekly_retrain_job,
    cron_schedule="0 6 * * 6",
    execution_timezone="America/New_York",
    description="Saturdays 06:00 New York.",
)
