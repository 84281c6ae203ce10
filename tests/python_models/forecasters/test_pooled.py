"""Pooled models (XGBoost on features, multivariate SSA) and their walk-forward harness."""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from python_models.evaluation.panel import panels_by_model, run_panel, run_pooled
from python_models.evaluation.walk_forward import POOLED, WalkForwardConfig
from python_models.forecasters.boosting import PooledXgboost, feature_columns, forward_returns
from python_models.forecasters.mssa import Mssa
from python_models.forecasters.random_walk import RandomWalk
from python_models.forecasters.registry import POOLED_MODELS, forecasters
from python_models.forecasters.ssa import fit_windows, page_matrices

SIGMA = 0.2 / np.sqrt(252)  # daily volatility behind realized_vol_21 = 0.2
CFG = WalkForwardConfig(horizons=(1, 5), train_window=600, refit_every=200, embargo=2)


def _skill_panel(n=8, t=1300, slope=0.3, seed=0, drift=0.0) -> pd.DataFrame:
    """Tickers whose next return is drift + slope * sigma * f1 plus noise; f2 is pure noise."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2010-01-01", periods=t)
    frames = []
    for k in range(n):
        f1, f2 = rng.standard_normal(t), rng.standard_normal(t)
        r = np.concatenate([[0.0], drift + SIGMA * (slope * f1[:-1] + rng.standard_normal(t - 1))])
        frames.append(
            pd.DataFrame(
                {"ticker": f"T{k}", "date": dates, "log_return": r, "f1": f1, "f2": f2, "realized_vol_21": 0.2}
            )
        )
    return pd.concat(frames, ignore_index=True)


def _common_signal_panel(n=10, t=1100, noise=0.6, seed=3) -> pd.DataFrame:
    """Log levels: one shared cycle (periods 50 and 20 sessions) with its own amplitude per
    ticker, plus strong AR(1) noise of its own; returns are their differences."""
    rng = np.random.default_rng(seed)
    s = np.arange(t + 1)
    dates = pd.bdate_range("2005-01-03", periods=t)
    frames = []
    for k in range(n):
        a, b = rng.uniform(0.5, 1.5, 2)
        e = np.zeros(t + 1)
        for i in range(1, t + 1):
            e[i] = 0.5 * e[i - 1] + rng.normal(0, noise)
        level = a * np.sin(2 * np.pi * s / 50) + b * np.cos(2 * np.pi * s / 20) + e
        frames.append(pd.DataFrame({"ticker": f"S{k}", "date": dates, "log_return": np.diff(level) / 10}))
    return pd.concat(frames, ignore_index=True)


def test_xgboost_recovers_planted_skill_and_ranks_the_feature_first():
    panel = _skill_panel()
    out, importances = run_pooled(PooledXgboost(horizons=(1, 5)), panel, CFG)
    merged = out.merge(panel[["ticker", "date", "f1"]], left_on=["ticker", "asof_date"], right_on=["ticker", "date"])
    one = merged[merged["horizon"] == 1]
    mean_log = np.log1p(one["y_pred"]) - 0.5 * np.log1p((one["y_std"] / (1 + one["y_pred"])) ** 2)
    slope = np.polyfit(one["f1"], mean_log, 1)[0] / SIGMA
    assert 0.2 < slope < 0.36  # the planted 0.3, shrunk a little by boosting's learning rate
    gain = importances.groupby(["horizon", "feature"])["gain"].mean()
    assert gain[(1, "f1")] > 0.8 and gain[(1, "f2")] < 0.2
    assert set(importances["feature"]) == {"f1", "f2", "realized_vol_21"}
    assert importances["train_end"].nunique() == out["train_end"].nunique()


def test_xgboost_is_sent_its_features_in_single_precision_and_gives_the_same_rows():
    # on a cluster the pooled XGBoost's task gets its features as float32, which is what its DMatrix holds, and
    # not the columns it leaves out: half the bytes of the largest frame the walk-forward sends, the same rows
    rng = np.random.default_rng(5)
    panel = _skill_panel(n=5, t=900)
    panel["f1"] *= 10 ** rng.uniform(-3, 3, len(panel))  # values float32 rounds
    panel.loc[rng.random(len(panel)) < 0.05, "f2"] = np.nan
    panel["flag"], panel["count"] = rng.random(len(panel)) < 0.5, rng.integers(0, 10**9, len(panel))
    panel["macd"] = 1.0  # in price units: never a feature
    model = PooledXgboost(horizons=(1, 5))
    (sent,) = panels_by_model(panel, [model])
    assert "macd" not in sent.columns and len(sent) == len(panel)
    assert sent["f1"].dtype == sent["f2"].dtype == np.float32
    assert sent["realized_vol_21"].dtype == sent["log_return"].dtype == np.float64  # the target's scale
    assert not (sent["f1"].to_numpy(float) == panel["f1"].to_numpy()).all()
    whole, whole_importances = run_pooled(model, panel, CFG)
    compact, compact_importances = run_pooled(model, sent, CFG)
    pd.testing.assert_frame_equal(compact, whole, check_exact=True)
    pd.testing.assert_frame_equal(compact_importances, whole_importances, check_exact=True)


def test_xgboost_intervals_cover_at_their_level():
    panel = _skill_panel(seed=1)
    out, _ = run_pooled(PooledXgboost(horizons=(1, 5)), panel, CFG)
    realised = {}
    for h in (1, 5):
        fwd = pd.Series(forward_returns(panel.sort_values(["date", "ticker"]), h))
        keyed = panel.sort_values(["date", "ticker"])[["ticker", "date"]].assign(y=np.expm1(fwd.to_numpy()), horizon=h)
        realised[h] = keyed
    truth = pd.concat(realised.values())
    m = out.merge(truth, left_on=["ticker", "asof_date", "horizon"], right_on=["ticker", "date", "horizon"]).dropna()
    coverage = ((m["y"] >= m["y_lower"]) & (m["y"] <= m["y_upper"])).groupby(m["horizon"]).mean()
    assert ((coverage > 0.85) & (coverage < 0.95)).all(), coverage


def test_xgboost_learns_nothing_from_noise():
    panel = _skill_panel(slope=0.0, seed=2)
    fit = PooledXgboost(horizons=(1,)).fit(panel[panel["date"] < panel["date"].unique()[700]])
    assert fit.diagnostics["val_skill_h1"] < 0.01  # no better than forecasting zero out of sample
    assert fit.diagnostics["rounds_h1"] < 100  # early stopping cut boosting short


def test_forward_returns_matches_a_loop():
    panel = _skill_panel(n=2, t=50)
    panel.loc[7, "log_return"] = np.nan
    fwd = forward_returns(panel, 3)
    for i, row in panel.iterrows():
        own = panel[panel["ticker"] == row["ticker"]].set_index("date")["log_return"]
        after = own.loc[own.index > row["date"]].iloc[:3]
        expected = after.sum(min_count=3) if len(after) == 3 and after.notna().all() else np.nan
        assert_allclose(fwd[i], expected, rtol=1e-12, equal_nan=True)


def test_feature_columns_leave_out_identity_and_price_units():
    panel = _skill_panel(n=1, t=10).assign(macd=1.0, dollar_volume=5.0, has_price=True, refreshed_at=pd.Timestamp(0))
    assert feature_columns(panel) == ["f1", "f2", "realized_vol_21"]


def test_mssa_equals_the_svd_of_the_stacked_page_matrices():
    panel = _common_signal_panel(n=4, t=400)
    wide = panel.pivot(index="date", columns="ticker", values="log_return")
    levels = np.concatenate([np.zeros((4, 1)), np.cumsum(wide.to_numpy().T, axis=1)], axis=1)
    x = levels - levels.mean(axis=1, keepdims=True)
    stacked = np.hstack(list(page_matrices(x, 21)))  # L x (4 K): the mSSA matrix
    u, s, _ = np.linalg.svd(stacked)
    share = np.cumsum(s**2) / np.sum(s**2)
    aspect = stacked.shape[0] / stacked.shape[1]
    line = (0.56 * aspect**3 - 0.95 * aspect**2 + 1.82 * aspect + 1.43) * np.median(s)
    for rule, rank in (("energy", int(np.searchsorted(share, 0.9)) + 1), ("threshold", int(np.sum(s > line)))):
        fit = fit_windows(levels, 21, (1, 5), energy=0.9, shared=True, rank_rule=rule)
        projection = u[:, :rank] @ u[:, :rank].T
        assert (fit.rank == rank).all(), rule
        for i in range(4):
            assert_allclose(fit.projection[i], projection, atol=1e-10)
        assert_allclose(fit.energy, share[rank - 1], rtol=1e-12)
        assert len(set(np.round(fit.phi, 12))) == 4  # the residual AR(1) stays per series
        assert len(set(np.round(fit.signal_weight[:, 0], 12))) == 4  # and so do the forecast's weights


def test_mssa_recovers_a_shared_signal_subspace_better_than_one_series_alone():
    """Ten series share two cycles (periods 50 and 20: a 4-dimensional lag space) with their
    own amplitudes and phases, under AR(1) noise. The stacked fit estimates that space from
    ten times the columns; each univariate fit from its own few. Both by the energy rule, which
    ``Mssa`` uses: the stacked Gavish–Donoho threshold keeps 5 or 6 components here (the AR(1)
    noise's leading directions clear a line drawn for white noise), the univariate one 3 or 4."""
    lags, t = 21, 300
    s = np.arange(lags)
    basis = np.stack([f(2 * np.pi * s / p) for p in (50, 20) for f in (np.sin, np.cos)], axis=1)
    q, _ = np.linalg.qr(basis)
    truth = q @ q.T
    rng = np.random.default_rng(0)
    single, shared = [], []
    for _ in range(5):
        levels = []
        for _ in range(10):
            e = np.zeros(t + 1)
            for i in range(1, t + 1):
                e[i] = 0.5 * e[i - 1] + rng.normal(0, 0.3)
            k = np.arange(t + 1)
            amp, phase = rng.uniform(0.5, 1.5, 2), rng.uniform(0, 2 * np.pi, 2)
            levels.append(
                amp[0] * np.sin(2 * np.pi * k / 50 + phase[0]) + amp[1] * np.sin(2 * np.pi * k / 20 + phase[1]) + e
            )
        levels = np.asarray(levels)
        one = fit_windows(levels, lags, (1, 5), rank_rule="energy")
        pooled = fit_windows(levels, lags, (1, 5), shared=True, rank_rule="energy")
        single.append(np.mean([np.linalg.norm(p - truth) for p in one.projection]))
        shared.append(np.linalg.norm(pooled.projection[0] - truth))
    assert np.mean(shared) < 0.5 * np.mean(single)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the poisoned forecasts after the cut overflow
@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n == "tcn_features" else n for n in sorted(POOLED_MODELS)],
)
def test_poisoned_future_changes_no_earlier_pooled_prediction(name):
    panel = _common_signal_panel(n=5, t=1100) if name == "mssa" else _skill_panel(n=5, t=1100)
    model = POOLED_MODELS[name]()
    model.horizons = (1, 5)
    if name == "xgboost":
        model.max_rounds = 60
    if name == "sarimax_exog":
        model.model.exog_names = ("f1", "f2")
    if name == "tcn_features":
        model.features, model.epochs = ("f1", "f2"), 30
    cfg = WalkForwardConfig(horizons=(1, 5), train_window=500, refit_every=150, embargo=2)
    dates = np.sort(panel["date"].unique())
    cut = dates[800]
    clean, _ = run_pooled(model, panel, cfg)
    poisoned = panel.copy()
    late = poisoned["date"] > cut
    numeric = [c for c in poisoned.columns if c not in ("ticker", "date")]
    poisoned.loc[late, numeric] = 1e6
    poisoned.loc[late & (poisoned["ticker"] == "T0"), numeric] = np.nan
    dirty, _ = run_pooled(model, poisoned, cfg)
    cols = ["y_pred", "y_lower", "y_upper", "y_std", "confidence"]
    a, b = (f[f["asof_date"] <= cut].reset_index(drop=True) for f in (clean, dirty))
    assert len(a) == len(b) > 0 and (a["asof_date"] == b["asof_date"]).all()
    assert_allclose(a[cols].to_numpy(), b[cols].to_numpy(), rtol=1e-10, atol=1e-14)
    assert (clean["train_end"] < clean["asof_date"]).all()


def test_run_panel_mixes_series_and_pooled_models_and_counts_fits():
    panel = _skill_panel(n=3, t=900)
    returns, feats = panel[["ticker", "date", "log_return"]], panel.drop(columns="log_return")
    model = PooledXgboost(horizons=(1, 5), max_rounds=40)
    run = run_panel([RandomWalk(), model], returns, CFG, features=feats)
    out = run.forecasts
    assert set(out["model"]) == {"random_walk", "xgboost"}
    # 900 sessions, first origin 600 + gap 7: XGBoost refits every 126 (its own cadence), the random walk every 200
    assert run.stats["xgboost"].fits == out.loc[out["model"] == "xgboost", "train_end"].nunique() == 3
    assert run.stats["random_walk"].fits == 3 * 2  # one fit per ticker and fold
    assert set(run.importances["model"]) == {"xgboost"}
    # the last fit of each run, keyed as the fit store keys them (a pooled model under POOLED)
    assert set(run.fits) == {("random_walk", t) for t in returns["ticker"].unique()} | {("xgboost", POOLED)}
    assert run.fits[("xgboost", POOLED)].train_end == out.loc[out["model"] == "xgboost", "train_end"].max()
    with pytest.raises(ValueError, match="realized_vol_21"):
        run_panel([model], returns, CFG, features=feats.drop(columns="realized_vol_21"))


def test_pooled_models_reject_bad_input():
    panel = _skill_panel(n=2, t=300)
    with pytest.raises(ValueError, match="lacks columns"):
        Mssa().fit(panel.drop(columns="log_return"))
    with pytest.raises(ValueError, match="repeats"):
        Mssa().fit(pd.concat([panel, panel.iloc[:1]]))
    with pytest.raises(ValueError, match="infinite"):
        Mssa().fit(panel.assign(f1=np.inf))
    with pytest.raises(ValueError, match="no feature columns"):
        PooledXgboost().fit(panel[["ticker", "date", "log_return"]])
    with pytest.raises(ValueError, match="validation"):
        PooledXgboost(validation=0.7)
    with pytest.raises(ValueError, match="tickers with no missing return"):
        Mssa().fit(panel.assign(log_return=np.where(panel.index % 50 == 0, np.nan, panel["log_return"])))
    fit = PooledXgboost(horizons=(1,), max_rounds=20).fit(_skill_panel(n=3, t=800))
    with pytest.raises(ValueError, match="not for"):
        fit.forecast(panel, pd.DatetimeIndex(panel["date"][:3]), (5,))


def test_registry_builds_pooled_models_by_name():
    names = [m.name for m in forecasters("random_walk,xgboost,mssa")]
    assert names == ["random_walk", "xgboost", "mssa"]


def test_sarimax_exog_recovers_the_regressor_and_forecasts_like_statsmodels():
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    from python_models.forecasters.sarimax import Sarimax

    frame = _skill_panel(n=1, t=900, slope=0.4, seed=5, drift=0.0003).set_index("date")
    returns = frame["log_return"].iloc[1:700]
    fit = Sarimax(exog_names=("f1", "f2"), order=(0, 0, 0)).fit(returns, exog=frame)
    # ARMA(0, 0) with regressors is a linear regression: maximum likelihood = least squares
    lagged = frame[["f1", "f2"]].reindex(returns.index).shift(1)
    lagged = lagged.fillna(lagged.mean()).to_numpy()  # the first return has no earlier feature: its mean
    design = np.column_stack([np.ones(len(returns)), lagged])
    ols = np.linalg.lstsq(design, returns.to_numpy(), rcond=None)[0]
    slopes = np.array([fit.params["f1"], fit.params["f2"]]) / 100 / fit.exog.scale  # per unit of the raw feature
    assert_allclose(slopes, ols[1:], rtol=1e-3, atol=1e-6)
    assert_allclose(slopes[0], 0.4 * SIGMA, rtol=0.3)  # the planted effect, within three standard errors
    assert abs(slopes[1]) < 0.1 * SIGMA
    # forecasts from the last origin against statsmodels' own given the regressors' path: known for the
    # next session, then its AR(1) expectation
    arma = Sarimax(exog_names=("f1",)).fit(returns, exog=frame)
    history = frame["log_return"].iloc[1:760]
    origin = history.index[-1]
    ours = arma.forecast(history, pd.Index([origin]), (1, 5), exog=frame).mean[0]
    x = arma.exog.transform(frame, history.index)
    res = SARIMAX(100 * history.to_numpy(), exog=x, order=(1, 0, 1), trend="c").filter(arma.params.to_numpy())
    now = arma.exog.current(frame, pd.Index([origin]))
    expected = now * arma.exog.persistence ** np.arange(5)[:, None]
    path = res.forecast(steps=5, exog=expected) / 100
    assert_allclose(ours, [path[0], path.sum()], rtol=1e-8)


def test_sarimax_exog_under_the_pooled_harness_reads_no_later_feature():
    panel = _skill_panel(n=3, t=900, slope=0.4, seed=5, drift=0.0003)
    cfg = WalkForwardConfig(horizons=(1, 5), train_window=400, refit_every=200, embargo=2)
    model = POOLED_MODELS["sarimax_exog"]()
    model.model.exog_names = ("f1",)
    clean, _ = run_pooled(model, panel, cfg)
    cut = np.sort(panel["date"].unique())[650]
    dirty_panel = panel.assign(f1=np.where(panel["date"] > cut, 1e6, panel["f1"]))
    dirty, _ = run_pooled(model, dirty_panel, cfg)
    a, b = (f[f["asof_date"] <= cut].reset_index(drop=True) for f in (clean, dirty))
    assert len(a) == len(b) > 0
    assert_allclose(a["y_pred"], b["y_pred"], rtol=1e-10)
    # the feature at the origin is used: the 1-session forecast follows f1 at asof_date
    one = clean[clean["horizon"] == 1].merge(panel, left_on=["ticker", "asof_date"], right_on=["ticker", "date"])
    assert stats.pearsonr(one["f1"], one["y_pred"])[0] > 0.8
    with pytest.raises(ValueError, match="exogenous columns"):
        run_pooled(model, panel.drop(columns="f1"), cfg)


@pytest.mark.slow  # a research-only model; `make test-slow`
def test_feature_tcn_learns_a_planted_feature_from_its_windows_and_sizes_intervals_out_of_sample():
    from python_models.forecasters.feature_tcn import FeatureTcn

    panel = _skill_panel()
    out, _ = run_pooled(FeatureTcn(features=("f1", "f2"), horizons=(1, 5)), panel, CFG)
    merged = out.merge(panel, left_on=["ticker", "asof_date"], right_on=["ticker", "date"])
    one = merged[merged["horizon"] == 1]
    slope = np.polyfit(one["f1"], np.log1p(one["y_pred"]), 1)[0] / SIGMA
    assert 0.2 < slope < 0.36 and stats.pearsonr(one["f1"], one["y_pred"])[0] > 0.9
    ps = panel.sort_values(["date", "ticker"])
    truth = ps[["ticker", "date"]].assign(y=np.expm1(forward_returns(ps, 1)))
    m = (
        one[["ticker", "asof_date", "y_lower", "y_upper"]]
        .merge(truth, left_on=["ticker", "asof_date"], right_on=["ticker", "date"])
        .dropna()
    )
    coverage = ((m["y"] >= m["y_lower"]) & (m["y"] <= m["y_upper"])).mean()
    assert 0.85 < coverage < 0.95
    with pytest.raises(ValueError, match="feature columns"):
        run_pooled(FeatureTcn(features=("f1", "f9")), panel, CFG)


def test_sarimax_exog_clips_an_unseen_regressor_and_expects_its_ar1_path():
    from python_models.forecasters.sarimax import Sarimax

    frame = _skill_panel(n=1, t=900, slope=0.4, seed=5, drift=0.0003).set_index("date")
    returns = frame["log_return"].iloc[1:700]
    fit = Sarimax(exog_names=("f1",)).fit(returns, exog=frame)
    seen = frame["f1"].iloc[:699]
    # the planted feature is white noise: no persistence, so only the next session carries it
    assert abs(fit.exog.persistence[0]) < 0.1
    history = frame["log_return"].iloc[1:760]
    origin = history.index[-1]
    extreme, at_max = frame.copy(), frame.copy()
    extreme.loc[origin, "f1"] = seen.max() + 50 * seen.std()
    at_max.loc[origin, "f1"] = seen.max()
    wild = fit.forecast(history, pd.Index([origin]), (1, 63), exog=extreme).mean[0]
    clipped = fit.forecast(history, pd.Index([origin]), (1, 63), exog=at_max).mean[0]
    assert_allclose(wild, clipped, rtol=1e-12)  # beyond the window's range: its largest value
    at_mean = frame.copy()
    at_mean.loc[origin, "f1"] = seen.mean()
    assert not np.allclose(clipped, fit.forecast(history, pd.Index([origin]), (1, 63), exog=at_mean).mean[0])


def test_a_stored_sarimax_exog_fit_without_persistence_holds_its_regressors():
    """A fit pickled before the regressors' AR(1) path (ExogScaler.persistence None) forecasts as it did."""
    import dataclasses

    from python_models.forecasters.sarimax import Sarimax

    frame = _skill_panel(n=1, t=900, slope=0.4, seed=5, drift=0.0003).set_index("date")
    fit = Sarimax(exog_names=("f1",)).fit(frame["log_return"].iloc[1:700], exog=frame)
    history = frame["log_return"].iloc[1:760]
    origin = pd.Index([history.index[-1]])
    old = dataclasses.replace(fit, exog=dataclasses.replace(fit.exog, persistence=None))
    held = dataclasses.replace(fit, exog=dataclasses.replace(fit.exog, persistence=np.ones(1)))
    assert_allclose(
        old.forecast(history, origin, (1, 5), exog=frame).mean, held.forecast(history, origin, (1, 5), exog=frame).mean
    )
