"""The inverse-MSE ensemble under several weightings, on a built warehouse's base forecasts.

Usage: ``python benchmarks/ensemble_weighting.py [--warehouse warehouse/pmx.ducklake]
[--settings 1:0.5,30:0.2] [--since 2006-01-01]`` (about a minute per setting on 2 cores, after
``make run``).

Each setting is ``power:shrinkage`` (``ensemble_power`` and ``ensemble_shrinkage``; window 252,
re-estimated every 21 sessions, as shipped). For each, :func:`~python_models.forecasters.ensemble.ensemble_panel`
recombines ``ml.base_forecasts`` (the single models' walk-forward forecasts, which no ensemble
setting changes) and prints per horizon, over the origins from ``--since`` with a realised outcome:

* ``mse/rw``: the ensemble's MSE over the random walk's, pooled over tickers;
* ``hit``: the share of origins whose forecast has the realised return's sign;
* ``tickers better``: the share of tickers whose ensemble MSE is below the random walk's;
* the weights' 5th percentile, median, 95th percentile and maximum over every stored weight;

and the mean weight of each model at the signal horizon (21 sessions). The settings are compared on
the data they were chosen from: an in-sample comparison, not an out-of-sample test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dagster_pmx.reader import connect  # noqa: E402
from python_models.forecasters.ensemble import ensemble_panel  # noqa: E402

SIGNAL_HORIZON = 21


def base_forecasts(warehouse: str) -> tuple[pd.DataFrame, pd.DatetimeIndex]:
    con = connect(warehouse)
    frame = con.sql(
        """
        select f.model, f.ticker, f.asof_date, f.horizon, f.target_date, f.y_pred, f.y_std, r.fwd_return as y_true
        from ml.base_forecasts as f
        left join intermediate.int_forward_returns as r
            on r.ticker = f.ticker and r.date = f.asof_date and r.horizon = f.horizon
        """
    ).df()
    calendar = pd.DatetimeIndex(con.sql("select distinct date from intermediate.int_returns order by 1").df()["date"])
    return frame, calendar


def evaluate(frame: pd.DataFrame, calendar: pd.DatetimeIndex, power: float, shrinkage: float, since: str):
    ensemble, weights = ensemble_panel(
        frame, shrinkage=shrinkage, power=power, methods=("inverse_mse",), calendar=calendar
    )
    key = ["ticker", "horizon", "asof_date"]
    walk = frame[frame["model"] == "random_walk"].set_index(key)[["y_pred", "y_true"]]
    scored = ensemble.set_index(key)[["y_pred"]].join(walk.rename(columns={"y_pred": "rw"}))
    scored = scored[scored["y_true"].notna() & (scored.index.get_level_values("asof_date") >= pd.Timestamp(since))]
    weights = weights.assign(weight=weights["weight"].astype(float), model=weights["model"].astype(str))
    rows = []
    for h, g in scored.groupby(level="horizon"):
        loss = (g["y_pred"] - g["y_true"]) ** 2
        loss_rw = (g["rw"] - g["y_true"]) ** 2
        by_ticker = (loss - loss_rw).groupby(level="ticker").mean()
        w = weights.loc[weights["horizon"] == h, "weight"]
        rows.append(
            {
                "power": power,
                "shrinkage": shrinkage,
                "horizon": h,
                "mse/rw": loss.mean() / loss_rw.mean(),
                "hit": float((np.sign(g["y_pred"]) == np.sign(g["y_true"])).mean()),
                "tickers better": float((by_ticker < 0).mean()),
                "w p05": w.quantile(0.05),
                "w median": w.median(),
                "w p95": w.quantile(0.95),
                "w max": w.max(),
            }
        )
    at_signal = weights[weights["horizon"] == SIGNAL_HORIZON].groupby("model")["weight"].mean()
    return pd.DataFrame(rows), at_signal.rename(f"{power}:{shrinkage}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warehouse", default="warehouse/pmx.ducklake")
    parser.add_argument("--settings", default="1:0.5,30:0.2", help="power:shrinkage, comma-separated")
    parser.add_argument("--since", default="2006-01-01", help="first origin scored (the weights warm up before)")
    args = parser.parse_args()
    frame, calendar = base_forecasts(args.warehouse)
    tables, means = [], []
    for setting in args.settings.split(","):
        power, shrinkage = (float(x) for x in setting.split(":"))
        table, mean = evaluate(frame, calendar, power, shrinkage, args.since)
        tables.append(table)
        means.append(mean)
    pd.set_option("display.width", 200)
    print(pd.concat(tables, ignore_index=True).round(4).to_string(index=False))
    print(f"\nmean weight per model at h = {SIGNAL_HORIZON}:")
    print(pd.concat(means, axis=1).round(3).to_string())


if __name__ == "__main__":
    main()
