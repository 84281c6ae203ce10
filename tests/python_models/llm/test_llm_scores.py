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


def test_the_time_series_models_are_scored_on_the_llms_own_rows_only():
    signals = _signals()
    signals = signals[signals["model"] == "a"]
    keys = signals[["ticker", "date", "horizon", "y_true"]]
    outside = keys.assign(date=keys["date"] + pd.Timedelta(days=365), y_true=-keys["y_true"])  # not an LLM row
    models = pd.concat(
        [
            keys.assign(model="oracle", y_pred=keys["y_true"]),
            keys.assign(model="contrarian", y_pred=-keys["y_true"]),
            outside.assign(model="oracle", y_pred=-outside["y_true"]),
        ]
    ).drop(columns="y_true")
    scores = llm_scores(signals, reps=50, models=models)
    ts = scores[scores["source"] == "time_series"].set_index(["subject", "metric"])
    assert set(ts.index.get_level_values("subject")) == {"oracle", "contrarian"}
    assert ts.loc[("oracle", "directional_accuracy"), "value"] == 1.0
    assert ts.loc[("contrarian", "directional_accuracy"), "value"] == 0.0
    assert ts.loc[("oracle", "directional_accuracy"), "n_signals"] == len(signals)  # the later rows left out
    assert ts.loc[("oracle", "mse_ratio"), "value"] == 0.0 and ts.loc[("contrarian", "mse_ratio"), "value"] == 4.0
    llm = scores[scores["source"] == "llm"]
    assert_frame = llm_scores(signals, reps=50)  # the LLM's own rows do not move with the models beside them
    pd.testing.assert_frame_equal(llm.reset_index(drop=True), assert_frame.reset_index(drop=True))


def test_the_comparison_panel_judges_every_book_on_the_llm_books_sessions():
    from python_models.llm.scores import comparison_table

    signals = _signals()
    keys = signals[["ticker", "date", "horizon"]].drop_duplicates()
    models = keys.assign(model="oracle", y_pred=0.01)
    scores = llm_scores(signals, reps=20, models=models)
    rng = np.random.default_rng(5)
    days = pd.bdate_range("2020-06-01", periods=300)
    daily = pd.concat(
        [
            pd.DataFrame({"strategy": "oracle", "date": days, "net_return": rng.normal(0.0005, 0.01, 300)}),
            pd.DataFrame({"strategy": "llm", "date": days[200:], "net_return": rng.normal(0, 0.01, 100)}),
        ]
    )
    table = comparison_table(scores, daily).set_index(["source", "subject"])
    own = daily[daily["strategy"] == "oracle"].set_index("date")["net_return"].loc[days[200:]]
    assert table.loc[("time_series", "oracle"), "book_sharpe"] == pytest.approx(own.mean() / own.std() * np.sqrt(252))
    llm_book = daily[daily["strategy"] == "llm"]["net_return"]
    assert table.loc[("llm", "all"), "book_sharpe"] == pytest.approx(llm_book.mean() / llm_book.std() * np.sqrt(252))
    assert np.isnan(table.loc[("llm", "a"), "book_sharpe"])  # one model's signals have no book of their own
    assert table.loc[("llm", "all"), "n_signals"] == len(signals)
    assert comparison_table(scores.iloc[:0], daily).empty
