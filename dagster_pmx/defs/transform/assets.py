"""dbt models as Dagster assets, in two parts around the Python forecasters.

``dbt_features`` builds staging, returns, ``marts.prices``, ``marts.features`` and
``marts.targets``; ``dbt_signals`` (models tagged ``post_forecast``) builds
``marts.forecasts`` and ``marts.signals`` from the forecasters' output. Each runs
``dbt build``, so dbt's tests run with the models and show as asset checks.

The per-(ticker, date) models are incremental (``dbt_project/macros/incremental.sql``):
a run recomputes only what changed in ``raw.prices`` since the last one. Run config
``full_refresh: true`` rebuilds them from scratch, which is needed after rows are deleted
from ``raw.prices`` or a model's SQL changes.
"""

import json
import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
import yaml
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from dagster_pmx.defs.refresh import IncrementalRun
from dagster_pmx.defs.transform.project import dbt_env, dbt_project, ensure_manifest
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.evaluation.walk_forward import DEFAULT_HORIZONS


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
        return "signals" if "post_forecast" in dbt_resource_props.get("tags", []) else "transform"


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
):
    # profiles.yml reads the warehouse path from PMX_WAREHOUSE; the resource is its only source.
    os.environ.update(dbt_env(warehouse.abs_path))
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
    if getattr(dbt, "in_process", False):  # dbt-duckdb shares this process's open warehouse
        yield from dbt.cli(args, context=context).stream()
        return
    with warehouse.released():  # a dbt subprocess must open the file itself
        yield from dbt.cli(args, context=context).stream()


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
    """marts.forecasts (all models with realised values) and marts.signals (the governed signal). The daily
    refresh (``incremental: true``) extends marts.forecasts with the recent origins; otherwise it is rebuilt."""
    yield from _build(context, dbt, warehouse, settings, not config.incremental)
