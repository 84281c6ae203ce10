"""SAMoSSA's rank rules and residual models against the random walk on the default (bundled) data.

For each SAMoSSA variant (how many singular components it keeps: Gavish and Donoho's threshold or 90 %
of the energy; how the forecast weighs the signal's move and the residual: the direct in-sample least
squares or the residual's AR(1)) and for the random walk, the walk-forward of the default settings
(756-session window, refit every 63 sessions, forecasts from 2005) on the first ``--tickers`` stocks,
in this process on one thread. Printed per variant and horizon: the MSE of the simple-return forecasts
as a ratio to the random walk's on the same rows (above 1: it loses to the random walk), the hit rate,
and what the fits kept: the ranks chosen and the mean weight of the signal's extrapolated move
(``signal_weight``: 0 ignores it, 1 takes all of it) and of the current residual (``noise_weight``).

Usage: ``python benchmarks/ssa_rank_rules.py [--tickers 20]``
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from bench_models import default_returns
from network_forecasts import realised
from threadpoolctl import threadpool_limits

from python_models.evaluation.walk_forward import WalkForwardConfig, run_walk_forward
from python_models.forecasters.base import Forecaster
from python_models.forecasters.random_walk import RandomWalk
from python_models.forecasters.ssa import Samossa

#: (rank rule, residual model); the first is the default.
VARIANTS = (("threshold", "direct"), ("energy", "direct"), ("threshold", "ar1"), ("energy", "ar1"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=20)
    args = parser.parse_args()
    frames, kept = [], []
    with threadpool_limits(limits=1):
        for ticker, returns in list(default_returns().items())[: args.tickers]:
            models: dict[str, Forecaster] = {"random_walk": RandomWalk()}
            models.update(
                {f"{rule}/{residual}": Samossa(rank_rule=rule, residual=residual) for rule, residual in VARIANTS}
            )
            for name, model in models.items():
                out = run_walk_forward(model, returns, WalkForwardConfig(), start="2005-01-01")
                diagnostics = out.attrs["fit_diagnostics"]
                wanted = diagnostics["diagnostic"].eq("rank") | diagnostics["diagnostic"].str.contains("weight")
                kept.append(diagnostics[wanted].assign(model=name))
                out.attrs = {}
                out["y_true"] = realised(returns, out["asof_date"], out["horizon"])
                frames.append(out.assign(model=name, ticker=ticker))
    rows = pd.concat(frames).dropna(subset=["y_true"])
    rows["se"] = (rows["y_pred"] - rows["y_true"]) ** 2
    wide = rows.pivot_table(index=["ticker", "asof_date", "horizon"], columns="model", values="se").dropna()
    ratio = (
        wide.drop(columns="random_walk")
        .groupby("horizon")
        .mean()
        .div(wide.groupby("horizon")["random_walk"].mean(), axis=0)
    )
    hits = rows.assign(hit=np.sign(rows["y_pred"]) == np.sign(rows["y_true"])).pivot_table(
        index="horizon", columns="model", values="hit"
    )
    print(f"{args.tickers} stocks, forecasts from 2005, one thread; rank rule / residual model")
    print("\nMSE as a ratio to the random walk's")
    print(ratio.round(4).to_string())
    print("\nhit rate")
    print(hits.drop(columns="random_walk").round(4).to_string())
    fits = pd.concat(kept)
    ranks = fits[fits["diagnostic"] == "rank"]
    print("\nranks kept (share of fits)")
    print(pd.crosstab(ranks["model"], ranks["value"].astype(int), normalize="index").round(3).to_string())
    print("\nmean weights of the signal's move and of the residual, by horizon")
    weights = fits[fits["diagnostic"] != "rank"]
    print(weights.pivot_table(index="diagnostic", columns="model", values="value").round(3).to_string())


if __name__ == "__main__":
    main()
