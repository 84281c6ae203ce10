"""The neural forecasters against the random walk on the default (bundled) data.

The walk-forward of the default settings (756-session window, each model's own refit cadence,
forecasts from 2005) for each model named and for the random walk, on the first ``--tickers``
stocks, in this process on one thread; then, per model and horizon, the MSE of the simple-return
forecasts as a ratio to the random walk's on the same rows, the hit rate and the share of positive
forecasts. A ratio above 1 is a model that loses to the random walk.

Usage: ``python benchmarks/network_forecasts.py [--tickers 4] [--models tcn,lstm]``
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from bench_models import default_returns
from threadpoolctl import threadpool_limits

from python_models.evaluation.walk_forward import WalkForwardConfig, run_walk_forward
from python_models.forecasters.registry import MODELS


def realised(returns: pd.Series, asof: pd.Series, horizon: pd.Series) -> np.ndarray:
    """The simple return from the close of each ``asof`` over the next ``horizon`` sessions (NaN beyond)."""
    cum = np.concatenate([[0.0], np.cumsum(returns.to_numpy())])  # cum[i + 1]: log level at returns.index[i]
    start = returns.index.get_indexer(asof)
    end = start + horizon.to_numpy()
    out = np.full(len(start), np.nan)
    inside = end < len(returns)
    out[inside] = np.expm1(cum[end[inside] + 1] - cum[start[inside] + 1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=4)
    parser.add_argument("--models", default="tcn,lstm")
    args = parser.parse_args()
    models = ["random_walk", *[m for m in args.models.split(",") if m != "random_walk"]]
    frames = []
    with threadpool_limits(limits=1):
        for ticker, returns in list(default_returns().items())[: args.tickers]:
            for name in models:
                out = run_walk_forward(MODELS[name](), returns, WalkForwardConfig(), start="2005-01-01")
                out.attrs = {}  # the fits: not needed, and not comparable when the frames are joined
                out["y_true"] = realised(returns, out["asof_date"], out["horizon"])
                frames.append(out.assign(model=name, ticker=ticker))
    rows = pd.concat(frames).dropna(subset=["y_true"])
    rows["se"] = (rows["y_pred"] - rows["y_true"]) ** 2
    wide = rows.pivot_table(index=["ticker", "asof_date", "horizon"], columns="model", values="se").dropna()
    table = pd.DataFrame(
        {
            "mse_vs_random_walk": wide.drop(columns="random_walk")
            .groupby("horizon")
            .mean()
            .div(wide.groupby("horizon")["random_walk"].mean(), axis=0)
            .stack(),
            "hit_rate": rows.assign(hit=np.sign(rows["y_pred"]) == np.sign(rows["y_true"]))
            .groupby(["horizon", "model"])["hit"]
            .mean(),
            "positive": rows.assign(up=rows["y_pred"] > 0).groupby(["horizon", "model"])["up"].mean(),
        }
    ).dropna(subset=["mse_vs_random_walk"])
    print(f"{args.tickers} stocks, forecasts from 2005, one thread")
    print(table.round(4).to_string())


if __name__ == "__main__":
    main()
