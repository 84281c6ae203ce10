"""Jobs and schedules: a daily refresh after the US close and a weekly retrain."""

import dagster as dg
import pandas as pd

from dagster_pmx.defs.operations.calendar import EXCHANGE_TZ, is_session

daily_refresh_job = dg.define_asset_job(
    "daily_refresh",
    selection=dg.AssetSelection.all(),
    description="Ingest, rebuild features and targets, run the walk-forward forecasters, ensemble, "
    "signals, allocations and backtest.",
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
    description="Refit every forecaster over the walk-forward folds and rebuild everything downstream.",
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
