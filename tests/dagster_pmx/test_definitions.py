"""Tier 1: the code location loads and is complete."""

from pathlib import Path

import dagster as dg

from dagster_pmx.definitions import defs

MARTS = [
    "prices",
    "features",
    "targets",
    "forecasts",
    "model_scores",
    "signals",
    "allocations",
    "backtest_daily",
    "backtest_summary",
    "backtest_attribution",
    "drawdown_control",
    "capacity",
    "risk_var",
    "var_backtests",
    "es_control",
    "stress_tests",
    "stress_monte_carlo",
]


def test_definitions_load_with_every_mart():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    for mart in MARTS:
        assert f"marts/{mart}" in keys
    assert {"raw/prices", "raw/macro", "ml/base_forecasts", "ml/ensemble_forecasts", "ml/safe_sleeve"} <= keys
    assert "reports/tearsheet" in keys


def test_every_asset_has_a_description_and_group():
    graph = defs.resolve_asset_graph()
    for key in graph.materializable_asset_keys:
        node = graph.get(key)
        assert node.description and len(node.description) > 20, key
        assert node.group_name and node.group_name != "default", key


def test_gates_are_blocking_and_cover_prices_signals_allocations():
    graph = defs.resolve_asset_graph()
    gated = {}
    for check_key in graph.asset_check_keys:
        gated.setdefault(check_key.asset_key.to_user_string(), []).append(check_key.name)
    assert "raw_prices_expectations" in gated["raw/prices"]
    assert "signals_expectations" in gated["marts/signals"]
    assert "allocations_expectations" in gated["marts/allocations"]
    assert "allocations_respect_the_drawdown_control" in gated["marts/allocations"]
    assert "allocations_respect_the_es_limit" in gated["marts/allocations"]
    # dbt tests appear as checks on the dbt models too (the column rules: one test per model).
    assert {"column_rules_features_", "dbt_utils_unique_combination_of_columns_features_ticker__date"} <= set(
        gated["marts/features"]
    )
    checks = [c for c in defs.asset_checks]
    blocking = {spec.name: spec.blocking for c in checks for spec in c.check_specs}
    assert (
        blocking["raw_prices_expectations"]
        and blocking["allocations_expectations"]
        and blocking["signals_expectations"]
        and blocking["allocations_respect_the_drawdown_control"]
        and blocking["allocations_respect_the_es_limit"]
    )


def test_jobs_schedules_and_in_process_executor():
    assert {j.name for j in defs.jobs} >= {"daily_refresh", "weekly_retrain"}
    schedules = {s.name: s for s in defs.schedules}
    assert schedules["daily_refresh_after_close"].cron_schedule == "30 18 * * 1-5"
    assert schedules["weekly_retrain_saturday"].cron_schedule == "0 6 * * 6"
    assert defs.executor is dg.in_process_executor
    retrain = defs.resolve_job_def("weekly_retrain")
    selected = {k.to_user_string() for k in retrain.asset_layer.selected_asset_keys}
    assert "ml/base_forecasts" in selected and "marts/backtest_summary" in selected
    assert "raw/prices" not in selected


def test_no_feature_or_forecast_reads_the_future():
    graph = defs.resolve_asset_graph()
    future = {dg.AssetKey(["intermediate", "int_forward_returns"]), dg.AssetKey(["marts", "targets"])}
    for key in (["marts", "features"], ["ml", "base_forecasts"], ["intermediate", "int_features_smoothed"]):
        upstream = dg.AssetSelection.assets(key).upstream().resolve(graph)
        assert not upstream & future, key
    # The ensemble does read realised values, to weight models by their past errors.
    assert (
        dg.AssetKey(["intermediate", "int_forward_returns"])
        in graph.get(dg.AssetKey(["ml", "ensemble_forecasts"])).parent_keys
    )


def test_forecast_models_accepted_by_dbt_are_the_registry():
    import yaml

    from python_models.forecasters.ensemble import VARIANTS
    from python_models.forecasters.registry import MODELS

    marts = yaml.safe_load((Path(__file__).resolve().parents[2] / "dbt_project/models/marts/_marts.yml").read_text())
    forecasts = next(m for m in marts["models"] if m["name"] == "forecasts")
    column = next(c for c in forecasts["columns"] if c["name"] == "model")
    accepted = column["config"]["meta"]["accepted_values"]  # checked by the model's column_rules test
    assert set(accepted) == set(MODELS) | set(VARIANTS.values())


def test_every_asset_and_check_says_what_it_is():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.is_external:
            continue
        assert node.description and len(node.description) > 30, key
        assert node.group_name and node.group_name != "default", key
        assert node.kinds, key
    # the Python checks (dbt's generic tests are named for what they test)
    specs = [spec for checks in defs.asset_checks for spec in checks.check_specs]
    assert len(specs) >= 10
    for spec in specs:
        assert spec.description and len(spec.description) > 30, spec.name


def test_the_daily_refresh_leaves_research_to_the_weekly_retrain():
    daily = {k.to_user_string() for k in defs.resolve_job_def("daily_refresh").asset_layer.selected_asset_keys}
    assert {"raw/prices", "ml/base_forecasts", "marts/signals", "marts/allocations", "marts/paper_orders"} <= daily
    assert not daily & {"marts/backtest_daily", "marts/model_leaderboard", "reports/tearsheet"}
    full = {k.to_user_string() for k in defs.resolve_job_def("full_build").asset_layer.selected_asset_keys}
    assert daily < full and "reports/tearsheet" in full


def test_the_dbt_tests_the_daily_refresh_leaves_out_are_repeated_on_marts_features():
    import json

    from dagster_pmx.defs.transform.assets import MANIFEST, REPEATED_ON_MARTS

    manifest = json.loads(MANIFEST.read_text())

    def signature(node):  # what a test checks, whatever model it is attached to
        meta = node.get("test_metadata", {})
        kwargs = {k: v for k, v in meta.get("kwargs", {}).items() if k not in ("model", "column_name")}
        return meta.get("name"), node.get("column_name"), json.dumps(kwargs, sort_keys=True)

    tests = [n for n in manifest["nodes"].values() if n["resource_type"] == "test"]
    on_features = {signature(n) for n in tests if n["depends_on"]["nodes"] == ["model.pmx.features"]}
    left_out = [n for n in tests if n["original_file_path"] == REPEATED_ON_MARTS]
    assert len(left_out) >= 10
    assert all(n["depends_on"]["nodes"][0].startswith("model.pmx.int_features_") for n in left_out)
    missing = [n["name"] for n in left_out if signature(n) not in on_features]
    assert not missing, f"left out of the daily refresh but not repeated on marts.features: {missing}"

    # the column rules (not-null, accepted values, ranges) their column_rules tests check: the same on
    # marts.features, column for column
    def rules(node):
        kinds = ("not_null", "accepted_values", "range")
        declared = {
            c: {k: m["config"]["meta"][k] for k in kinds if k in m["config"]["meta"]}
            for c, m in node["columns"].items()
        }
        return {c: r for c, r in declared.items() if r}

    features = rules(manifest["nodes"]["model.pmx.features"])
    checked = [m for m in manifest["nodes"].values() if (m.get("patch_path") or "").endswith(REPEATED_ON_MARTS)]
    declared = {c: r for m in checked for c, r in rules(m).items()}
    assert len(declared) >= 50 and sum("not_null" in r for r in declared.values()) >= 2
    assert {c: features.get(c) for c in declared} == declared
    # only the daily refresh leaves them out
    daily = defs.resolve_job_def("daily_refresh").run_config["ops"]
    assert daily["dbt_features"]["config"] == {"repeated_tests": False}
    for job in ("full_build", "weekly_retrain"):
        assert "dbt_features" not in (defs.resolve_job_def(job).run_config or {}).get("ops", {})


def test_loading_the_code_location_tunes_the_garbage_collector():
    import gc

    from dagster_pmx.process import RUN_GC_THRESHOLD

    assert gc.get_threshold()[0] >= RUN_GC_THRESHOLD
    assert gc.get_freeze_count() > 0  # the imports' objects are out of the collector's sight
