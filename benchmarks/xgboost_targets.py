"""Can the pooled XGBoost learn anything from the feature library, and on which target? (issue 21)

On a built warehouse (``make run``), the pooled booster of ``python_models/forecasters/boosting.py`` (its
features, tree parameters, validation block with the purge, early stopping and refit on the whole window) is
walked forward over the default data, refit every ``--refit`` sessions on the last ``--window``, on two targets:

``absolute``
    the volatility-standardised forward log return, ``fwd / (sigma sqrt(h))``: what the model forecasts today;
``relative``
    the same, less its cross-sectional mean over the tickers that date: which stocks beat the others, the
    question a pooled cross-sectional model is best placed to answer, and the one a long-short book trades.

Out of sample, from ``--since`` (``make run``'s first origin) on, per horizon and target: the mean daily
**rank IC** (Spearman correlation across tickers of the prediction with the realised target) with a 90 %
circular-block bootstrap interval over dates (block: the horizon, since labels overlap), the **R²** of the
standardised absolute forecast against a zero forecast (the absolute target only), the prediction's IC on each
half of the dates, and, as controls that learn nothing, the rank IC of the 252-session momentum (``ret_252d``)
and of the 21-session reversal (``-ret_21d``) on the same rows.

Usage: ``PYTHONPATH=. .venv/bin/python benchmarks/xgboost_targets.py [--warehouse W] [--horizons 5,21,63]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import xgboost as xgb

from dagster_pmx.lake import Lake
from python_models.forecasters.boosting import PooledXgboost, daily_scale, feature_columns, forward_returns
from python_models.resampling import circular_block_indices

REPS = 1000


def walk_forward(panel: pd.DataFrame, h: int, target: str, window: int, refit: int, model: PooledXgboost) -> pd.Series:
    """Out-of-sample predictions (aligned with ``panel``'s rows; NaN before the first refit)."""
    dates = pd.DatetimeIndex(np.sort(panel["date"].unique()))
    pos = dates.get_indexer(panel["date"])
    features = feature_columns(panel)
    x = panel[features].to_numpy(float)
    y = label(panel, h, target)
    out = np.full(len(panel), np.nan)
    params = {**model.params, "nthread": 2}
    for start in range(window, len(dates), refit):
        train = (pos >= start - window) & (pos + h < start) & np.isfinite(y)  # labels known at the origin
        cut = start - int(window * model.validation)
        fit, val = train & (pos + h < cut), train & (pos >= cut)
        probe = xgb.train(
            params,
            xgb.DMatrix(x[fit], label=y[fit]),
            num_boost_round=model.max_rounds,
            evals=[(xgb.DMatrix(x[val], label=y[val]), "val")],
            early_stopping_rounds=model.early_stopping,
            verbose_eval=False,
        )
        booster = xgb.train(params, xgb.DMatrix(x[train], label=y[train]), num_boost_round=probe.best_iteration + 1)
        test = (pos >= start) & (pos < start + refit)
        out[test] = booster.predict(xgb.DMatrix(x[test]))
    return pd.Series(out, index=panel.index)


def label(panel: pd.DataFrame, h: int, target: str) -> np.ndarray:
    y = forward_returns(panel, h) / (daily_scale(panel) * np.sqrt(h))
    if target == "relative":
        y = y - pd.Series(y).groupby(panel["date"].to_numpy()).transform("mean").to_numpy()
    return y


def rank_ic(frame: pd.DataFrame, column: str, h: int, seed: int = 0) -> tuple[float, float, float, int]:
    """Mean daily Spearman IC of ``column`` with ``y`` and its 90 % circular-block bootstrap interval."""
    rows = frame.dropna(subset=[column, "y"])
    ranks = rows.groupby("date")[[column, "y"]].rank()
    ic = ranks.groupby(rows["date"]).corr().xs(column, level=1)["y"].dropna()
    values = ic.to_numpy()
    draws = circular_block_indices(np.random.default_rng(seed), len(values), len(values), h, REPS)
    means = values[draws].mean(axis=1)
    return float(values.mean()), float(np.quantile(means, 0.05)), float(np.quantile(means, 0.95)), len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default="warehouse/pmx.ducklake")
    parser.add_argument("--horizons", default="5,21,63")
    parser.add_argument("--window", type=int, default=756)
    parser.add_argument("--refit", type=int, default=126)
    parser.add_argument(
        "--since", default="2005-01-03", help="first out-of-sample date scored (make run's first origin)"
    )
    args = parser.parse_args()
    with Lake.at(args.warehouse).open(read_only=True) as con:
        panel = con.execute(
            "select f.*, r.log_return from marts.features as f join intermediate.int_returns as r using (ticker, date) "
            "where f.ticker <> 'SP500' order by f.date, f.ticker"
        ).df()
    panel = panel[panel["has_price"]].reset_index(drop=True)
    model = PooledXgboost()
    rows = []
    for h in (int(x) for x in args.horizons.split(",")):
        for target in ("absolute", "relative"):
            start = time.perf_counter()
            pred = walk_forward(panel, h, target, args.window, args.refit, model)
            frame = pd.DataFrame(
                {
                    "date": panel["date"],
                    "pred": pred,
                    "y": label(panel, h, target),
                    "momentum": panel["ret_252d"],
                    "reversal": -panel["ret_21d"],
                }
            )
            frame = frame[frame["pred"].notna() & (frame["date"] >= pd.Timestamp(args.since))]
            row = {"horizon": h, "target": target, "seconds": round(time.perf_counter() - start, 1)}
            for name in ("pred", "momentum", "reversal"):
                mean, low, high, n = rank_ic(frame, name, h)
                row |= {f"{name}_ic": mean, f"{name}_low": low, f"{name}_high": high}
            row["dates"] = n
            # the same IC on each half of the out-of-sample dates: an edge that lives in one half is not one
            middle = np.sort(frame["date"].unique())[n // 2]
            for half, part in (
                ("first_half_ic", frame[frame["date"] < middle]),
                ("second_half_ic", frame[frame["date"] >= middle]),
            ):
                row[half] = rank_ic(part, "pred", h)[0]
            if target == "absolute":
                done = frame.dropna(subset=["y"])
                row["r2"] = 1.0 - float(((done["pred"] - done["y"]) ** 2).mean() / (done["y"] ** 2).mean())
            rows.append(row)
            print(pd.DataFrame([row]).round(4).to_string(index=False), flush=True)
    print()
    print(pd.DataFrame(rows).round(4).to_markdown(index=False))


if __name__ == "__main__":
    main()
