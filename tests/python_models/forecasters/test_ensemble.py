"""Ensemble variants: constrained stacking and regime-conditioned weights against hand versions."""

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import optimize

from python_models.forecasters.ensemble import VARIANTS, ensemble_panel
from python_models.forecasters.ensemble_weights import (
    _hold,
    inverse_mse_weights,
    regime_weights,
    simplex_least_squares,
    stacking_weights,
)

DATES = pd.bdate_range("2020-01-01", periods=400)


def test_simplex_least_squares_matches_a_general_constrained_solver():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.01, (200, 4))
    y = x @ np.array([0.5, 0.3, 0.0, 0.2]) + rng.normal(0, 0.01, 200)
    w = simplex_least_squares(x, y)
    ref = optimize.minimize(
        lambda v: np.sum((x @ v - y) ** 2) * 1e4,
        np.full(4, 0.25),
        method="SLSQP",
        bounds=[(0, 1)] * 4,
        constraints={"type": "eq", "fun": lambda v: v.sum() - 1},
        options={"ftol": 1e-14, "maxiter": 500},
    ).x
    assert_allclose(w, ref, atol=1e-5)
    assert w.min() >= 0 and w.sum() == pytest.approx(1.0)


def _two_models(seed=1, n=400):
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 0.01, n)
    signal = y - rng.normal(0, 0.004, n)  # a model that knows most of y
    pred = pd.DataFrame({"a": signal, "b": rng.normal(0, 0.01, n)}, index=DATES[:n])
    return pred, pd.Series(y, index=DATES[:n])


def test_stacking_weights_fit_only_realised_rows_on_the_schedule():
    pred, y = _two_models()
    h, window, every = 5, 100, 20
    w = stacking_weights(pred, y, h, window=window, shrinkage=0.0, min_obs=50, reweight_every=every)
    i = 300  # a re-weighting row (300 % 20 == 0)
    expected = simplex_least_squares(
        pred.iloc[i - h - window + 1 : i - h + 1].to_numpy(), y.iloc[i - h - window + 1 : i - h + 1].to_numpy()
    )
    assert_allclose(w.iloc[i].to_numpy(), expected)
    assert_allclose(w.iloc[i + every - 1].to_numpy(), expected)  # held until the next re-weighting
    assert w.iloc[i, 0] > 0.8  # the informative model dominates
    future = y.copy()
    future.iloc[i - h + 1 :] = 1.0  # values not yet realised at row i
    assert_allclose(stacking_weights(pred, future, h, window, 0.0, 50, every).iloc[i], w.iloc[i])
    shrunk = stacking_weights(pred, y, h, window=window, shrinkage=0.4, min_obs=50, reweight_every=every)
    assert_allclose(shrunk.iloc[i].to_numpy(), 0.6 * expected + 0.4 * 0.5)
    assert (w.iloc[:60] == 0.5).all().all()  # too few realised rows: equal weights


def test_regime_weights_reduce_to_inverse_mse_with_one_regime():
    pred, y = _two_models()
    sq = pred.sub(y, axis=0) ** 2
    one = pd.DataFrame({0: 1.0}, index=sq.index)
    got = regime_weights(sq, one, 5, window=100, shrinkage=0.3, min_obs=20, reweight_every=1, prior_obs=0.0)
    assert_allclose(got.to_numpy(), inverse_mse_weights(sq, 5, 100, 0.3, 20).to_numpy())


def test_regime_weights_follow_todays_regime_and_match_a_hand_computation():
    rng = np.random.default_rng(2)
    n = 400
    state = (np.arange(n) // 25) % 2  # regimes alternate every 25 sessions
    probs = pd.DataFrame({0: np.where(state == 0, 0.9, 0.1), 1: np.where(state == 0, 0.1, 0.9)}, index=DATES)
    # model a is accurate in regime 0, model b in regime 1
    err_a = np.where(state == 0, 0.001, 0.02) * rng.standard_normal(n)
    err_b = np.where(state == 1, 0.001, 0.02) * rng.standard_normal(n)
    sq = pd.DataFrame({"a": err_a**2, "b": err_b**2}, index=DATES)
    h, window, kappa = 1, 200, 5.0
    w = regime_weights(sq, probs, h, window=window, shrinkage=0.0, min_obs=20, prior_obs=kappa)
    i = 310
    past = sq.iloc[i - h - window + 1 : i - h + 1]
    p_past = probs.iloc[i - h - window + 1 : i - h + 1]
    overall = past.mean()
    expected_mse = sum(
        probs.iloc[i][r] * (past.mul(p_past[r], axis=0).sum() + kappa * overall) / (p_past[r].sum() + kappa)
        for r in (0, 1)
    )
    inv = 1 / expected_mse
    assert_allclose(w.iloc[i].to_numpy(), (inv / inv.sum()).to_numpy())
    regime0 = w[(state == 0) & (np.arange(n) > 250)]
    regime1 = w[(state == 1) & (np.arange(n) > 250)]
    assert regime0["a"].mean() > 0.7 and regime1["b"].mean() > 0.7
    plain = inverse_mse_weights(sq, h, window, 0.0, 20)[np.arange(n) > 250]
    assert 0.3 < plain["a"].mean() < 0.7  # without the regimes neither model stands out


def test_ensemble_panel_builds_every_variant_with_weights_summing_to_one():
    pred, y = _two_models(n=300)
    rows = [
        pd.DataFrame(
            {
                "model": m,
                "ticker": "A",
                "asof_date": DATES[:300],
                "horizon": 1,
                "target_date": DATES[1:301],
                "y_pred": pred[m].to_numpy(),
                "y_std": 0.01,
                "y_true": y.to_numpy(),
            }
        )
        for m in ("a", "b")
    ]
    regimes = pd.DataFrame({"date": DATES, "regime": 0, "probability": 1.0})
    ens, weights = ensemble_panel(
        pd.concat(rows), window=100, methods=("inverse_mse", "stacking", "regime"), regimes=regimes
    )
    assert set(ens["model"]) == {"ensemble", "ensemble_stacking", "ensemble_regime"}
    assert len(ens) == 900
    sums = weights.groupby(["ensemble", "ticker", "horizon", "asof_date"])["weight"].sum()
    assert_allclose(sums.to_numpy(), 1.0)
    with pytest.raises(ValueError, match="regime probabilities"):
        ensemble_panel(pd.concat(rows), methods=("regime",))
    with pytest.raises(ValueError, match="methods"):
        ensemble_panel(pd.concat(rows), methods=("median",))


def test_the_latest_origins_alone_give_the_whole_historys_rows_on_a_calendar_grid():
    """What the daily refresh relies on: with the re-weighting days fixed by the calendar, the
    last origins computed from a tail of window + horizon + 2 x reweight_every origins equal
    the whole history's."""
    rng = np.random.default_rng(11)
    calendar = pd.bdate_range("2015-01-01", periods=900)
    rows = []
    for ticker in ("A", "B"):
        truth = rng.normal(0, 0.01, len(calendar))
        for model, noise in (("m1", 0.005), ("m2", 0.01), ("m3", 0.02)):
            for h in (1, 5):
                rows.append(
                    pd.DataFrame(
                        {
                            "model": model,
                            "ticker": ticker,
                            "asof_date": calendar[40:],
                            "horizon": h,
                            "target_date": calendar[40:],
                            "y_pred": truth[40:] + rng.normal(0, noise, len(calendar) - 40),
                            "y_std": noise,
                            "y_true": truth[40:],
                        }
                    )
                )
    frame = pd.concat(rows, ignore_index=True)
    regimes = pd.DataFrame(
        {"date": np.repeat(calendar, 2), "regime": np.tile([0, 1], len(calendar)), "probability": 0.5}
    )
    kwargs = dict(window=126, reweight_every=21, methods=tuple(VARIANTS), regimes=regimes, calendar=calendar)
    whole, whole_w = ensemble_panel(frame, **kwargs)
    since = calendar[-4]
    first = calendar[calendar.searchsorted(since) - (126 + 5 + 2 * 21)]
    tail, tail_w = ensemble_panel(frame[frame["asof_date"] >= first], **kwargs)
    new = lambda f: f[f["asof_date"] > since].sort_values(["model", "ticker", "horizon", "asof_date"])  # noqa: E731
    pd.testing.assert_frame_equal(new(tail).reset_index(drop=True), new(whole).reset_index(drop=True), rtol=1e-12)
    key = ["ensemble", "ticker", "horizon", "model", "asof_date"]
    got = tail_w[tail_w["asof_date"] > since].sort_values(key).reset_index(drop=True)
    want = whole_w[whole_w["asof_date"] > since].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_categorical=False, rtol=1e-12)
    # after=: only the new origins come back, and they are the same rows
    only_new, only_new_w = ensemble_panel(frame[frame["asof_date"] >= first], **kwargs, after=since)
    assert only_new["asof_date"].min() > since and len(only_new) == len(new(whole))
    pd.testing.assert_frame_equal(new(only_new).reset_index(drop=True), new(tail).reset_index(drop=True))
    got_after = only_new_w.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got_after, got, check_categorical=False)
    # without the calendar the grid moves with the first origin, and the tail's weights would differ
    shifted, _ = ensemble_panel(frame[frame["asof_date"] >= calendar[calendar.searchsorted(first) + 3]],
                                **{**kwargs, "calendar": None})  # fmt: skip
    assert not np.allclose(new(shifted)["y_pred"].to_numpy(), new(whole)["y_pred"].to_numpy(), rtol=1e-9)


def test_weights_are_stored_where_they_change_and_the_latest_row_gives_each_origins_combination():
    """ml.ensemble_weights keeps a row set per re-estimation that moved the weights (inverse MSE and
    stacking hold theirs for reweight_every sessions; the regime weights move daily): the weights in
    force at an origin, taken as of its date (DuckDB's ASOF JOIN), recombine the models' forecasts
    into the ensemble's mean at every origin."""
    rng = np.random.default_rng(4)
    calendar = pd.bdate_range("2018-01-01", periods=420)
    truth = rng.normal(0, 0.01, len(calendar))
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "model": model,
                    "ticker": "A",
                    "asof_date": calendar,
                    "horizon": 1,
                    "target_date": calendar.shift(1, freq="B"),
                    "y_pred": truth + rng.normal(0, noise, len(calendar)),
                    "y_std": noise,
                    "y_true": truth,
                }
            )
            for model, noise in (("m1", 0.004), ("m2", 0.01), ("m3", 0.02))
        ],
        ignore_index=True,
    )
    regimes = pd.DataFrame(
        {"date": np.repeat(calendar, 2), "regime": np.tile([0, 1], len(calendar)), "probability": 0.5}
    )
    regimes["probability"] = np.where(regimes["regime"] == 0, 0.2, 0.8) + np.repeat(
        rng.uniform(-0.1, 0.1, len(calendar)), 2
    ) * np.where(regimes["regime"] == 0, 1, -1)
    # power 1: at the default power m1 (4 times less noise) takes all it can whatever the regime
    ens, weights = ensemble_panel(
        frame, window=126, reweight_every=21, methods=tuple(VARIANTS), regimes=regimes, calendar=calendar, power=1.0
    )
    dates = weights.groupby("ensemble", observed=True)["asof_date"].nunique()
    assert dates["ensemble"] <= len(calendar) // 21 + 2 and dates["ensemble_stacking"] <= len(calendar) // 21 + 2
    assert dates["ensemble_regime"] > len(calendar) // 2  # today's regime moves them every session
    # the weights in force at each origin: the latest stored row at or before it
    origins = ens[["model", "asof_date"]].rename(columns={"model": "ensemble"})
    in_force = []
    for (variant, model), rows in weights.groupby(["ensemble", "model"], observed=True):
        at = origins[origins["ensemble"] == variant].sort_values("asof_date")
        w = pd.merge_asof(at, rows[["asof_date", "weight"]].sort_values("asof_date"), on="asof_date")
        in_force.append(w.assign(model=model))
    w = pd.concat(in_force, ignore_index=True)
    assert w["weight"].notna().all()
    preds = frame.rename(columns={"y_pred": "model_pred"})[["model", "asof_date", "model_pred"]]
    mean = (
        w.merge(preds, on=["model", "asof_date"])
        .assign(part=lambda f: f["weight"] * f["model_pred"])
        .groupby(["ensemble", "asof_date"])["part"]
        .sum()
    )
    want = ens.set_index(["model", "asof_date"])["y_pred"].rename_axis(["ensemble", "asof_date"])
    assert_allclose(mean.reindex(want.index).to_numpy(), want.to_numpy(), rtol=1e-12, atol=1e-15)
    # the SQL docs/models.md gives an analyst for the weights in force gives the same rows
    con = duckdb.connect()
    con.execute("create schema ml")
    con.register("ens", ens)
    con.register("w", weights.astype({"ensemble": str, "ticker": str, "model": str}))
    con.execute("create table ml.ensemble_forecasts as select * from ens")
    con.execute("create table ml.ensemble_weights as select * from w")
    doc = (Path(__file__).parents[3] / "docs" / "models.md").read_text()
    query = doc.split("```sql\nwith origins as", 1)[1].split("```", 1)[0]
    got = con.execute("with origins as" + query).df().sort_values(["asof_date", "model"]).reset_index(drop=True)
    plain = w[w["ensemble"] == "ensemble"].sort_values(["asof_date", "model"]).reset_index(drop=True)
    assert_allclose(got["weight"].to_numpy(), plain["weight"].to_numpy(), rtol=0)
    assert (got["model"].to_numpy() == plain["model"].to_numpy()).all() and len(got) == 3 * len(calendar)


def test_holding_the_scheduled_rows_is_pandas_mask_then_forward_fill():
    """The NumPy hold keeps, per column, the last non-NaN value of a scheduled row (a scheduled NaN
    keeps the previous one; nothing before the first value)."""
    rng = np.random.default_rng(3)
    values = rng.normal(size=(40, 3))
    values[rng.random((40, 3)) < 0.3] = np.nan
    frame = pd.DataFrame(values, index=DATES[:40], columns=["a", "b", "c"])
    grid = rng.random(40) < 0.25
    want = frame.where(pd.Series(grid, index=frame.index), axis=0).ffill()
    pd.testing.assert_frame_equal(_hold(frame, 5, grid), want)
    every_fifth = frame.where(pd.Series(np.arange(40) % 5 == 0, index=frame.index), axis=0).ffill()
    pd.testing.assert_frame_equal(_hold(frame, 5), every_fifth)


@pytest.mark.parametrize("use_grid", [False, True])
def test_series_stacked_with_labels_get_the_weights_each_gets_alone(use_grid):
    # three (ticker, horizon) series of different lengths, stacked as ensemble_panel stacks them:
    # no window, lag or held weight may reach from one into the next
    rng = np.random.default_rng(11)
    lengths, h, models = [260, 90, 200], 5, ["a", "b", "c"]
    pred = [pd.DataFrame(rng.normal(0, 0.01, (n, 3)), index=DATES[:n], columns=models) for n in lengths]
    true = [pd.Series(p.mean(axis=1) + rng.normal(0, 0.01, len(p))).where(rng.random(len(p)) > 0.05) for p in pred]
    sq = [p.sub(t, axis=0) ** 2 for p, t in zip(pred, true, strict=True)]
    grids = [(np.arange(n) + k) % 21 == 0 if use_grid else None for k, n in enumerate(lengths)]
    regimes = pd.DataFrame(rng.dirichlet([1, 1], len(DATES)), index=DATES, columns=[0, 1])
    by = np.repeat([0, 1, 2], lengths)
    grid = np.concatenate(grids) if use_grid else None
    every = 1 if not use_grid else 21
    stacked = {
        "inverse_mse": inverse_mse_weights(pd.concat(sq), h, 60, 0.3, 20, every, grid, by=by),
        "stacking": stacking_weights(pd.concat(pred), pd.concat(true), h, 60, 0.3, 30, 21, grid, by=by),
        "regime": regime_weights(
            pd.concat(sq), regimes.reindex(pd.concat(sq).index), h, 60, 0.3, 20, every, grid=grid, by=by
        ),
    }
    bounds = np.cumsum([0, *lengths])
    for i in range(3):
        alone = {
            "inverse_mse": inverse_mse_weights(sq[i], h, 60, 0.3, 20, every, grids[i]),
            "stacking": stacking_weights(pred[i], true[i], h, 60, 0.3, 30, 21, grids[i]),
            "regime": regime_weights(sq[i], regimes.reindex(sq[i].index), h, 60, 0.3, 20, every, grid=grids[i]),
        }
        for name, weights in alone.items():
            got = stacked[name].iloc[bounds[i] : bounds[i + 1]]
            pd.testing.assert_frame_equal(got, weights, check_exact=True, check_freq=False)


def test_inverse_mse_weights_raise_the_inverse_mse_to_the_power():
    pred, y = _two_models()
    sq = pred.sub(y, axis=0) ** 2
    sq["c"] = sq["b"] * 1.1
    h, window, lam, i = 5, 100, 0.2, 300
    w = inverse_mse_weights(sq, h, window, lam, 20, power=4.0)
    mse = sq.iloc[i - h - window + 1 : i - h + 1].mean()
    hand = mse**-4.0 / (mse**-4.0).sum()
    assert_allclose(w.iloc[i].to_numpy(), ((1 - lam) * hand + lam / 3).to_numpy(), rtol=1e-12)
    assert_allclose(inverse_mse_weights(sq, h, window, lam, 20, power=0.0).iloc[i].to_numpy(), 1 / 3)
    # a power of several hundred would overflow mse ** -power; the weights stay finite and sum to one
    steep = inverse_mse_weights(sq, h, window, 0.0, 20, power=400.0).iloc[window + h :]
    assert np.isfinite(steep.to_numpy()).all() and np.allclose(steep.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="power"):
        inverse_mse_weights(sq, h, window, lam, 20, power=-1.0)


def _degrading_panel(seed: int, horizon: int, start: int, n: int = 800, worse: float = 4.0) -> pd.DataFrame:
    """Five models with equal skill (each the predictable part of y plus its own noise) until row
    ``start``, from where model m0's noise is ``worse`` times larger (its MSE ~60 % higher)."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2015-01-01", periods=n + horizon)
    signal = rng.normal(0, 0.002, n)
    y = signal + rng.standard_t(5, n) * 0.01 * np.sqrt(3 / 5)  # fat tails, like daily returns
    rows = []
    for k in range(5):
        noise = rng.normal(0, 0.002, n)
        if k == 0:
            noise[start:] *= worse
        rows.append(
            pd.DataFrame(
                {
                    "model": f"m{k}",
                    "ticker": "A",
                    "asof_date": dates[:n],
                    "horizon": horizon,
                    "target_date": dates[horizon : n + horizon],
                    "y_pred": signal + noise,
                    "y_std": 0.01,
                    "y_true": y,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def _weights_in_force(weights: pd.DataFrame, origins: pd.Index) -> pd.DataFrame:
    wide = weights.assign(weight=weights["weight"].astype(float)).pivot(
        index="asof_date", columns="model", values="weight"
    )
    return wide.reindex(origins).ffill()


def test_a_model_that_degrades_loses_most_of_its_weight_within_four_reestimations():
    """Issue 21, item 3, with the shipped settings (DEFAULT_POWER, DEFAULT_SHRINKAGE): a model whose
    errors grow by ~60 % keeps less than half of its weight from the fourth re-estimation after its
    first bad error is realised (84 sessions); Bates and Granger's inverse MSE (power 1) shrunk by
    half, pmx's setting before, kept more than 80 % of it."""
    start, every = 500, 21
    frame = _degrading_panel(seed=0, horizon=1, start=start)
    origins = pd.Index(frame["asof_date"].unique())
    fourth = [r for r in range(start + 1, len(origins)) if r % every == 0][
        3
    ]  # the error at start is known at start + 1

    def kept(**settings) -> float:
        w = _weights_in_force(ensemble_panel(frame, **settings)[1], origins)["m0"]
        return float(w.iloc[fourth] / w.iloc[start - 200 : start + 1].mean())

    assert kept() < 0.5
    assert kept(power=1.0, shrinkage=0.5) > 0.8


def test_the_power_is_divided_by_the_horizon():
    """An h-session forecast's weights use power / h: its trailing errors overlap, about window / h
    of them independent."""
    frame = _degrading_panel(seed=1, horizon=5, start=500)
    origins = pd.Index(frame["asof_date"].unique())
    got = _weights_in_force(ensemble_panel(frame, power=30.0, shrinkage=0.2)[1], origins)
    wide = frame.pivot(index="asof_date", columns="model", values="y_pred")
    sq = wide.sub(frame.drop_duplicates("asof_date").set_index("asof_date")["y_true"], axis=0) ** 2
    want = inverse_mse_weights(sq, 5, 252, 0.2, 21, reweight_every=21, power=6.0)
    assert_allclose(got.to_numpy()[300:], want.to_numpy()[300:], rtol=1e-12)
