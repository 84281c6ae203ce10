"""A walk-forward cut short resumes from its checkpoint: the batches it kept are not fitted again, and the
tables it writes in the end are the uninterrupted build's, row for row."""

import dagster as dg
import pandas as pd

from dagster_pmx.definitions import build_definitions
from dagster_pmx.defs.forecasting import modes
from dagster_pmx.defs.forecasting.checkpoints import Checkpoint, checkpoint_root
from dagster_pmx.lake import Lake
from dagster_pmx.resources import PmxSettings, Warehouse
from tests.e2e.helpers import SLICE, read, without_stamps

WALK_FORWARD = [["ml", "base_forecasts"], ["ml", "fit_diagnostics"], ["marts", "feature_importances"]]
#: two single-series models and a pooled one: their rows do not depend on which other models run
MODELS = ("random_walk", "garch", "xgboost")


class Cut(RuntimeError):
    """The machine taken back."""


def _walk_forward(path) -> dg.ExecuteInProcessResult:
    settings = PmxSettings(**{**SLICE, "models": ",".join(MODELS), "ticker_batch": 1})  # three batches
    defs = build_definitions({"warehouse": Warehouse(path=str(path)), "settings": settings})
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=[dg.AssetKey(key) for key in WALK_FORWARD],
        raise_on_error=False,
    )


def _failure(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return " ".join(e.event_specific_data.error.to_string() for e in failures)  # with its cause


def _rows(path, table: str) -> pd.DataFrame:
    models = ", ".join(f"'{m}'" for m in MODELS)
    where = f"where model in ({models})" if table != "marts.feature_importances" else ""
    return without_stamps(read(path, f"select * from {table} {where} order by all"))


def test_a_cut_walk_forward_fits_only_what_it_had_not_kept_and_writes_the_full_builds_rows(full, tmp_path, monkeypatch):
    path = tmp_path / "pmx.ducklake"
    Lake.at(full).copy_to(path)
    before = read(path, "select count(*) as n from ml.base_forecasts")["n"].iloc[0]
    fitted: list[list[str]] = []  # each single-series batch fitted, by its tickers
    pooled: list[str] = []  # each pooled model fitted
    saves = {"left": 2}  # batches kept before the cut

    real_run_panel, real_save = modes.run_panel, Checkpoint.save
    real_pooled_runs, real_replace = modes.PooledRuns, Warehouse.replace_tables_from_files

    def run_panel(models, rows, *args, **kwargs):
        fitted.append(sorted(rows["ticker"].unique()))
        return real_run_panel(models, rows, *args, **kwargs)

    def save(self, name, frames, part, columns=None):
        if saves["left"] == 0:
            raise Cut("the machine was taken back")
        saves["left"] -= 1
        return real_save(self, name, frames, part, columns)

    def pooled_runs(models, *args, **kwargs):
        pooled.extend(m.name for m in models)
        return real_pooled_runs(models, *args, **kwargs)

    monkeypatch.setattr(modes, "run_panel", run_panel)
    monkeypatch.setattr(modes, "PooledRuns", pooled_runs)
    monkeypatch.setattr(Checkpoint, "save", save)
    root = checkpoint_root(Warehouse(path=str(path)))

    # 1. cut after two of the three ticker batches: they are kept, the tables are not touched
    assert "the machine was taken back" in _failure(_walk_forward(path))
    assert len(fitted) == 3 and pooled == ["xgboost"]  # the third batch was fitted, not kept
    (folder,) = root.iterdir()
    assert sorted(p.name for p in folder.iterdir() if ".partial-" not in p.name) == ["single-00000", "single-00001"]
    assert read(path, "select count(*) as n from ml.base_forecasts")["n"].iloc[0] == before

    # 2. the rerun fits only the third batch and the pooled model; cut again, while writing the tables
    fitted.clear(), pooled.clear()
    saves["left"] = 10

    def replace(self, staged):
        raise Cut("the machine was taken back again")

    monkeypatch.setattr(Warehouse, "replace_tables_from_files", replace)
    assert "taken back again" in _failure(_walk_forward(path))
    assert fitted == [["XOM"]] and pooled == ["xgboost"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "pooled-xgboost",
        "single-00000",
        "single-00001",
        "single-00002",
    ]

    # 3. everything was kept: the last rerun fits nothing, writes the tables, and removes the checkpoint
    fitted.clear(), pooled.clear()
    monkeypatch.setattr(Warehouse, "replace_tables_from_files", real_replace)
    result = _walk_forward(path)
    assert result.success, _failure(result)
    assert fitted == [] and pooled == []
    assert not folder.exists()
    for table in (".".join(key) for key in WALK_FORWARD):
        resumed = _rows(path, table)
        assert len(resumed) > 0, table
        pd.testing.assert_frame_equal(resumed, _rows(full, table), check_exact=True, obj=table)
