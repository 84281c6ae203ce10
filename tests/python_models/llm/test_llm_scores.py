"""The LLM source's scores against hand computations on seeded signals."""

import numpy as np
import pandas as pd
import pytest

from python_models.evaluation.metrics import dm_test
from python_models.llm.scores import COLUMNS, MIN_DATES, llm_scores


def _signals(n_dates: int = 60, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2021-01-04", periods=n_dates)
    rows = []
    for model in ("a", "b"):
        for ticker in ("T1", "T2", "T3"):
            y = rng.normal(0.002, 0.05, n_dates)
            skill = 0.4 if model == "a" else 0.0
            rows.append(
                pd.DataFrame(
                    {
                        "model": model,
                        "ticker": ticker,
                        "date": dates,
                        "horizon": 21,
                        "expected_return": skill * y + rng.normal(0, 0.02, n_dates),
                        "y_true": y,
                    }
                )
            )
    out = pd.concat(rows, ignore_index=True)
    direction = np.where(
        out["expected_return"].abs() <= 0.001, "flat", np.where(out["expected_return"] > 0, "up", "down")
    )
    return out.assign(direction=direction, called_at=out["date"] + pd.Timedelta(hours=20))  # asked live


def test_the_scores_are_the_hand_computations():
    signals = _signals()
    scores = llm_scores(signals, reps=200)
    assert set(scores["basis"]) == {"live"}
    scores = scores.set_index(["subject", "metric"])
    assert list(llm_scores(signals, reps=10).columns) == COLUMNS
    for subject, rows in [("all", signals), ("a", signals[signals["model"] == "a"])]:
        hits = rows["direction"].map({"up": 1, "down": -1, "flat": 0}) == np.sign(rows["y_true"])
        accuracy = scores.loc[(subject, "directional_accuracy")]
        assert accuracy["value"] == pytest.approx(hits.mean())
        assert accuracy["low"] < accuracy["value"] < accuracy["high"] and 0 <= accuracy["pvalue"] <= 1
        assert accuracy["n_signals"] == len(rows) and accuracy["n_dates"] == 60
        assert scores.loc[(subject, "always_up_accuracy"), "value"] == pytest.approx((rows["y_true"] > 0).mean())
        mse = ((rows["expected_return"] - rows["y_true"]) ** 2).mean() / (rows["y_true"] ** 2).mean()
        assert scores.loc[(subject, "mse_ratio"), "value"] == pytest.approx(mse)
        d = (
            ((rows["expected_return"] - rows["y_true"]) ** 2 - rows["y_true"] ** 2)
            .groupby(rows["date"])
            .mean()
            .to_numpy()
        )
        stat, p_two = dm_test(d, 21)
        dm = scores.loc[(subject, "dm_stat")]
        assert dm["value"] == pytest.approx(stat)
        assert dm["pvalue"] == pytest.approx(p_two / 2 if stat < 0 else 1 - p_two / 2)
    # the skilled model is right more often and loses less than the random walk; the unskilled one is not
    assert scores.loc[("a", "directional_accuracy"), "value"] > scores.loc[("b", "directional_accuracy"), "value"]
    assert scores.loc[("a", "mse_ratio"), "value"] < 1 < scores.loc[("b", "mse_ratio"), "value"]
    assert scores.loc[("a", "dm_stat"), "pvalue"] < 0.05


def test_backfilled_signals_are_scored_apart_from_live_ones():
    signals = _signals()
    late = signals["date"] >= signals["date"].unique()[30]
    signals.loc[late, "called_at"] = signals.loc[late, "date"] + pd.Timedelta(days=400)  # asked a year later
    scores = llm_scores(signals, reps=50)
    n = scores[(scores["metric"] == "directional_accuracy") & (scores["subject"] == "all")].set_index("basis")
    assert n.loc["live", "n_dates"] == 30 and n.loc["backfill", "n_dates"] == 30
    assert n["n_signals"].sum() == len(signals)
    # a flat signal is right only when nothing moved: its direction is scored, not its tiny expected return
    flat = signals.assign(direction="flat", expected_return=0.0005, called_at=signals["date"])
    assert llm_scores(flat, reps=10).query("metric == 'directional_accuracy'")["value"].eq(0).all()


def test_too_few_dates_give_the_values_without_intervals_and_nothing_gives_no_rows():
    few = llm_scores(_signals(n_dates=MIN_DATES - 1), reps=10).set_index(["subject", "metric"])
    assert np.isfinite(few.loc[("all", "directional_accuracy"), "value"])
    assert few[["low", "high", "pvalue"]].isna().all().all()
    empty = llm_scores(_signals().iloc[:0])
    assert empty.empty and list(empty.columns) == COLUMNS
    with pytest.raises(ValueError, match="lack columns"):
        llm_scores(_signals().drop(columns="y_true"))
