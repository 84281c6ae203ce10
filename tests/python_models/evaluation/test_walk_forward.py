"""Walk-forward folds and point-in-time behaviour of the harness."""

import pandas as pd
import pytest
from numpy.testing import assert_allclose

from python_models.evaluation.panel import run_panel
from python_models.evaluation.walk_forward import WalkForwardConfig, run_walk_forward, walk_forward_folds
from python_models.forecasters.random_walk import RandomWalk
from python_models.forecasters.registry import SERIES_MODELS as MODELS

#: Research-configuration models whose fits take tens of seconds here: `make test-slow` runs them.
HEAVY = {"tcn", "lstm"}
NAMES = [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in sorted(MODELS)]


def test_folds_respect_window_purge_embargo_and_cadence():
    cfg = WalkForwardConfig(horizons=(1, 21), train_window=300, refit_every=50, embargo=5)
    folds = list(walk_forward_folds(1000, 0, cfg))
    assert cfg.gap == 21 + 5
    assert folds[0].test_start == 300 + 26
    for f in folds:
        assert f.train_end - f.train_start == 300
        assert f.test_start - f.train_end == 26  # purge + embargo: no label overlaps the test block
        assert f.test_end - f.test_start <= 50
    starts = [f.test_start for f in folds]
    assert starts == list(range(326, 1000, 50))
    assert folds[-1].test_end == 1000


def test_expanding_window_starts_at_zero():
    cfg = WalkForwardConfig(horizons=(1,), train_window=200, refit_every=100, expanding=True)
    assert all(f.train_start == 0 for f in walk_forward_folds(800, 0, cfg))


@pytest.mark.parametrize(
    "kwargs",
    [dict(train_window=50), dict(refit_every=0), dict(purge=3, horizons=(5,)), dict(embargo=-1), dict(horizons=(0, 1))],
)
def test_bad_config_is_rejected(kwargs):
    with pytest.raises(ValueError):
        WalkForwardConfig(**kwargs)


@pytest.mark.parametrize("name", NAMES)
def test_truncated_history_gives_identical_forecasts(returns, name):
    model = MODELS[name]()
    cfg = WalkForwardConfig(horizons=(1, 5, 21), train_window=400, refit_every=60, embargo=2)
    full = run_walk_forward(model, returns, cfg)
    cut = returns.index[700]
    part = run_walk_forward(model, returns.loc[:cut], cfg)
    cols = ["y_pred", "y_lower", "y_upper", "y_std", "confidence"]
    a = full[full["asof_date"] <= cut].reset_index(drop=True)
    assert len(a) == len(part) > 0
    assert (a["asof_date"].to_numpy() == part["asof_date"].to_numpy()).all()
    assert_allclose(a[cols].to_numpy(), part[cols].to_numpy(), rtol=1e-10, atol=1e-14)


def test_rows_record_asof_target_and_fit_window(returns):
    cfg = WalkForwardConfig(horizons=(1, 5), train_window=300, refit_every=100, embargo=0)
    out = run_walk_forward(RandomWalk(), returns, cfg)
    dates = returns.index
    pos = dates.get_indexer(out["asof_date"])
    assert (out["train_end"] < out["asof_date"]).all()
    gap = dates.get_indexer(out["asof_date"]) - dates.get_indexer(out["train_end"])
    assert gap.min() == 5 + 1  # purge of the longest horizon, then the first test origin
    realised = out["target_date"].notna()
    assert (
        dates.get_indexer(out.loc[realised, "target_date"]) - pos[realised.to_numpy()] == out.loc[realised, "horizon"]
    ).all()
    # Only the last h origins of each horizon lack a target session.
    assert (~realised).sum() == 1 + 5


def test_panel_without_enough_history_says_so(returns):
    long = pd.DataFrame({"ticker": "A", "date": returns.index[:300], "log_return": returns.to_numpy()[:300]})
    with pytest.raises(ValueError, match="enough history"):
        run_panel([RandomWalk()], long, WalkForwardConfig(train_window=756))


@pytest.mark.parametrize("name", NAMES)
def test_poisoned_future_changes_no_earlier_prediction(returns, name):
    model = MODELS[name]()
    cfg = WalkForwardConfig(horizons=(1, 5, 21), train_window=400, refit_every=60, embargo=2)
    cut = returns.index[700]
    clean = run_walk_forward(model, returns, cfg)
    poisoned = returns.copy()
    poisoned.iloc[701:] = 1e3  # absurd returns after the cut, inside the fold that straddles it
    dirty = run_walk_forward(model, poisoned, cfg)
    cols = ["y_pred", "y_lower", "y_upper", "y_std", "confidence"]
    a, b = (f[f["asof_date"] <= cut].reset_index(drop=True) for f in (clean, dirty))
    assert len(a) == len(b) > 0
    assert_allclose(a[cols].to_numpy(), b[cols].to_numpy(), rtol=1e-10, atol=1e-14)
    # and a fitted model's forecast never reads past its last origin, even NaN
    fit = model.fit(returns.iloc[:500])
    origins = returns.index[560:600]
    nan_after = returns.copy()
    nan_after.iloc[600:] = float("nan")
    assert_allclose(
        fit.forecast(nan_after, origins, (1, 5, 21)).mean, fit.forecast(returns, origins, (1, 5, 21)).mean, rtol=1e-12
    )


def test_forecasts_that_overflow_are_left_out(returns):
    # EGARCH once forecast an infinite variance from a fit whose filter was not invertible, and the
    # ensembles stopped on it: such rows are left out, the rest of the walk-forward is kept
    import numpy as np

    from python_models.forecasters.random_walk import RandomWalkResult

    class Overflowing(RandomWalk):
        def fit(self, window):
            fit = super().fit(window)
            if window.index[-1] == cut:
                return RandomWalkResult(params=pd.Series({"mu": fit.params["mu"], "sigma2": np.inf}), diagnostics={})
            return fit

    config = WalkForwardConfig(train_window=300, refit_every=50)
    plain = run_walk_forward(RandomWalk(), returns, config)
    cut = plain["train_end"].unique()[2]
    with pytest.warns(RuntimeWarning, match="200 forecasts were not finite"):
        out = run_walk_forward(Overflowing(), returns, config)
    assert cut not in set(out["train_end"])
    kept = plain[plain["train_end"] != cut].reset_index(drop=True)
    assert_allclose(out["y_pred"], kept["y_pred"])
    assert np.isfinite(out[["y_pred", "y_std", "y_lower", "y_upper"]].to_numpy()).all()


def test_every_fit_reports_its_diagnostics_keyed_by_its_window(returns):
    # one row per fit and finite diagnostic, under the training window the forecast rows name; the panel
    # runner keys them by model and ticker (the pooled ones by "*")
    import numpy as np

    from python_models.evaluation.walk_forward import diagnostics_frame
    from python_models.forecasters.registry import forecasters

    config = WalkForwardConfig(train_window=500, refit_every=63)
    out = run_walk_forward(MODELS["garch"](), returns, config)
    diagnostics = out.attrs["fit_diagnostics"]
    windows = out[["train_start", "train_end"]].drop_duplicates()
    assert len(diagnostics.drop_duplicates(["train_start", "train_end"])) == len(windows)
    last = out.attrs["last_fit"]
    own = diagnostics[diagnostics["train_end"] == last.train_end].set_index("diagnostic")["value"]
    assert own.to_dict() == pytest.approx({k: v for k, v in last.fit.diagnostics.items() if np.isfinite(v)})
    assert diagnostics_frame([(last.train_start, last.train_end, {"a": 1.0, "b": float("nan"), "c": "x"})])[
        "diagnostic"
    ].tolist() == ["a"]
    panel = pd.concat(
        [
            pd.DataFrame({"ticker": t, "date": returns.index, "log_return": returns.to_numpy() * k})
            for t, k in (("A", 1), ("B", -1))
        ]
    )
    run = run_panel(forecasters("random_walk,mssa"), panel, config)
    assert set(zip(run.diagnostics["model"], run.diagnostics["ticker"], strict=True)) == {
        ("random_walk", "A"),
        ("random_walk", "B"),
        ("mssa", "*"),
    }
