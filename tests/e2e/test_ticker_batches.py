"""The steps that work a batch of tickers at a time (``ticker_batch``) write the rows they write in one
batch: the single-series walk-forward (on a shared Dask client), the ensembles, the model scores,
governance (its evidence, pooled a batch at a time, and its signals) and the statistical validation."""

import dagster as dg
import pandas as pd
import pytest

from dagster_pmx.definitions import build_definitions
from dagster_pmx.lake import Lake
from dagster_pmx.resources import PmxSettings, Warehouse
from tests.e2e.background import LLM_ON
from tests.e2e.helpers import SLICE, read, without_stamps

#: The batched steps' assets (the walk-forward is a multi-asset with the feature importances).
BATCHED = [
    ["ml", "base_forecasts"],
    ["ml", "fit_diagnostics"],
    ["marts", "feature_importances"],
    ["ml", "ensemble_forecasts"],
    ["ml", "ensemble_weights"],
    ["marts", "model_scores"],
    ["ml", "governed_signals"],
    ["marts", "governance_decisions"],
    ["marts", "governance_reviews"],
    ["marts", "model_risk"],
    ["marts", "feature_drift"],
    ["marts", "model_comparisons"],
    ["marts", "model_leaderboard"],
    ["marts", "design_targets"],
]
#: Tables whose statistics pool the universe through sums a batch at a time (the validation's
#: PooledEvidence, governance's DailyEvidence): equal to one pass up to the order of floating-point
#: additions; their other columns (the decisions, the flags) exactly.
POOLED_SUMS = {
    "marts.model_comparisons",
    "marts.model_leaderboard",
    "marts.design_targets",
    "marts.governance_decisions",
    "marts.governance_reviews",
    "marts.model_risk",
}
#: An absolute tolerance where a pooled ratio has one subtracted: marts.model_risk's relative_loss (a model's
#: pooled daily loss over the baseline's, less one) is O(1) in scale but may be near 0, where rtol means nothing.
POOLED_ATOL = {"marts.model_risk": 1e-12}


@pytest.mark.slow  # 37 s: the suite's budget (docs/testing.md, "Slow tests")
def test_one_ticker_a_batch_writes_the_rows_of_the_whole_universe_at_once(full, tmp_path):
    # the shared build ran the slice's three tickers in one batch (ticker_batch 20), in this process
    path = tmp_path / "pmx.ducklake"
    Lake.at(full).copy_to(path)
    # governance routes as the full build did (its LLM signals are in the copied lake)
    routing = {k: v for k, v in LLM_ON.items() if k.startswith("llm_fallback")}
    settings = PmxSettings(**{**SLICE, **routing, "ticker_batch": 1, "workers": 2})  # three batches, one Dask cluster
    defs = build_definitions({"warehouse": Warehouse(path=str(path)), "settings": settings})
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=[dg.AssetKey(key) for key in BATCHED],
        raise_on_error=False,
    )
    assert result.success, [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    for table in [".".join(key) for key in BATCHED]:
        whole = without_stamps(read(full, f"select * from {table} order by all"))
        batched = without_stamps(read(path, f"select * from {table} order by all"))
        assert len(whole) > 0, table
        if table in POOLED_SUMS:
            pd.testing.assert_frame_equal(
                batched, whole, check_exact=False, rtol=1e-12, atol=POOLED_ATOL.get(table, 0), obj=table
            )
        else:
            pd.testing.assert_frame_equal(batched, whole, check_exact=True, obj=table)
