"""Signal confidence, the trade gate, flip damping and feature drift against hand computations."""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from python_models.governance.confidence import CONFIDENCE_WEIGHTS, signal_confidence, trailing_skill, width_score
from python_models.governance.drift import feature_drift, population_stability_index
from python_models.governance.policy import GovernancePolicy, pivot_mean
from python_models.governance.signals import flip_count, flip_counts, governed_signals, model_signals

DATES = pd.bdate_range("2019-01-01", periods=400)


def test_confidence_is_the_documented_weighted_mean_and_stays_in_bounds():
    comp = pd.DataFrame(
        {
            "probability": [0.5, 1.0, 0.7],
            "accuracy": [0.5, 1.0, 0.6],
            "agreement": [0.5, 1.0, 0.0],
            "width": [0.5, 1.0, 0.4],
            "fit": [0.5, 1.0, 0.55],
            "variance_ratio": [0.5, 1.0, np.nan],
            "classifier": [0.5, 1.0, 0.8],
        }
    )
    got = signal_confidence(comp)
    hand = (
        0.20 * 0.7 + 0.25 * 0.6 + 0.15 * 0.0 + 0.10 * 0.4 + 0.10 * 0.55 + 0.10 * 0.5 + 0.10 * 0.8
    )  # missing -> neutral
    assert_allclose(got, [0.5, 1.0, hand])
    assert sum(CONFIDENCE_WEIGHTS.values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        signal_confidence(comp.assign(fit=1.5))
    with pytest.raises(ValueError, match="missing"):
        signal_confidence(comp.drop(columns="width"))


def test_trailing_skill_uses_only_realised_forecasts():
    rng = np.random.default_rng(0)
    y = pd.Series(rng.normal(0, 0.01, 400), index=DATES)
    pred = 0.5 * y + pd.Series(rng.normal(0, 0.005, 400), index=DATES)
    h, w = 5, 100
    got = trailing_skill(pred, y, h, window=w, min_obs=50)
    i = 300
    past_p, past_y = pred.iloc[i - h - w + 1 : i - h + 1], y.iloc[i - h - w + 1 : i - h + 1]
    assert_allclose(got["accuracy"].iloc[i], (np.sign(past_p) == np.sign(past_y)).mean())
    r2 = 1 - ((past_p - past_y) ** 2).sum() / (past_y**2).sum()
    assert_allclose(got["fit"].iloc[i], 0.5 + np.clip(5 * r2, -0.5, 0.5))
    future = y.copy()
    future.iloc[i - h + 1 :] = -future.iloc[i - h + 1 :]
    assert_allclose(trailing_skill(pred, future, h, w, 50).iloc[i], got.iloc[i])
    assert (got.iloc[: h + 49] == 0.5).all().all()
    widths = pd.Series(np.r_[np.full(30, 2.0), [1.0]])
    assert width_score(widths, window=31, min_obs=21).iloc[-1] == pytest.approx(1 / (1 + 1 / 2.0))


def _forecast_rows(models: dict, y):
    rows = []
    for m, p in models.items():
        rows.append(
            pd.DataFrame(
                {
                    "model": m,
                    "ticker": "A",
                    "asof_date": DATES,
                    "horizon": 1,
                    "y_pred": p,
                    "y_std": 0.01,
                    "y_lower": p - 0.02,
                    "y_upper": p + 0.02,
                    "y_true": y,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_model_signals_components_and_gate():
    rng = np.random.default_rng(1)
    y = rng.normal(0, 0.01, 400)
    f = _forecast_rows({"ensemble": 0.8 * y + rng.normal(0, 0.002, 400), "a": -y, "b": np.full(400, 0.001)}, y)
    sig = model_signals(f, horizon=1, single_models=["a", "b"])
    ens = sig[sig["model"] == "ensemble"].set_index("asof_date")
    own, a, b = np.sign(ens["y_pred"]), -np.sign(y), 1.0
    assert_allclose(ens["agreement"], ((own == a).astype(float) + (own == b)) / 2)
    assert_allclose(ens["probability"], stats.norm.cdf(ens["y_pred"].abs() / 0.01))
    assert sig["confidence"].between(0, 1).all()
    late = ens.iloc[200:]
    assert late["accuracy"].min() > 0.85  # the skilled model's trailing accuracy
    policy = GovernancePolicy(horizon=1)
    active = pd.Series("ensemble", index=DATES)
    active.iloc[350:] = ""  # everything stopped
    gov = governed_signals(sig, active, policy).set_index("asof_date")
    assert (gov["model"] == "ensemble").all() and len(gov) == 400
    assert (gov.iloc[350:]["block_reason"] == "model_stopped").all() and not gov.iloc[350:]["tradable"].any()
    low = gov.iloc[:350]
    expected = np.select([low["confidence"] < 0.55, low["flips"] > 4], ["low_confidence", "flip_flopping"], "")
    assert (low["block_reason"].fillna("").to_numpy() == expected).all()
    assert (low["block_reason"] == "low_confidence").any()
    assert (low["tradable"] == low["block_reason"].isna()).all()
    assert (low.loc[low["tradable"], "confidence"] >= 0.55).all()


def test_flip_flopping_signals_are_rejected():
    direction = pd.Series([1, -1, 1, -1, 1, -1, 1, 1, 1, 1, 1, 1])
    assert list(flip_count(direction, 5)) == [0, 1, 2, 3, 4, 5, 5, 4, 3, 2, 1, 0]
    sig = pd.DataFrame(
        {"model": "ensemble", "ticker": "A", "asof_date": DATES[:12], "y_pred": direction * 0.01, "confidence": 0.9}
    )
    policy = GovernancePolicy(flip_window=5, max_flips=3)
    gov = governed_signals(sig, pd.Series("ensemble", index=DATES[:12]), policy)
    assert list(gov["block_reason"].fillna("")) == [""] * 4 + ["flip_flopping"] * 4 + [""] * 4


def test_flip_counts_of_every_ticker_at_once_equal_each_tickers_own():
    rng = np.random.default_rng(3)
    for window in (1, 3, 5, 21):
        tickers = np.repeat(["A", "B", "C", "D"], [1, 30, 7, 45])  # one ticker of a single row
        direction = rng.choice([-1, 0, 1], len(tickers))
        frame = pd.DataFrame({"ticker": tickers, "direction": direction})
        own = frame.groupby("ticker", sort=False)["direction"].transform(flip_count, window)
        assert (flip_counts(direction, tickers, window) == own.astype(int).to_numpy()).all()
    assert len(flip_counts(np.array([], int), np.array([], str), 5)) == 0


def test_pivot_mean_is_pivot_table():
    rows = pd.DataFrame(
        {
            "ticker": ["A", "A", "A", "B", "B", "C"],
            "asof_date": pd.to_datetime(
                ["2024-01-02", "2024-01-02", "2024-01-03", "2024-01-02", "2024-01-02", "2024-01-02"]
            ),
            "model": ["m1", "m2", "m1", "m1", "m1", "m3"],
            "y_pred": [0.1, -0.2, np.nan, 0.3, 0.5, np.nan],  # B's m1 twice: their mean; C's only value NaN: gone
        }
    )
    # the later model's row first, the only model that sorts first all NaN: the columns still sorted
    unsorted = pd.DataFrame(
        {
            "ticker": ["B", "B", "C"],
            "asof_date": pd.to_datetime(["2023-01-23", "2023-01-18", "2023-01-24"]),
            "model": ["m3", "m4", "m2"],
            "y_pred": [0.87, 0.10, np.nan],
        }
    )
    for frame in (rows, unsorted):
        expected = frame.pivot_table(index=["ticker", "asof_date"], columns="model", values="y_pred")
        pd.testing.assert_frame_equal(
            pivot_mean(frame, ["ticker", "asof_date"], "model", "y_pred"), expected, check_exact=True
        )


def test_psi_matches_the_hand_formula_and_drift_is_flagged():
    ref = np.arange(100.0)  # deciles of 0..99 hold 10 values each
    recent = np.r_[np.full(50, 5.0), np.full(50, 95.0)]  # half in the first decile, half in the last
    p = np.full(10, 0.1)
    q = np.r_[0.5, np.full(8, 1e-4), 0.5]
    hand = float(np.sum((q - p) * np.log(q / p)))
    assert population_stability_index(ref, recent) == pytest.approx(hand)
    assert population_stability_index(ref, ref) == pytest.approx(0.0)
    rng = np.random.default_rng(2)
    dates = pd.bdate_range("2015-01-01", periods=900)
    x = rng.normal(0, 1, 900)
    x[-63:] += 2.0  # a shift in the last quarter
    feats = pd.DataFrame({"date": dates, "stable": rng.normal(0, 1, 900), "shifted": x})
    out = feature_drift(feats, [dates[-1]], train_window=756, recent_window=63).set_index("feature")
    assert out.loc["shifted", "drifted"] and not out.loc["stable", "drifted"]
    assert feature_drift(feats, [dates[100]]).empty  # not enough history to judge


def test_trailing_components_by_label_equal_each_series_on_its_own():
    # three series of different lengths back to back, NaN outcomes among them: the grouped windows
    # and lags must never reach into the previous series
    rng = np.random.default_rng(3)
    lengths = [300, 40, 260]
    label = pd.Series(np.repeat([0, 1, 2], lengths))
    y_pred = pd.Series(rng.normal(0, 0.01, sum(lengths)))
    y_true = pd.Series(y_pred + rng.normal(0, 0.02, sum(lengths))).where(rng.random(sum(lengths)) > 0.1)
    width = pd.Series(rng.uniform(0.01, 0.05, sum(lengths)))
    skill = trailing_skill(y_pred, y_true, 5, window=60, min_obs=20, by=label)
    widths = width_score(width, window=60, by=label)
    for value in range(3):
        rows = label == value
        own = trailing_skill(y_pred[rows], y_true[rows], 5, window=60, min_obs=20)
        pd.testing.assert_frame_equal(skill[rows], own, check_exact=True)
        pd.testing.assert_series_equal(widths[rows], width_score(width[rows], window=60), check_exact=True)
    # the second series starts neutral: its first min_obs + horizon - 1 origins have too few realised
    # forecasts of its own (a window reaching into the first series would have had enough)
    assert (skill.loc[label == 1, "accuracy"].iloc[: 20 + 5 - 1] == 0.5).all()
