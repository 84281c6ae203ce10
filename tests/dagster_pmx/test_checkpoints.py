"""The walk-forward's checkpoints: a fingerprint that changes with whatever the rows depend on, and batches
that are read only when whole (the resumed run itself: tests/e2e/test_walk_forward_checkpoint.py)."""

import numpy as np
import pandas as pd
import pytest

from dagster_pmx.defs.forecasting.checkpoints import Checkpoint, fingerprint
from dagster_pmx.defs.forecasting.modes import walk_forward_config
from dagster_pmx.resources import PmxSettings
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
    paths, empty = checkpoint.save("single-00000", rows, part={"runs": 2})
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
