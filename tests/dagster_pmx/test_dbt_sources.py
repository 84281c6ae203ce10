"""The tables Python writes are dbt sources, generated from the Python assets and mapped back to them."""

import json

import dagster as dg

from dagster_pmx.definitions import defs
from dagster_pmx.defs.transform.assets import MANIFEST, TRANSLATOR
from dagster_pmx.defs.transform.dbt_sources import (
    SIDE_TABLES,
    SOURCES_YML,
    python_assets,
    python_tables,
    render,
)


def _python_table_keys() -> set[dg.AssetKey]:
    graph = defs.resolve_asset_graph()
    return {
        key
        for key in graph.materializable_asset_keys
        if "duckdb" in graph.get(key).kinds and "dbt" not in graph.get(key).kinds
    }


def test_the_committed_sources_are_what_the_generator_writes_now():
    assert SOURCES_YML.read_text(encoding="utf-8") == render(python_tables()), (
        f"{SOURCES_YML} is out of date: run `python -m dagster_pmx.defs.transform.dbt_sources` and commit it"
    )


def test_the_generator_reads_the_python_assets_of_the_code_location():
    generated = {spec.key for spec in python_assets() if "duckdb" in spec.kinds and "dbt" not in spec.kinds}
    assert generated == _python_table_keys()


def test_every_python_table_is_a_documented_source_mapped_to_the_asset_that_writes_it():
    manifest = json.loads(MANIFEST.read_text())
    sources = {TRANSLATOR.get_asset_key(props): props for props in manifest["sources"].values()}
    python = _python_table_keys()
    missing = python - set(sources)
    assert not missing, f"Python tables without a dbt source: {sorted(k.to_user_string() for k in missing)}"
    # the rest are tables Python writes beside an asset's own (no asset of their own)
    side = {dg.AssetKey(name.split(".")) for name in SIDE_TABLES}
    audit = {k for k in sources if k.path[-1].endswith("_audit")}
    assert set(sources) - python == side | audit
    graph = defs.resolve_asset_graph()
    # a source is never also a dbt model (one writer per table), and no asset reads one that is not a table
    models = {
        TRANSLATOR.get_asset_key(n) for n in manifest["nodes"].values() if n["resource_type"] in ("model", "seed")
    }
    assert not models & set(sources)
    for key in graph.get_all_asset_keys():
        assert not graph.get(key).is_external, f"{key.to_user_string()} is read but written by no asset"
    for key, props in sources.items():
        assert props["schema"] == props["source_name"] == key.path[0]
        assert len(props["description"]) > 30, key
        assert props["columns"], key
        for name, column in props["columns"].items():
            assert column["description"], f"{key.to_user_string()}.{name} has no description"


def test_python_tables_read_by_dbt_models_are_upstream_of_them():
    graph = defs.resolve_asset_graph()
    periods = graph.get(dg.AssetKey(["marts", "backtest_periods"]))
    upstream = {dg.AssetKey(["marts", "backtest_daily"]), dg.AssetKey(["ml", "regime_probabilities"])}
    assert periods.parent_keys == upstream
    assert "dbt" in periods.kinds and periods.group_name == "backtest"
    assert dg.AssetKey(["raw", "prices"]) in graph.get(dg.AssetKey(["staging", "stg_prices"])).parent_keys


def test_every_python_table_declares_its_columns_on_its_asset():
    """Column docs have one home, the asset's column schema (defs/schemas.py): the generator holds none."""
    for spec in python_assets():
        if spec.key.path[0] in ("ml", "marts", "raw") and spec.key.path[-1] != "tearsheet":
            assert "dagster/column_schema" in spec.metadata, spec.key.to_user_string()
