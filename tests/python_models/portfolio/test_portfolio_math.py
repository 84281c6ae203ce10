"""Ensemble weights, Kelly sizing, the backtest and performance statistics against hand versions."""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from python_models.backtest.engine import run_backtest
from python_models.backtest.performance import summarize
from python_models.forecasters.ensemble import combine_forecasts, ensemble_panel
from python_models.forecasters.ensemble_weights import inverse_mse_weights
from python_models.portfolio.sizing import kelly_weights

DATES = pd.bdate_range("2021-01-04", periods=300)


def test_inverse_mse_weights_use_only_realised_errors():
    rng = np.random.default_rng(3)
    sq = pd.DataFrame({"a": rng.uniform(0, 1, 300), "b": rng.uniform(0, 4, 300)}, index=DATES)
    h, window, lam = 5, 50, 0.3
    w = inverse_mse_weights(sq, horizon=h, window=window, shrinkage=lam, min_obs=10)
    i = 200
    mse = sq.iloc[i - h - window + 1 : i - h + 1].mean()  # errors of origins <= i - h only
    inv = 1 / mse
    expected = (1 - lam) * inv / inv.sum() + lam / 2
    assert_allclose(w.iloc[i].to_numpy(), expected.to_numpy())
    # Changing errors that are not yet realised at row i leaves its weights alone.
    later = sq.copy()
    later.iloc[i - h + 1 :] *= 100
    assert_allclose(inverse_mse_weights(later, h, window, lam, 10).iloc[i], w.iloc[i])
    assert_allclose(w.sum(axis=1), 1.0)
    assert (w.iloc[: h + 9] == 0.5).all().all()  # equal until min_obs errors are realised


def test_combine_forecasts_mixture_moments():
    y = pd.DataFrame({"a": [0.01], "b": [-0.02]})
    s = pd.DataFrame({"a": [0.02], "b": [0.04]})
    w = pd.DataFrame({"a": [0.75], "b": [0.25]})
    out = combine_forecasts(y, s, w).iloc[0]
    mean = 0.75 * 0.01 + 0.25 * -0.02
    var = 0.75 * (0.02**2 + 0.01**2) + 0.25 * (0.04**2 + 0.02**2) - mean**2
    assert_allclose(out["y_pred"], mean)
    assert_allclose(out["y_std"], np.sqrt(var))
    assert_allclose(out["confidence"], stats.norm.cdf(abs(mean) / np.sqrt(var)))


def test_ensemble_panel_favours_the_more_accurate_model():
    rng = np.random.default_rng(5)
    y = rng.normal(0, 0.01, 300)
    rows = []
    for model, noise in (("good", 0.002), ("bad", 0.02)):
        rows.append(
            pd.DataFrame(
                {
                    "model": model,
                    "ticker": "A",
                    "asof_date": DATES,
                    "horizon": 1,
                    "target_date": DATES.shift(1, freq="B"),
                    "y_pred": y + rng.normal(0, noise, 300),
                    "y_std": 0.01,
                    "y_true": y,
                }
            )
        )
    ens, weights = ensemble_panel(pd.concat(rows, ignore_index=True), window=60, shrinkage=0.2)
    # the weights in force at each origin: rows are stored only where they change
    wide = weights.assign(model=weights["model"].astype(str)).pivot(index="asof_date", columns="model", values="weight")
    late = wide.reindex(DATES).ffill().loc[DATES[101] :].mean()
    assert late["good"] > 0.85 and late["bad"] < 0.15
    assert len(ens) == 300 and set(ens["model"]) == {"ensemble"}


def test_kelly_weights_formula_caps_and_gross_limit():
    mu = pd.DataFrame({"A": [0.001, 0.01], "B": [-0.01, 0.01], "C": [0.0005, 0.01]})
    sd = pd.DataFrame({"A": [0.05, 0.1], "B": [0.05, 0.1], "C": [0.1, 0.1]})
    w = kelly_weights(mu, sd, fraction=0.5, cap=0.6, max_gross=1.0)
    assert_allclose(w.iloc[0].to_numpy(), [0.5 * 0.001 / 0.0025, 0.0, 0.5 * 0.0005 / 0.01])
    # Row 1: each raw 0.5 -> capped at 0.5 < 0.6, gross 1.5 -> scaled to 1.
    assert_allclose(w.iloc[1].to_numpy(), [1 / 3] * 3)
    shorts = kelly_weights(mu, sd, cap=0.1, long_only=False)
    assert shorts.iloc[0]["B"] == pytest.approx(-0.1)


def test_kelly_weights_zero_or_missing_std_gives_no_position():
    mu = pd.DataFrame({"A": [0.01, 0.01]})
    sd = pd.DataFrame({"A": [0.0, np.nan]})
    assert (kelly_weights(mu, sd) == 0).all().all()
    with pytest.raises(ValueError):
        kelly_weights(mu, sd, fraction=0.0)
    with pytest.raises(ValueError):
        kelly_weights(mu, sd, cap=2.0, max_gross=1.0)


def _hand_backtest(weights: pd.DataFrame, returns: pd.DataFrame, bps: float) -> pd.DataFrame:
    held = np.zeros(returns.shape[1])
    out = []
    for t, _date in enumerate(returns.index):
        r = returns.iloc[t].to_numpy()
        gross = float(held @ r)
        drifted = held * (1 + r) / (1 + gross)
        target = weights.iloc[t].to_numpy()
        turnover = np.abs(target - drifted).sum()
        # paid at the close it trades at, the cost is (1 + gross) times its share of that close's value
        out.append((gross, turnover * bps / 1e4 * (1 + gross), turnover))
        held = target
    frame = pd.DataFrame(out, columns=["gross_return", "cost", "turnover"], index=returns.index)
    frame["net_return"] = frame["gross_return"] - frame["cost"]
    return frame


def test_backtest_matches_a_hand_loop_and_compounds_net_returns():
    rng = np.random.default_rng(11)
    returns = pd.DataFrame(rng.normal(0.0005, 0.01, (250, 3)), index=DATES[:250], columns=list("ABC"))
    weights = pd.DataFrame(rng.uniform(0, 0.3, (250, 3)), index=DATES[:250], columns=list("ABC"))
    got = run_backtest(weights, returns, cost_bps=10)
    ref = _hand_backtest(weights, returns, 10)
    assert_allclose(
        got[["gross_return", "cost", "turnover", "net_return"]].to_numpy(),
        ref[["gross_return", "cost", "turnover", "net_return"]].to_numpy(),
        atol=1e-14,
    )
    assert_allclose(got["equity"].to_numpy(), np.cumprod(1 + ref["net_return"].to_numpy()))
    assert (got["drawdown"] <= 0).all()


def test_backtest_never_earns_the_decision_bar():
    returns = pd.DataFrame({"A": [0.0, 0.5, 0.0, -0.1]}, index=DATES[:4])
    weights = pd.DataFrame({"A": [0.0, 1.0, 1.0, 0.0]}, index=DATES[:4])  # bought at the close of day 1
    got = run_backtest(weights, returns, cost_bps=0)
    assert_allclose(got["gross_return"].to_numpy(), [0.0, 0.0, 0.0, -0.1])


def test_buy_and_hold_single_asset_trades_once():
    returns = pd.DataFrame({"X": np.full(10, 0.01)}, index=DATES[:10])
    got = run_backtest(pd.DataFrame({"X": 1.0}, index=returns.index), returns, cost_bps=10)
    assert_allclose(got["turnover"].to_numpy(), [1.0] + [0.0] * 9, atol=1e-12)


def test_backtest_rejects_bad_inputs():
    returns = pd.DataFrame({"A": [0.01, 0.02]}, index=DATES[:2])
    with pytest.raises(ValueError, match="finite"):
        run_backtest(pd.DataFrame({"A": [np.inf, 0.0]}, index=DATES[:2]), returns)
    with pytest.raises(ValueError, match="without returns"):
        run_backtest(pd.DataFrame({"Z": [0.1, 0.1]}, index=DATES[:2]), returns)
    with pytest.raises(ValueError):
        run_backtest(pd.DataFrame({"A": [0.1, 0.1]}, index=DATES[:2]), returns, cost_bps=-1)


def test_summary_statistics_match_hand_formulas():
    rng = np.random.default_rng(2)
    r = pd.Series(rng.normal(0.0004, 0.01, 504), index=DATES.append(pd.bdate_range(DATES[-1], periods=205)[1:]))
    b = pd.Series(rng.normal(0.0003, 0.01, 504), index=r.index)
    s = summarize(r, b, pd.Series(0.02, index=r.index))
    assert_allclose(s["sharpe"], r.mean() / r.std() * np.sqrt(252))
    assert_allclose(s["sortino"], r.mean() / np.sqrt((np.minimum(r, 0) ** 2).mean()) * np.sqrt(252))
    eq = (1 + r).cumprod()
    assert_allclose(s["max_drawdown"], (eq / eq.cummax() - 1).min())
    assert_allclose(s["cagr"], eq.iloc[-1] ** (252 / 504) - 1)
    a = r - b
    assert_allclose(s["information_ratio"], a.mean() / a.std() * np.sqrt(252))
    assert_allclose(s["profit_factor"], r[r > 0].sum() / -r[r < 0].sum())
    assert_allclose(s["hit_rate"], (r > 0).mean())
    assert_allclose(s["turnover"], 0.02 * 252)
    assert s["max_drawdown"] <= 0


def test_performance_statistics_agree_with_empyrical():
    import empyrical as ep

    from python_models.backtest.performance import cagr, max_drawdown, max_drawdown_duration

    rng = np.random.default_rng(21)
    idx = pd.bdate_range("2010-01-01", periods=1500)
    r = pd.Series(rng.normal(0.0003, 0.012, 1500), index=idx)
    r.iloc[0] = -0.03  # a loss on day one: the starting capital is the first peak
    b = pd.Series(rng.normal(0.0002, 0.01, 1500), index=idx)
    s = summarize(r, b, pd.Series(0.0, index=idx), pd.Series(0.8, index=idx))
    assert_allclose(s["sharpe"], ep.sharpe_ratio(r), rtol=1e-12)
    assert_allclose(s["sortino"], ep.sortino_ratio(r), rtol=1e-12)
    assert_allclose(s["max_drawdown"], ep.max_drawdown(r), rtol=1e-12)
    assert_allclose(max_drawdown(r.iloc[:5]), ep.max_drawdown(r.iloc[:5]), rtol=1e-12)
    assert_allclose(s["cagr"], ep.annual_return(r), rtol=1e-12)
    assert_allclose(s["calmar"], ep.calmar_ratio(r), rtol=1e-12)
    assert_allclose(s["volatility"], ep.annual_volatility(r), rtol=1e-12)
    # empyrical's information ratio (excess_sharpe) is per period; ours is annualised like Sharpe
    assert_allclose(s["information_ratio"], ep.excess_sharpe(r, b) * np.sqrt(252), rtol=1e-12)
    assert_allclose(cagr(r), ep.annual_return(r), rtol=1e-12)
    assert s["exposure"] == pytest.approx(0.8)
    # duration: a hand-checkable path (peak, two sessions under water, recovery, one more)
    assert max_drawdown_duration([0.1, -0.1, 0.05, 0.1, -0.01]) == 2
    assert max_drawdown_duration([-0.01, 0.0, 0.0]) == 3


def test_hit_rate_counts_days_that_beat_cash_when_excess_returns_are_given():
    idx = pd.bdate_range("2020-01-01", periods=6)
    net = pd.Series([0.0001, 0.0001, 0.01, -0.01, 0.02, 0.0001], index=idx)  # three days in cash at 1 bp
    excess = net - 0.0001
    zero = pd.Series(0.0, index=idx)
    assert summarize(net, zero, zero)["hit_rate"] == pytest.approx(5 / 6)  # interest counts as wins
    assert summarize(net, zero, zero, excess_return=excess)["hit_rate"] == pytest.approx(2 / 3)
