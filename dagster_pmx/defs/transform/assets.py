"""dbt models as Dagster assets, in two parts around the Python forecasters.

``dbt_features`` builds staging, returns, ``marts.prices``, ``marts.features`` and
``marts.targets``; ``dbt_signals`` (models tagged ``post_forecast``) builds
``marts.forecasts`` and ``marts.signals`` from the forecasters' output. Each runs
``dbt build``, so dbt's tests run with the models and show as asset checks.
"""

import json
import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from dagster_pmx.defs.transform.project import dbt_env, dbt_project, ensure_manifest
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.walk_forward import DEFAULT_HORIZONS


class PmxTranslator(DagsterDbtTranslator):
    """Asset keys are ``[schema, name]`` (``marts/features``), sources ``[source, table]``."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        schema = dbt_resource_props.get("config", {}).get("schema") or "main"
        return dg.AssetKey([schema, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "signals" if "post_forecast" in dbt_resource_props.get("tags", []) else "transform"


TRANSLATOR = PmxTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
MANIFEST = ensure_manifest()


def _build(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse, settings: PmxSettings):
    # profiles.yml reads the warehouse path from PMX_WAREHOUSE; the resource is its only source.
    os.environ.update(dbt_env(warehouse.abs_path))
    dbt_vars = json.dumps({"benchmark_ticker": settings.benchmark, "target_horizons": list(DEFAULT_HORIZONS)})
    yield from dbt.cli(["build", "--vars", dbt_vars], context=context).stream()


@dbt_assets(
    manifest=MANIFEST,
    project=dbt_project,
    exclude="tag:post_forecast",
    name="dbt_features",
    dagster_dbt_translator=TRANSLATOR,
    pool="warehouse",
)
def dbt_features(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse, settings: PmxSettings):
    """Staging views, daily returns, marts.prices, marts.features and marts.targets."""
    yield from _build(context, dbt, warehouse, settings)


@dbt_assets(
    manifest=MANIFEST,
    project=dbt_project,
    select="tag:post_forecast",
    name="dbt_signals",
    dagster_dbt_translator=TRANSLATOR,
    pool="warehouse",
)
def dbt_signals(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse, settings: PmxSettings):
    """marts.forecasts (all models with realised values) and marts.signals (ensemble)."""
    yield from _build(context, dbt, warehouse, settings)
