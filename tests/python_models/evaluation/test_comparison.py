"""Pairwise model tests, bootstrap intervals and the leaderboard, against hand computations."""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from python_models.evaluation.comparison import bootstrap_interval, leaderboard, pairwise_comparisons, sharpe_ratio


def _forecasts(n_dates=300, tickers=("A", "B", "C"), seed=0) -> pd.DataFrame:
    """random_walk and noise forecast zero plus noise; skill sees half of the outcome."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2015-01-01", periods=n_dates)
    frames = []
    for t in tickers:
        y = rng.normal(0, 0.02, n_dates)
        preds = {
            "random_walk": rng.normal(0, 0.002, n_dates),
            "noise": rng.normal(0, 0.002, n_dates),
            "skill": 0.5 * y + rng.normal(0, 0.002, n_dates),
        }
        for model, p in preds.items():
            frames.append(
                pd.DataFrame({"model": model, "ticker": t, "asof_date": dates, "horizon": 1, "y_pred": p, "y_true": y})
            )
    return pd.concat(frames, ignore_index=True)


def _hand_dm(d: np.ndarray, h: int) -> float:
    """Mean over the lowest m Fourier frequencies of the periodogram, summed by hand (no FFT)."""
    n = len(d)
    m = max(1, min(int(np.floor(np.sqrt(n) + 1e-9)), n // (8 * h)))
    dc = d - d.mean()
    t = np.arange(n)
    power = [
        (dc @ np.cos(2 * np.pi * j * t / n)) ** 2 + (dc @ np.sin(2 * np.pi * j * t / n)) ** 2 for j in range(1, m + 1)
    ]
    return d.mean() / np.sqrt(np.mean(power) / n / n)


def test_pairwise_dm_is_the_dm_of_the_daily_mean_differential_and_finds_planted_skill():
    f = _forecasts()
    f.loc[f.index % 7 == 0, "y_true"] = np.nan  # unrealised rows are dropped
    out = pairwise_comparisons(f).set_index(["model_a", "model_b"])
    assert set(out.index) == {("noise", "random_walk"), ("noise", "skill"), ("random_walk", "skill")}
    loss = (
        f.dropna()
        .assign(l=lambda x: (x.y_pred - x.y_true) ** 2)
        .pivot_table(index=["asof_date", "ticker"], columns="model", values="l")
    )
    d = (loss["random_walk"] - loss["skill"]).groupby(level=0).mean().to_numpy()
    assert_allclose(out.loc[("random_walk", "skill"), "dm_stat"], _hand_dm(d, 1), rtol=1e-10)
    raw = (loss["random_walk"] - loss["skill"]).dropna().to_numpy()
    assert_allclose(out.loc[("random_walk", "skill"), "t_stat"], raw.mean() / (raw.std(ddof=1) / np.sqrt(len(raw))))
    assert out.loc[("random_walk", "skill"), "dm_stat"] > 0 and out.loc[("random_walk", "skill"), "dm_pvalue"] < 1e-6
    assert out.loc[("noise", "random_walk"), "dm_pvalue"] > 0.05  # noise is not better than the baseline


def test_multi_session_horizons_narrow_the_band_of_frequencies():
    f = _forecasts(n_dates=120).assign(horizon=5)
    out = pairwise_comparisons(f).set_index(["model_a", "model_b"])
    loss = f.assign(l=lambda x: (x.y_pred - x.y_true) ** 2).pivot_table(
        index=["asof_date", "ticker"], columns="model", values="l"
    )
    d = (loss["noise"] - loss["skill"]).groupby(level=0).mean().to_numpy()
    assert_allclose(out.loc[("noise", "skill"), "dm_stat"], _hand_dm(d, 5), rtol=1e-10)


def test_bootstrap_sharpe_interval_matches_the_asymptotic_width_and_covers_the_truth():
    rng = np.random.default_rng(3)
    daily_sr = 0.05
    r = rng.normal(daily_sr * 0.01, 0.01, 2000)
    low, high = bootstrap_interval(r, sharpe_ratio, block=1.0, reps=2000, level=0.90, seed=1)
    # Lo (2002), iid returns: se(SR_daily) = sqrt((1 + SR^2 / 2) / n); annualised by sqrt(252)
    se = np.sqrt((1 + daily_sr**2 / 2) / len(r)) * np.sqrt(252)
    assert_allclose(high - low, 2 * stats.norm.ppf(0.95) * se, rtol=0.1)
    assert low < daily_sr * np.sqrt(252) < high
    with pytest.raises(ValueError, match="at least 10"):
        bootstrap_interval(r[:5], np.mean)
    # a book that never traded: every resampled Sharpe ratio is undefined, so is the interval
    low, high = bootstrap_interval(np.zeros(300), sharpe_ratio, reps=200)
    assert np.isnan(low) and np.isnan(high)


def test_leaderboard_ranks_by_loss_and_signs_dm_against_the_baseline():
    f = _forecasts()
    comparisons = pairwise_comparisons(f)
    daily = pd.DataFrame(
        {
            "strategy": "skill",
            "date": pd.bdate_range("2015-01-01", periods=300),
            "net_return": np.random.default_rng(0).normal(0.001, 0.01, 300),
        }
    )
    board = leaderboard(f, comparisons, daily, "random_walk", reps=200)
    assert list(board["model"])[0] == "skill"
    row = board.set_index("model")
    assert row.loc["skill", "rank"] == 1 and row.loc["random_walk", "mse_ratio"] == 1.0
    assert row.loc["skill", "dm_stat"] < 0 and row.loc["skill", "dm_pvalue"] < 1e-6  # better than the baseline
    assert np.isnan(row.loc["random_walk", "dm_stat"])
    assert row.loc["skill", "da_low"] < row.loc["skill", "directional_accuracy"] < row.loc["skill", "da_high"]
    assert row.loc["skill", "sharpe_low"] < row.loc["skill", "sharpe"] < row.loc["skill", "sharpe_high"]
    assert np.isnan(row.loc["noise", "sharpe"])


def test_the_bootstrap_p_value_matches_the_normal_approximation_for_iid_data():
    from python_models.evaluation.comparison import bootstrap_test

    def bootstrap_pvalue(x, statistic, null, block, reps, seed=0):
        return bootstrap_test(x, statistic, null, block=block, reps=reps, seed=seed)[2]

    rng = np.random.default_rng(11)
    x = (rng.uniform(size=3000) < 0.56).astype(float)
    se = x.std() / np.sqrt(x.size)
    for null in (0.54, 0.55, 0.56):
        expected = stats.norm.sf((x.mean() - null) / se)
        got = bootstrap_pvalue(x, np.mean, null, block=1.0, reps=4000, seed=1)
        assert abs(got - expected) < 0.03, (null, got, expected)
    assert bootstrap_pvalue(x, np.mean, x.mean(), block=1.0, reps=2000) == pytest.approx(0.5, abs=0.05)


def test_design_targets_report_accuracy_and_hit_rate_against_the_design_thresholds():
    from python_models.evaluation.comparison import design_targets

    rng = np.random.default_rng(12)
    dates = pd.bdate_range("2015-01-01", periods=400)
    y = rng.normal(0, 0.02, (400, 10))
    rows = []
    for name, pred in (("skill", y + rng.normal(0, 0.01, y.shape)), ("coin", rng.normal(0, 0.02, y.shape))):
        for j in range(10):
            rows.append(
                pd.DataFrame(
                    {"model": name, "ticker": f"T{j}", "asof_date": dates, "y_pred": pred[:, j], "y_true": y[:, j]}
                )
            )
    daily = pd.DataFrame({"strategy": "s", "date": dates, "net_return": rng.normal(0.001, 0.01, 400)})
    out = design_targets(pd.concat(rows), daily, horizon=1, reps=300).set_index(["metric", "subject"])
    skill, coin = out.loc[("directional_accuracy", "skill")], out.loc[("directional_accuracy", "coin")]
    assert skill["value"] > 0.8 and skill["met"] and skill["significant"] and skill["pvalue_chance"] < 0.01
    assert abs(coin["value"] - 0.5) < 0.03 and not coin["significant"] and coin["pvalue_target"] > 0.5
    hit = out.loc[("hit_rate", "s")]
    r = daily["net_return"]
    assert (
        hit["value"] == pytest.approx((r > 0).mean())
        and hit["target"] == 0.52
        and hit["low"] < hit["value"] < hit["high"]
    )


def _reference_pairwise(forecasts: pd.DataFrame) -> pd.DataFrame:
    """The pooled comparisons in one pass over the whole frame, as pmx computed them before the
    validation worked in ticker batches: pandas' pivot, its daily mean and scipy's paired t-test."""
    from python_models.evaluation.metrics import dm_test

    done = forecasts.dropna(subset=["y_true", "y_pred"])
    rows = []
    for horizon, g in done.groupby("horizon", sort=True):
        loss = g.assign(loss=(g["y_pred"] - g["y_true"]) ** 2).pivot_table(
            index=["asof_date", "ticker"], columns="model", values="loss", aggfunc="first"
        )
        models = sorted(loss.columns)
        for i, a in enumerate(models):
            for b in models[i + 1 :]:
                pair = loss[[a, b]].dropna()
                daily = (pair[a] - pair[b]).groupby(level="asof_date").mean().sort_index()
                dm_stat, dm_p = dm_test(daily.to_numpy(), int(horizon))
                t_stat, t_p = stats.ttest_rel(pair[a], pair[b])
                rows.append(
                    {
                        "horizon": int(horizon),
                        "model_a": a,
                        "model_b": b,
                        "n_dates": len(daily),
                        "n_obs": len(pair),
                        "mse_a": pair[a].mean(),
                        "mse_b": pair[b].mean(),
                        "dm_stat": dm_stat,
                        "dm_pvalue": dm_p,
                        "t_stat": t_stat,
                        "t_pvalue": t_p,
                    }
                )
    return pd.DataFrame(rows)


def test_evidence_added_a_ticker_batch_at_a_time_gives_the_one_pass_statistics():
    from python_models.evaluation.comparison import PooledEvidence, design_targets

    f = pd.concat([_forecasts(tickers=tuple("ABCDEFG"), seed=s).assign(horizon=h) for s, h in ((3, 1), (4, 5))])
    f.loc[f.index % 11 == 0, "y_true"] = np.nan
    f = f[~((f["model"] == "noise") & (f["ticker"] == "C") & (f["asof_date"] < "2015-06-01"))]  # unequal coverage
    batched = PooledEvidence()
    for tickers in (["A", "B", "C"], ["D"], ["E", "F", "G"]):
        batched.add(f[f["ticker"].isin(tickers)])
    got = batched.comparisons()
    expected = _reference_pairwise(f)
    assert len(got) == 2 * 3
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-12, atol=0)
    daily = pd.DataFrame({"strategy": "skill", "date": f["asof_date"].unique(), "net_return": 0.001})
    whole = leaderboard(f, pairwise_comparisons(f), daily, "random_walk", reps=100)
    pd.testing.assert_frame_equal(leaderboard(batched, got, daily, "random_walk", reps=100), whole, rtol=1e-12)
    at_5 = f[f["horizon"] == 5].drop(columns="horizon")
    governed = at_5[at_5["model"] == "skill"].assign(model="governed")
    pd.testing.assert_frame_equal(
        design_targets(governed, daily, 5, reps=100, evidence=batched),
        design_targets(pd.concat([at_5, governed]), daily, 5, reps=100),
        rtol=1e-12,
    )


def test_the_backtests_design_targets_sharpe_stress_drawdown_and_worst_regime():
    from python_models.backtest.performance import max_drawdown, sharpe_ratio
    from python_models.evaluation.comparison import design_targets, stress_drawdown, worst_regime_sharpe

    rng = np.random.default_rng(5)
    dates = pd.bdate_range("2007-01-01", periods=900)
    calm = rng.normal(0.0012, 0.004, 900)  # Sharpe ~ 4.8: beyond 1.2
    wild = rng.normal(0.0002, 0.02, 900)
    wild[300:340] = -0.01  # a 33 % fall inside the first stress window
    daily = pd.concat(
        [
            pd.DataFrame({"strategy": "calm", "date": dates, "net_return": calm}),
            pd.DataFrame({"strategy": "wild", "date": dates, "net_return": wild}),
        ]
    )
    regimes = pd.Series(np.where(np.arange(900) % 200 < 120, 0, 1), index=dates)
    windows = [(str(dates[250].date()), str(dates[449].date())), (str(dates[700].date()), str(dates[799].date()))]
    empty = pd.DataFrame(columns=["model", "ticker", "asof_date", "y_pred", "y_true"])
    out = design_targets(empty, daily, 21, reps=300, regimes=regimes, stress_windows=windows)
    out = out.set_index(["metric", "subject"])
    for name, r in (("calm", calm), ("wild", wild)):
        assert out.loc[("sharpe", name), "value"] == pytest.approx(sharpe_ratio(r), rel=1e-12)
        deepest = max(-max_drawdown(r[250:450]), -max_drawdown(r[700:800]))
        assert out.loc[("stress_max_drawdown", name), "value"] == pytest.approx(deepest, rel=1e-12)
        by_regime = [sharpe_ratio(r[regimes.to_numpy() == k]) for k in (0, 1)]
        assert out.loc[("worst_regime_sharpe", name), "value"] == pytest.approx(min(by_regime), rel=1e-9)
        assert np.isnan(out.loc[("sharpe", name), "pvalue_chance"])
    calm_rows, wild_rows = out.xs("calm", level="subject"), out.xs("wild", level="subject")
    assert calm_rows.loc["sharpe", "met"] and calm_rows.loc["sharpe", "significant"]
    assert calm_rows.loc["stress_max_drawdown", "met"] and calm_rows.loc["stress_max_drawdown", "pvalue_target"] < 0.05
    assert (
        not wild_rows.loc["stress_max_drawdown", "met"] and wild_rows.loc["stress_max_drawdown", "pvalue_target"] > 0.5
    )
    assert not wild_rows.loc["sharpe", "met"] and calm_rows.loc["worst_regime_sharpe", "met"]
    for metric in ("sharpe", "stress_max_drawdown", "worst_regime_sharpe"):
        row = calm_rows.loc[metric]
        assert row["low"] <= row["value"] <= row["high"] or metric == "stress_max_drawdown"
    # the pieces against their definitions
    x = rng.normal(0, 0.01, 60)
    assert stress_drawdown(x, [20, 40]) == pytest.approx(max(-max_drawdown(x[:20]), -max_drawdown(x[20:])))
    rows = np.column_stack([x, np.r_[np.zeros(30), np.ones(20), np.full(10, 2)]])
    expected = min(sharpe_ratio(x[:30]), sharpe_ratio(x[30:50]))  # regime 2 has fewer than 21 sessions
    assert worst_regime_sharpe(rows) == pytest.approx(expected, rel=1e-9)


def test_a_constant_book_has_no_sharpe_target_to_test():
    from python_models.evaluation.comparison import design_targets

    dates = pd.bdate_range("2015-01-01", periods=60)
    # a book that never traded: no net return, and below a cash rate of 1 bp a day
    daily = pd.DataFrame({"strategy": "cash", "date": dates, "net_return": 0.0, "excess_return": -1e-4})
    empty = pd.DataFrame(columns=["model", "ticker", "asof_date", "y_pred", "y_true"])
    row = design_targets(empty, daily, 21, reps=50).set_index("metric").loc["sharpe"]
    assert np.isnan(row["value"]) and np.isnan(row["pvalue_target"]) and not row["met"] and not row["significant"]
