"""The walk-forward's checkpoints: a fingerprint that changes with whatever the rows depend on, and batches
that are read only when whole (the resumed run itself: tests/e2e/test_walk_forward_checkpoint.py)."""

import subprocess
import sys

import duckdb
import numpy as np
import pandas as pd
import pytest

from dagster_pmx.defs import schemas
from dagster_pmx.defs.forecasting.checkpoints import Checkpoint, fingerprint, keep_batch
from dagster_pmx.defs.forecasting.fits import fit_id
from dagster_pmx.defs.forecasting.modes import staged_columns, walk_forward_config
from dagster_pmx.resources import PmxSettings
from python_models.evaluation.panel import PanelRun, empty_diagnostics
from python_models.forecasters.registry import forecasters


@pytest.fixture
def work():
    rng = np.random.default_rng(7)
    dates = pd.bdate_range("2020-01-01", periods=50)
    returns = pd.DataFrame(
        {"ticker": np.repeat(["A", "B"], 50), "date": np.tile(dates, 2), "ret": rng.normal(0, 0.01, 100)}
    )
    features = returns.assign(vol_21=rng.random(100))
    models = forecasters(["random_walk", "garch"])
    return dict(
        models=models,
        config=walk_forward_config(PmxSettings()),
        start="2020-02-01",
        ticker_batch=20,
        returns=returns,
        features=features,
    )


def test_the_fingerprint_changes_with_whatever_the_rows_depend_on(work):
    same = fingerprint(**work)
    assert fingerprint(**work) == same
    returns = work["returns"].copy()
    returns.loc[37, "ret"] += 1e-12
    assert fingerprint(**{**work, "returns": returns}) != same
    assert fingerprint(**{**work, "features": None}) != same
    assert fingerprint(**{**work, "ticker_batch": 10}) != same
    assert fingerprint(**{**work, "start": "2020-02-03"}) != same
    models = forecasters(["random_walk", "garch"])
    models[1].dist = "normal"
    assert fingerprint(**{**work, "models": models}) != same
    assert fingerprint(**{**work, "config": walk_forward_config(PmxSettings(refit_every=5))}) != same


def test_a_batch_is_read_only_when_whole_and_the_first_one_kept_stays(tmp_path):
    checkpoint = Checkpoint(tmp_path, "ab" * 32)
    rows = {"ml.f": pd.DataFrame({"x": [1.0, 2.0]}), "ml.g": pd.DataFrame({"y": pd.Series([], dtype="int64")})}
    part, paths, empty = checkpoint.save("single-00000", rows, part={"runs": 2})
    assert part == {"runs": 2}
    assert paths["ml.g"] is None and list(empty["ml.g"].columns) == ["y"]
    pd.testing.assert_frame_equal(pd.read_parquet(paths["ml.f"]), rows["ml.f"])
    # a run killed while writing leaves a partial folder: it is not a batch
    (checkpoint.folder / "single-00001.partial-99").mkdir()
    (checkpoint.folder / "single-00001.partial-99" / "part.pkl").write_bytes(b"cut")
    assert checkpoint.done() == ["single-00000"]
    # a second run of the same work keeps the first one's batch
    checkpoint.save("single-00000", {"ml.f": pd.DataFrame({"x": [1.0, 2.0]})}, part={"runs": 3})
    assert checkpoint.load("single-00000")[0] == {"runs": 2}
    checkpoint.remove()
    assert checkpoint.done() == []


def test_a_batch_is_kept_with_the_fit_stores_ids_and_the_tables_column_types(tmp_path):
    # DuckDB builds each row's fit_id as it writes the batch (a pandas column of them was gigabytes at 500
    # tickers): the id of the fit store's own fit_id(), ticker * for a pooled model
    starts = pd.to_datetime(["2019-01-02", "2019-04-01", "2018-12-31"])
    ends = pd.to_datetime(["2020-01-02", "2020-03-31", "2019-12-30"])
    forecasts = pd.DataFrame(
        {
            "model": ["garch", "garch", "xgboost"],
            "ticker": ["AAA", "BBB", "AAA"],
            "asof_date": pd.to_datetime(["2020-01-03", "2020-04-01", "2019-12-31"]),
            "horizon": [1, 5, 1],
            "y_pred": [0.1, 0.2, 0.3],
            "train_start": starts,
            "train_end": ends,
            "converged": [True, False, True],
        }
    )
    diagnostics = forecasts[["model", "ticker", "train_start", "train_end"]].assign(diagnostic="aic", value=1.5)
    run = PanelRun(forecasts=forecasts, stats={}, fits={}, importances=None, runs=3, diagnostics=diagnostics)
    checkpoint = Checkpoint(tmp_path, "cd" * 32)
    part, paths, empty = keep_batch(checkpoint, staged_columns({"xgboost"}), "single-00000", 0, run)
    ids = [
        fit_id("garch", "AAA", starts[0], ends[0]),
        fit_id("garch", "BBB", starts[1], ends[1]),
        fit_id("xgboost", "*", starts[2], ends[2]),
    ]
    assert ids[2] == "xgboost/*/2018-12-31/2019-12-30"
    kept = pd.read_parquet(paths["ml.base_forecasts"])
    assert kept["fit_id"].tolist() == ids and list(kept.columns) == [*forecasts.columns, "fit_id"]
    assert part.runs == 3 and part.not_converged == 1 and part.first_asof == pd.Timestamp("2019-12-31")
    with duckdb.connect() as con:
        written = con.execute(f"describe select * from '{paths['ml.fit_diagnostics']}'").fetchall()
        assert [(name, kind.lower()) for name, kind, *_ in written] == [
            (c.name, c.type) for c in schemas.FIT_DIAGNOSTICS.columns
        ]
        assert con.execute(f"select fit_id from '{paths['ml.fit_diagnostics']}'").fetchall() == [(i,) for i in ids]
    # a batch without diagnostics keeps the table's columns, the one written where every batch has none
    bare = PanelRun(forecasts=forecasts, stats={}, fits={}, importances=None, runs=3, diagnostics=empty_diagnostics())
    _, paths, empty = keep_batch(checkpoint, staged_columns({"xgboost"}), "single-00001", 0, bare)
    assert paths["ml.fit_diagnostics"] is None
    assert list(empty["ml.fit_diagnostics"].columns) == [c.name for c in schemas.FIT_DIAGNOSTICS.columns]
    with duckdb.connect() as con:
        con.register("head", empty["ml.fit_diagnostics"])
        kinds = [kind.lower() for _, kind, *_ in con.execute("describe select * from head").fetchall()]
    assert kinds == [c.type for c in schemas.FIT_DIAGNOSTICS.columns]


def test_the_module_a_worker_keeps_a_pooled_batch_with_imports_no_dagster():
    # a pooled model's worker unpickles checkpoints.keep_pooled: Dagster in every worker would cost each
    # one its import time and memory for nothing
    code = "import sys, dagster_pmx.defs.forecasting.checkpoints; print('dagster' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
