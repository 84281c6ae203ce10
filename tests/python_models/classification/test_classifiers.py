"""The pooled calibrated classifier, its walk-forward and its scores, against independent computations."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import optimize
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sklearn_log_loss

from python_models.classification.base import events, label_columns, usable_labels
from python_models.classification.logistic import PooledLogistic, penalised_logit, platt_scaling
from python_models.classification.scores import (
    block_bootstrap_means,
    brier,
    calibration_error,
    classifier_scores,
    log_losses,
)
from python_models.classification.walk_forward import first_training_session, run_classifier
from python_models.evaluation.walk_forward import WalkForwardConfig

HORIZONS = (1, 5)


def labelled_panel(tickers: int = 6, sessions: int = 900, signal: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """Seeded pooled panel: an informative feature ``f1``, a noise feature ``f2``, a feature with a
    warm-up gap, and labels drawn with P(up) = sigmoid(signal * f1) and P(move) = sigmoid(-1 + signal * f2b)."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2010-01-04", periods=sessions)
    n = tickers * sessions
    frame = pd.DataFrame(
        {
            "date": np.repeat(dates, tickers),
            "ticker": np.tile([f"T{i}" for i in range(tickers)], sessions),
            "log_return": rng.normal(0, 0.01, n),
            "f1": rng.normal(size=n),
            "f2": rng.normal(size=n),
            "f2b": rng.normal(size=n),
            "warm": rng.normal(size=n),
        }
    )
    frame.loc[frame["date"] < dates[min(30, sessions - 1)], "warm"] = np.nan
    up = 1 / (1 + np.exp(-signal * frame["f1"].to_numpy()))
    move = 1 / (1 + np.exp(1 - signal * frame["f2b"].to_numpy()))
    for h in HORIZONS:
        frame[f"fwd_direction_{h}d"] = np.where(rng.random(n) < up, 1, -1)
        frame[f"significant_move_{h}d"] = rng.random(n) < move
    return frame


def config() -> WalkForwardConfig:
    return WalkForwardConfig(horizons=HORIZONS, train_window=400, refit_every=100, embargo=2)


def test_penalised_logit_minimises_its_objective():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(800, 3))
    y = (rng.random(800) < 1 / (1 + np.exp(-(0.3 + x @ [1.0, -0.5, 0.0])))).astype(float)
    c = 0.05

    def objective(beta):
        score = beta[0] + x @ beta[1:]
        return c * np.sum(np.logaddexp(0, score) - y * score) + 0.5 * beta[1:] @ beta[1:]

    expected = optimize.minimize(objective, np.zeros(4), method="BFGS", options={"gtol": 1e-10}).x
    intercept, coef = penalised_logit(x, y, c)
    np.testing.assert_allclose([intercept, *coef], expected, atol=1e-5)
    # and scikit-learn's L2 logistic regression, which minimises the same objective
    reference = LogisticRegression(C=c, tol=1e-10, max_iter=1000).fit(x, y)
    np.testing.assert_allclose([intercept, *coef], [reference.intercept_[0], *reference.coef_[0]], atol=1e-5)


def test_platt_scaling_is_statsmodels_logit_on_the_score():
    rng = np.random.default_rng(2)
    score = rng.normal(0, 2, 3000)
    event = (rng.random(3000) < 1 / (1 + np.exp(-(0.2 + 0.5 * score)))).astype(float)
    a, b = platt_scaling(score, event)
    expected = sm.Logit(event, sm.add_constant(score)).fit(disp=0, tol=1e-12).params
    np.testing.assert_allclose([a, b], expected, rtol=1e-7)
    assert abs(b - 0.5) < 0.1  # an overconfident score is shrunk toward its true slope


def test_platt_scaling_of_a_constant_score_is_the_event_rate():
    a, b = platt_scaling(np.ones(100), np.r_[np.ones(30), np.zeros(70)])
    assert b == 0.0
    assert 1 / (1 + np.exp(-a)) == pytest.approx(0.3)


def test_features_never_include_a_label():
    panel = labelled_panel(tickers=2, sessions=50)
    features = PooledLogistic(horizons=HORIZONS).features_of(panel)
    assert features == ["f1", "f2", "f2b", "warm"]
    assert not set(features) & set(label_columns(HORIZONS))


def test_usable_labels_drop_each_tickers_last_h_rows():
    panel = labelled_panel(tickers=3, sessions=10)
    known = usable_labels(panel, 4)
    per_ticker = pd.Series(known).groupby(panel["ticker"].to_numpy()).sum()
    assert (per_ticker == 6).all()
    assert not known[panel["date"] > panel["date"].unique()[5]].any()


def test_walk_forward_learns_a_planted_signal_and_is_calibrated():
    panel = labelled_panel(signal=1.0)
    probs, diagnostics = run_classifier(PooledLogistic(horizons=HORIZONS), panel, config())
    assert len(probs) and probs["probability"].between(0, 1).all()
    assert (probs["date"] > probs["train_end"]).all()
    assert set(diagnostics["diagnostic"]) >= {"held_out_skill_direction_h1", "features"}
    skill = diagnostics[diagnostics["diagnostic"] == "held_out_skill_significant_move_h1"]["value"]
    assert (skill > 0).all()
    assert not diagnostics["diagnostic"].str.startswith("platt_slope").any()  # no Platt scaling by default
    scored = score_frame(probs, panel)
    scores = classifier_scores(scored, draws=300).set_index(["target", "horizon"])
    for target in ("direction", "significant_move"):
        row = scores.loc[(target, 1)]
        assert row["verdict"] == "beats the base rate"
        assert row["log_loss_diff_upper"] < 0 and row["brier_diff_upper"] < 0
        assert row["calibration_error"] < 0.05
    assert scores.loc[("direction", 1), "hit_rate"] > 0.65


def test_the_kept_model_is_the_penalised_likelihood_on_every_known_label_of_the_window():
    panel = labelled_panel(tickers=4, sessions=400)
    model = PooledLogistic(horizons=HORIZONS)
    fit = model.fit(panel)
    z = fit.standardiser.apply(panel[fit.features].to_numpy(float))
    for target in ("direction", "significant_move"):
        y = events(panel, target, 5)
        known = usable_labels(panel, 5) & np.isfinite(y)
        intercept, coef = penalised_logit(z[known], y[known], fit.diagnostics[f"c_{target}_h5"])
        kept = fit.models[(target, 5)]
        assert (kept.platt_a, kept.platt_b) == (0.0, 1.0)
        np.testing.assert_allclose([kept.intercept, *kept.coef], [intercept, *coef], rtol=1e-12)
        assert fit.base_rates[(target, 5)] == pytest.approx(y[known].mean(), rel=1e-12)


def test_platt_calibration_is_an_option_that_keeps_the_probe():
    panel = labelled_panel(signal=1.0)
    probs, diagnostics = run_classifier(PooledLogistic(horizons=HORIZONS, calibrate=True), panel, config())
    slopes = diagnostics[diagnostics["diagnostic"] == "platt_slope_direction_h1"]["value"]
    assert len(slopes) and (slopes > 0).all()
    scores = classifier_scores(score_frame(probs, panel), draws=300).set_index(["target", "horizon"])
    assert scores.loc[("direction", 1), "verdict"] == "beats the base rate"
    assert scores.loc[("direction", 1), "calibration_error"] < 0.05


def test_walk_forward_on_null_labels_does_not_beat_the_base_rate():
    panel = labelled_panel(signal=0.0, seed=3)
    probs, _ = run_classifier(PooledLogistic(horizons=HORIZONS), panel, config())
    scores = classifier_scores(score_frame(probs, panel), draws=300)
    assert (scores["verdict"] != "beats the base rate").all()
    # the calibrated probabilities stay near the base rate
    assert (probs.groupby(["target", "horizon"])["probability"].std() < 0.05).all()


@pytest.mark.parametrize("calibrate", [False, True])
def test_probabilities_do_not_read_labels_or_features_after_the_fit(calibrate):
    """Poison every feature after a cut and every label realised after it: the probabilities of
    the origins up to the cut stay the same, bit for bit."""
    panel = labelled_panel()
    dates = panel["date"].unique()
    cut = dates[650]
    probs, _ = run_classifier(PooledLogistic(horizons=HORIZONS, calibrate=calibrate), panel, config())
    rng = np.random.default_rng(9)
    poisoned = panel.copy()
    later = poisoned["date"] > cut
    poisoned.loc[later, ["f1", "f2", "f2b", "warm"]] = rng.normal(50, 10, (later.sum(), 4))
    position = pd.Index(dates).get_indexer(poisoned["date"])
    for h in HORIZONS:  # a label of origin t is realised at session t + h
        realised_later = position + h > 650
        poisoned.loc[realised_later, f"fwd_direction_{h}d"] = 1
        poisoned.loc[realised_later, f"significant_move_{h}d"] = True
    again, _ = run_classifier(PooledLogistic(horizons=HORIZONS, calibrate=calibrate), poisoned, config())
    before = probs[probs["date"] <= cut].reset_index(drop=True)
    pd.testing.assert_frame_equal(before, again[again["date"] <= cut].reset_index(drop=True))
    assert not probs[probs["date"] > cut]["probability"].equals(again[again["date"] > cut]["probability"])


@pytest.mark.parametrize("calibrate", [False, True])
def test_since_gives_the_full_runs_rows(calibrate):
    panel = labelled_panel(sessions=700)
    model = PooledLogistic(horizons=HORIZONS, calibrate=calibrate)
    full, _ = run_classifier(model, panel, config())
    since = panel["date"].unique()[-3]
    tail, _ = run_classifier(model, panel, config(), since=since)
    assert set(tail["date"]) == set(panel["date"][panel["date"] > since])
    pd.testing.assert_frame_equal(tail, full[full["date"] > since].reset_index(drop=True))
    # the refresh reads the panel from the first fold it refits only, the folds laid on the whole calendar
    calendar = pd.DatetimeIndex(panel["date"].unique())
    first = first_training_session(model, calendar, config(), since)
    assert first is not None and first > calendar[0]
    recent = panel[panel["date"] >= first]
    again, _ = run_classifier(model, recent, config(), since=since, calendar=calendar)
    pd.testing.assert_frame_equal(again, tail)
    with pytest.raises(ValueError, match="after the fold's window"):
        run_classifier(model, panel[panel["date"] > first], config(), since=since, calendar=calendar)


def test_nullable_labels_of_duckdb_are_read():
    panel = labelled_panel(tickers=2, sessions=20)
    panel["fwd_direction_1d"] = pd.array([1, -1, None, 0] * 10, dtype="Int32")
    panel["significant_move_1d"] = pd.array([True, None, False, True] * 10, dtype="boolean")
    np.testing.assert_array_equal(events(panel, "direction", 1)[:4], [1.0, 0.0, np.nan, 0.0])
    np.testing.assert_array_equal(events(panel, "significant_move", 1)[:4], [1.0, np.nan, 0.0, 1.0])


def test_bad_inputs_get_clear_errors():
    panel = labelled_panel(tickers=2, sessions=300)
    with pytest.raises(ValueError, match="lacks columns"):
        PooledLogistic(horizons=HORIZONS).fit(panel.drop(columns=["fwd_direction_5d"]))
    with pytest.raises(ValueError, match="too short"):
        PooledLogistic(horizons=HORIZONS).fit(panel.head(100))
    with pytest.raises(ValueError, match="repeats"):
        PooledLogistic(horizons=HORIZONS).fit(pd.concat([panel, panel.head(1)]))
    # a horizon without labels enough to calibrate on is left out of that fit; the others are fitted
    fit = PooledLogistic(horizons=(1, 63)).fit(
        labelled_panel(tickers=2, sessions=300).assign(fwd_direction_63d=1, significant_move_63d=True)
    )
    assert set(fit.base_rates) == {("direction", 1), ("significant_move", 1)}
    assert fit.diagnostics["skipped_direction_h63"] == 1.0
    with pytest.raises(ValueError, match="any target"):
        PooledLogistic(horizons=HORIZONS).fit(
            labelled_panel(tickers=1, sessions=300).assign(
                f1=0.0, fwd_direction_1d=1, fwd_direction_5d=1, significant_move_1d=True, significant_move_5d=True
            )
        )
    with pytest.raises(ValueError, match="targets"):
        PooledLogistic(targets=["volatility"])
    with pytest.raises(ValueError, match="validation"):
        PooledLogistic(validation=0.7)


def test_scores_against_sklearn_and_a_hand_loop():
    rng = np.random.default_rng(4)
    p = rng.uniform(0.05, 0.95, 500)
    y = (rng.random(500) < p).astype(float)
    assert brier(y, p).mean() == pytest.approx(brier_score_loss(y, p), rel=1e-12)
    assert log_losses(y, p).mean() == pytest.approx(sklearn_log_loss(y, p), rel=1e-12)
    expected = 0.0
    for b in range(10):
        inside = (p >= b / 10) & (p < (b + 1) / 10)
        if inside.any():
            expected += inside.sum() / len(p) * abs(p[inside].mean() - y[inside].mean())
    assert calibration_error(y, p) == pytest.approx(expected, rel=1e-12)


def test_block_bootstrap_of_iid_dates_matches_the_normal_interval():
    rng = np.random.default_rng(5)
    values = rng.normal(0.1, 1.0, 2000)
    boot = block_bootstrap_means(values[:, None], np.ones(2000), 1, 4000, np.random.default_rng(0))[:, 0]
    assert boot.mean() == pytest.approx(values.mean(), abs=0.005)
    assert boot.std() == pytest.approx(values.std() / np.sqrt(2000), rel=0.08)


def test_block_bootstrap_widens_for_dependent_dates():
    rng = np.random.default_rng(6)
    values = np.convolve(rng.normal(size=3020), np.ones(21), "valid")  # an MA(20): overlapping 21-day sums
    iid = block_bootstrap_means(values[:, None], np.ones(3000), 1, 2000, np.random.default_rng(0))[:, 0]
    blocks = block_bootstrap_means(values[:, None], np.ones(3000), 63, 2000, np.random.default_rng(0))[:, 0]
    assert blocks.std() > 2.5 * iid.std()


def score_frame(probs: pd.DataFrame, panel: pd.DataFrame) -> pd.DataFrame:
    """The walk-forward's probabilities with each row's realised event (0/1) joined."""
    long = []
    for h in HORIZONS:
        for target, column in (("direction", f"fwd_direction_{h}d"), ("significant_move", f"significant_move_{h}d")):
            event = panel[column].astype(float)
            event = (event > 0).astype(float)
            long.append(panel[["ticker", "date"]].assign(target=target, horizon=h, event=event))
    events = pd.concat(long, ignore_index=True)
    return probs.merge(events, on=["ticker", "date", "target", "horizon"]).assign(model="logistic")
