"""dbt models as Dagster assets, in three parts around the Python assets.

``dbt_features`` builds staging, returns, ``marts.prices``, ``marts.features`` and
``marts.targets``; ``dbt_signals`` (models tagged ``post_forecast``) builds
``marts.forecasts`` (a view over the forecast tables and the realised returns) and ``marts.signals``
from the forecasters' output; ``dbt_backtest`` (models
tagged ``backtest``, which are ``post_forecast`` too) builds ``marts.backtest_periods`` from the
backtest's daily returns. Each runs ``dbt build``, so dbt's tests run with the models and show as
asset checks. The tables Python writes are dbt sources (``dbt_sources.py``), mapped to the keys of
the Python assets that write them.

The per-(ticker, date) models are incremental (``dbt_project/macros/incremental.sql``):
a run recomputes only what changed in ``raw.prices`` since the last one. Run config
``full_refresh: true`` rebuilds them from scratch, which is needed after rows are deleted
from ``raw.prices`` or a model's SQL changes.
"""

import json
import os
import shutil
from collections.abc import Mapping
from typing import Any

import dagster as dg
import pandas as pd
import yaml
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from dagster_pmx.defs.refresh import IncrementalRun
from dagster_pmx.defs.transform.project import dbt_env, dbt_project, ensure_manifest
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.forecasters.base import DEFAULT_HORIZONS


class DbtBuildConfig(dg.Config):
    full_refresh: bool = False
    """Rebuild incremental models from scratch (after deleting raw rows or changing a model's SQL)."""
    repeated_tests: bool = True
    """Run the intermediate feature models' tests, which marts.features repeats column for column (so a
    failure names the model that caused it). The daily refresh turns them off: 28 dbt tests fewer."""


class PmxTranslator(DagsterDbtTranslator):
    """Asset keys are ``[schema, name]`` (``marts/features``), sources ``[source, table]``."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        schema = dbt_resource_props.get("config", {}).get("schema") or "main"
        return dg.AssetKey([schema, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        tags = dbt_resource_props.get("tags", [])
        return "backtest" if "backtest" in tags else "signals" if "post_forecast" in tags else "transform"


DBT_VARS = yaml.safe_load((dbt_project.project_dir / "dbt_project.yml").read_text())["vars"]
#: The intermediate feature models' tests: each is repeated, column for column, on marts.features.
REPEATED_ON_MARTS = "models/intermediate/_int_features.yml"
TRANSLATOR = PmxTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
MANIFEST = ensure_manifest()


def _build(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: Warehouse,
    settings: PmxSettings,
    full: bool,
    exclude: tuple[str, ...] = (),
    after=None,
):
    """``dbt build`` of the asset's selection; ``after`` (a function of the build's events, which returns
    them) sees every event once dbt has finished, in this process and with the warehouse open again."""
    # profiles.yml reads the lake's catalog and data path from DBT_PMX_CATALOG / DBT_PMX_DATA_PATH; the
    # resource is their only source
    os.environ.update(dbt_env(warehouse.lake, warehouse.memory_limit))
    wanted = {
        "benchmark_ticker": settings.benchmark,
        "target_horizons": list(DEFAULT_HORIZONS),
        "signal_horizon": settings.signal_horizon,
    }
    # only the vars that differ from dbt_project.yml's: unchanged vars keep dbt's partial parsing
    # (a refresh then skips re-parsing the project, several seconds of every dbt step)
    changed = {k: v for k, v in wanted.items() if DBT_VARS.get(k) != v}
    args = ["build"] + (["--vars", json.dumps(changed)] if changed else [])
    args += ["--full-refresh"] if full or settings.full_refresh else []
    for selector in exclude:  # added to the asset definition's own --exclude (dbt takes their union)
        args += ["--exclude", selector]
    if getattr(dbt, "in_process", False):  # dbt-duckdb attaches the lake in this process
        invocation = dbt.cli(args, context=context)
        events = invocation.stream()
        yield from after(list(events)) if after else events
    else:
        with warehouse.released():  # the run's catalog cache is read afresh after the subprocess's writes
            invocation = dbt.cli(args, context=context)
            if not after:
                yield from invocation.stream()
            else:
                finished = list(invocation.stream())
        if after:
            yield from after(finished)
    # dagster-dbt gives each invocation a folder of its own under dbt_project/target (a copy of the parse,
    # 1.3 MB, and the compiled SQL), which nothing reads once the events are in the run's log: every run
    # left two or three, without bound. A failed build raised above and keeps its folder, to inspect.
    shutil.rmtree(invocation.project_dir / invocation.target_path, ignore_errors=True)  # joins an absolute path as is


@dbt_assets(
    manifest=MANIFEST,
    project=dbt_project,
    exclude="tag:post_forecast",
    name="dbt_features",
    dagster_dbt_translator=TRANSLATOR,
    pool="warehouse",
)
def dbt_features(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: Warehouse,
    settings: PmxSettings,
    config: DbtBuildConfig,
):
    """Staging views, daily returns, marts.prices, marts.features and marts.targets (incremental)."""
    # the tests defined in that file, not the models it documents (path: alone would match those too)
    repeated = () if config.repeated_tests else (f"path:{REPEATED_ON_MARTS},resource_type:test",)
    yield from _build(context, dbt, warehouse, settings, config.full_refresh, repeated)


@dbt_assets(
    manifest=MANIFEST,
    project=dbt_project,
    select="tag:post_forecast",
    exclude="tag:backtest",
    name="dbt_signals",
    dagster_dbt_translator=TRANSLATOR,
    pool="warehouse",
)
def dbt_signals(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: Warehouse,
    settings: PmxSettings,
    config: IncrementalRun,
):
    """marts.forecasts (all models with realised values: a view) and marts.signals (the governed signal). The
    daily refresh (``incremental: true``) tests only marts.forecasts' recent origins, the rows it changed;
    every other build tests every row."""
    yield from _build(context, dbt, warehouse, settings, not config.incremental)


BACKTEST_PERIODS = dg.AssetKey(["marts", "backtest_periods"])


@dbt_assets(
    manifest=MANIFEST,
    project=dbt_project,
    select="tag:backtest",
    name="dbt_backtest",
    dagster_dbt_translator=TRANSLATOR,
    pool="warehouse",
)
def dbt_backtest(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse, settings: PmxSettings):
    """marts.backtest_periods: every strategy's daily net returns by year, market regime and stress window."""

    def stress_returns(events):
        periods = context.assets_def.get_output_name_for_asset_key(BACKTEST_PERIODS)
        for event in events:
            if isinstance(event, dg.Output) and event.output_name == periods:
                event = event.with_metadata({**event.metadata, "stress_returns": _stress_returns(warehouse)})
            yield event

    yield from _build(context, dbt, warehouse, settings, False, after=stress_returns)


def _stress_returns(warehouse: Warehouse) -> dg.MetadataValue:
    """Each strategy's compounded return in each stress window, as a table for the asset's page."""
    rows = warehouse.query(
        "select strategy, period, total_return from marts.backtest_periods where breakdown = 'stress'"
    )
    table = rows.pivot(index="strategy", columns="period", values="total_return").round(3)
    return dg.MetadataValue.md(pd.DataFrame(table).reset_index().to_markdown(index=False))
