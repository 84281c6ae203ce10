"""The pmx code location: assembles assets, checks, jobs, schedules and resources."""

from __future__ import annotations

import dagster as dg

from dagster_pmx import dead_runs
from dagster_pmx.config import load_config
from dagster_pmx.defs.backtest import assets as backtest_assets
from dagster_pmx.defs.backtest import reports as backtest_reports
from dagster_pmx.defs.classification import assets as classification_assets
from dagster_pmx.defs.forecasting import assets as forecasting_assets
from dagster_pmx.defs.governance import assets as governance_assets
from dagster_pmx.defs.governance import checks as governance_checks
from dagster_pmx.defs.governance import sensors as governance_sensors
from dagster_pmx.defs.ingest import assets as ingest_assets
from dagster_pmx.defs.ingest import checks as ingest_checks
from dagster_pmx.defs.llm import assets as llm_assets
from dagster_pmx.defs.operations import checks as operations_checks
from dagster_pmx.defs.operations import jobs, maintenance, sensors
from dagster_pmx.defs.portfolio import assets as portfolio_assets
from dagster_pmx.defs.portfolio import checks as portfolio_checks
from dagster_pmx.defs.risk import assets as risk_assets
from dagster_pmx.defs.trading import assets as trading_assets
from dagster_pmx.defs.trading import checks as trading_checks
from dagster_pmx.defs.transform import assets as transform_assets
from dagster_pmx.defs.transform.dbt_cli import DBT_GLOBAL_FLAGS, PmxDbtCli
from dagster_pmx.defs.transform.project import DBT_EXECUTABLE, dbt_project
from dagster_pmx.defs.validation import assets as validation_assets
from dagster_pmx.process import tune_garbage_collector
from dagster_pmx.resources import Warehouse


def default_resources() -> dict:
    """Resources configured by ``pmx.toml`` (or ``$PMX_CONFIG``) and the ``PMX_*`` variables that override it
    (:mod:`dagster_pmx.config`): the warehouse path, the settings and whether dbt runs in this process."""
    config = load_config()
    return {
        "warehouse": Warehouse(
            path=config.warehouse,
            catalog=config.values["catalog"],
            data_path=config.values["data_path"],
            memory_limit=config.duckdb_memory,
        ),
        "settings": config.pmx_settings(),
        "dbt": PmxDbtCli(
            project_dir=dbt_project,
            dbt_executable=DBT_EXECUTABLE,
            global_config_flags=DBT_GLOBAL_FLAGS,
            in_process=config.dbt_in_process,
        ),
    }


def build_definitions(resources: dict | None = None) -> dg.Definitions:
    """The code location; tests pass their own resources (a temporary warehouse, a small universe)."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules(
            [
                ingest_assets,
                transform_assets,
                forecasting_assets,
                classification_assets,
                governance_assets,
                portfolio_assets,
                backtest_assets,
                backtest_reports,
                risk_assets,
                validation_assets,
                trading_assets,
                llm_assets,
            ]
        ),
        asset_checks=dg.load_asset_checks_from_modules(
            [ingest_checks, portfolio_checks, governance_checks, trading_checks, operations_checks]
        ),
        jobs=[
            jobs.full_build_job,
            jobs.daily_refresh_job,
            jobs.weekly_retrain_job,
            jobs.refresh_tickers_job,
            maintenance.warehouse_maintenance_job,
        ],
        schedules=[
            jobs.daily_refresh_schedule,
            jobs.weekly_retrain_schedule,
            maintenance.warehouse_maintenance_schedule,
        ],
        sensors=[sensors.alert_on_run_failure, dead_runs.dead_runs_sensor, governance_sensors.decay_retrain_sensor],
        resources={**default_resources(), **(resources or {})},
        # One step at a time in the run's own process: DuckDB admits a single writing process.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
# the process that loads the code location runs its jobs: everything it imported stays for its lifetime
tune_garbage_collector()
