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
from python_models.walk_forward import DEFAULT_HORIZONS


class DbtBuildConfig(dg.Config):
    full_refresh: bool = False
    """Rebuild incremental models from scratch (after deleting raw rows or changing a model's SQL)."""


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
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse, settings: PmxSettings, full: bool
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
    yield from _build(context, dbt, warehouse, settings, config.full_refresh)


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


def repeated_test_checks() -> list[dg.AssetCheckKey]:
    """The asset checks of the dbt tests in :data:`REPEATED_ON_MARTS`. The daily refresh leaves them out
    (the marts' copies run; 71 dbt nodes and check events fewer); every other job runs them, so a failure
    still points at the intermediate model that caused it."""
    manifest = json.loads(MANIFEST.read_text())
    names = {
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "test" and node["original_file_path"] == REPEATED_ON_MARTS
    }
    return [spec.key for spec in dbt_features.check_specs if spec.key.name in names]
