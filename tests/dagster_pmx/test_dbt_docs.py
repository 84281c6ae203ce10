"""dbt's documentation site shows every mart of the warehouse with its columns and lineage."""

import json

from dagster_pmx.definitions import defs
from dagster_pmx.defs.transform.assets import MANIFEST
from dagster_pmx.defs.transform.docs import build_docs
from dagster_pmx.lake import Lake

#: The analyst-facing contract of the design: at least these.
CONTRACT = {
    *("prices", "features", "targets", "forecasts", "model_scores", "signals", "allocations"),
    *("backtest_daily", "backtest_summary"),
}


def _marts_of_the_code_location() -> set[str]:
    graph = defs.resolve_asset_graph()
    return {key.path[1] for key in graph.get_all_asset_keys() if key.path[0] == "marts"}


def _documented_marts(manifest: dict) -> dict[str, dict]:
    """Every table of schema marts in a dbt manifest (models and sources) and its documented columns."""
    tables = {s["name"]: s["columns"] for s in manifest["sources"].values() if s["schema"] == "marts"}
    for node in manifest["nodes"].values():
        if node["resource_type"] == "model" and node["schema"] == "marts":
            tables[node["name"]] = node["columns"]
    return tables


def test_every_mart_is_in_the_dbt_project_with_documented_columns():
    marts = _marts_of_the_code_location()
    assert CONTRACT <= marts and len(marts) >= 24
    documented = _documented_marts(json.loads(MANIFEST.read_text()))
    assert marts <= set(documented), f"marts dbt does not know: {sorted(marts - set(documented))}"
    for name, columns in documented.items():
        assert columns and all(c["description"] for c in columns.values()), name


def test_the_docs_site_builds_before_any_run_without_creating_a_warehouse(tmp_path):
    warehouse = tmp_path / "none" / "pmx.ducklake"
    page = build_docs(tmp_path / "docs", lake=Lake.at(warehouse), quiet=True)
    assert not warehouse.exists()
    manifest = json.loads((page.parent / "manifest.json").read_text())
    catalog = json.loads((page.parent / "catalog.json").read_text())
    assert not catalog["nodes"] and not catalog["sources"]  # nothing to describe yet
    documented = _documented_marts(manifest)
    assert _marts_of_the_code_location() <= set(documented)
    # lineage: a dbt mart on a table Python writes
    periods = manifest["nodes"]["model.pmx.backtest_periods"]["depends_on"]["nodes"]
    assert "source.pmx.marts.backtest_daily" in periods
    # one self-contained page holds all of it
    html = page.read_text()
    assert page.name == "static_index.html"
    assert all(f'"source.pmx.marts.{name}"' in html or f'"model.pmx.{name}"' in html for name in documented)
