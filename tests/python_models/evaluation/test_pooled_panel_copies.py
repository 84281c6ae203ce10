"""The pooled models' walk-forward without copies of the panel: every fold's windows are views of
the features read in (date, ticker) order, and the rows are those the boolean selections and the
sort it replaced gave."""

import numpy as np
import pandas as pd

from python_models.evaluation.panel import pooled_panel, run_pooled
from python_models.evaluation.walk_forward import WalkForwardConfig
from python_models.forecasters.base import PanelFitResult, PanelForecaster, ReturnForecast, validate_panel
from python_models.forecasters.boosting import PooledXgboost


def _features(n=6, t=900, seed=1) -> pd.DataFrame:
    """Feature rows of ``n`` tickers in (date, ticker) order, as the forecasting step reads them."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2012-01-02", periods=t)
    frame = pd.DataFrame(
        {
            "ticker": np.tile([f"T{k}" for k in range(n)], t),
            "date": np.repeat(dates, n),
            "f1": rng.standard_normal(n * t),
            "f2": rng.standard_normal(n * t),
            "realized_vol_21": rng.uniform(0.1, 0.4, n * t),
        }
    )
    return frame


def _returns(features: pd.DataFrame, seed=2) -> pd.DataFrame:
    """Log returns of the same tickers, missing on a few sessions, in (ticker, date) order."""
    rng = np.random.default_rng(seed)
    r = features[["ticker", "date"]].assign(log_return=rng.normal(0, 0.01, len(features)))
    r = r.sample(frac=0.97, random_state=seed)  # sessions without a return: NaN in the panel
    return r.sort_values(["ticker", "date"]).reset_index(drop=True)


class _Spy(PanelFitResult):
    """Forecasts zero, and records whether the rows it was handed share the features' memory."""

    shared: list[bool]
    source: np.ndarray

    def forecast(self, panel, origins, horizons):
        self.shared.append(np.shares_memory(panel["f1"].to_numpy(), self.source))
        return {}


class _SpyModel(PanelForecaster):
    """A pooled model that notes, for every fold, whether its training window is a view of the panel."""

    name = "spy"
    refit_every = None

    def __init__(self, source: np.ndarray) -> None:
        self.source, self.shared = source, []

    def fit(self, panel):
        self.shared.append(np.shares_memory(panel["f1"].to_numpy(), self.source))
        result = _Spy(params=pd.Series(dtype=float))
        result.shared, result.source = self.shared, self.source
        return result


def test_every_fold_hands_the_model_its_rows_without_copying_the_features():
    features = _features()
    panel = pooled_panel(_returns(features), features)  # in (date, ticker) order, as the step reads it
    model = _SpyModel(features["f1"].to_numpy())
    config = WalkForwardConfig(horizons=(1, 5), train_window=300, refit_every=100, embargo=2)
    run_pooled(model, panel, config)
    # a fit and a forecast a fold; a boolean selection of the rows would copy them every time
    assert len(model.shared) >= 10 and all(model.shared)


def test_pooled_forecasts_equal_the_sorted_rows_of_a_boolean_selection_walk_forward():
    features = _features()
    panel = pooled_panel(_returns(features), features)
    config = WalkForwardConfig(horizons=(1, 5), train_window=300, refit_every=150, embargo=2)
    model = PooledXgboost(horizons=(1, 5), max_rounds=20)
    out, _ = run_pooled(model, panel, config)
    # the same folds by hand, with the copies the harness no longer makes
    p = validate_panel(panel.sample(frac=1.0, random_state=3))
    dates = pd.DatetimeIndex(p["date"].unique())
    day = p["date"].to_numpy()
    frames = []
    for train_end, first, last in _fold_bounds(out, dates):
        lo, hi = dates[dates.get_loc(train_end) - config.train_window + 1], train_end
        fit = model.fit(p[(day >= lo.to_datetime64()) & (day <= hi.to_datetime64())])
        seen = p[day <= last.to_datetime64()]
        for ticker, fc in fit.forecast(seen, dates[(dates >= first) & (dates <= last)], (1, 5)).items():
            frames.append(fc.to_frame().assign(ticker=ticker))
    expected = pd.concat(frames).sort_values(["ticker", "asof_date", "horizon"], kind="stable")
    columns = ["ticker", "asof_date", "horizon", "y_pred", "y_std"]
    pd.testing.assert_frame_equal(out[columns], expected[columns].reset_index(drop=True))


def _fold_bounds(out: pd.DataFrame, dates: pd.DatetimeIndex):
    """Each fit's last training session and its first and last forecast origin."""
    for train_end, rows in out.groupby("train_end"):
        yield pd.Timestamp(train_end), rows["asof_date"].min(), rows["asof_date"].max()


class _Backwards(PanelFitResult):
    """Forecasts its origins latest first (a model the harness must still put in order)."""

    def forecast(self, panel, origins, horizons):
        tickers = sorted(panel["ticker"].unique())
        backwards = pd.DatetimeIndex(origins)[::-1]
        shape = (len(backwards), len(horizons))
        return {t: ReturnForecast(backwards, tuple(horizons), np.zeros(shape), np.ones(shape)) for t in tickers}


class _BackwardsModel(PanelForecaster):
    name = "backwards"
    refit_every = None

    def check_columns(self, panel):
        pass

    def fit(self, panel):
        return _Backwards(params=pd.Series(dtype=float))


def test_a_model_whose_origins_come_out_of_order_gets_its_rows_sorted():
    features = _features(n=2, t=400)
    panel = pooled_panel(_returns(features), None)
    config = WalkForwardConfig(horizons=(1, 5), train_window=200, refit_every=50, embargo=0)
    out, _ = run_pooled(_BackwardsModel(), panel, config)
    assert len(out) > 0
    ordered = out.sort_values(["ticker", "asof_date", "horizon"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(out, ordered)
