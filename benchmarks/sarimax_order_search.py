"""SARIMAX's automatic order: the approximate search against fitting every order exactly, on real windows.

Usage: ``python benchmarks/sarimax_order_search.py [--warehouse warehouse/pmx.ducklake] [--tickers 20]``
(about 15 minutes for 20 tickers on 2 cores, after ``make run``).

For each ticker, one 756-session window a year (the default training window, from the 1,000th
session of its returns): the order search ``sarimax_auto`` used before (every ARMA(p, q) with
p, q <= 2 fitted by maximum likelihood, the lowest AIC among fits that converged) against the one it
uses now (:func:`~python_models.forecasters.sarimax.approximate_order_search`, then one exact fit).
Printed: how often the approximate search's best non-seasonal order is the exact search's, how far
its exact AIC is from the exact best (AIC points), how often it chooses the weekly seasonal term,
the seconds per fit of the old search, the new one and the fixed ARMA(1, 1), and the orders chosen.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dagster_pmx.reader import connect  # noqa: E402
from python_models.forecasters.sarimax import _SCALE, Sarimax, approximate_order_search  # noqa: E402

WINDOW = 756


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warehouse", default="warehouse/pmx.ducklake")
    parser.add_argument("--tickers", type=int, default=20)
    args = parser.parse_args()
    con = connect(args.warehouse)
    returns = con.sql(
        "select ticker, date, log_return from intermediate.int_returns"
        " where log_return is not null order by ticker, date"
    ).df()
    exact_search, fixed = Sarimax(order="auto"), Sarimax()
    agree = seasonal = 0
    gaps, chosen = [], {}
    seconds = {"exact search": 0.0, "approximate search + one fit": 0.0, "fixed ARMA(1,1)": 0.0}
    windows = 0
    for ticker in sorted(returns["ticker"].unique())[: args.tickers]:
        series = returns[returns["ticker"] == ticker].set_index("date")["log_return"]
        for end in range(WINDOW + 1000, len(series), 252):
            window = series.iloc[end - WINDOW : end]
            t0 = time.perf_counter()
            fits = [
                (order, *exact_search._fit_order(window, order))
                for order in [(p, 0, q) for p in range(3) for q in range(3)]
            ]
            aic = {f[0]: f[2].aic for f in fits if f[3]}
            best = min(aic, key=aic.__getitem__)
            seconds["exact search"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            fit = Sarimax(order="auto").fit(window)
            seconds["approximate search + one fit"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            fixed.fit(window)
            seconds["fixed ARMA(1,1)"] += time.perf_counter() - t0
            ranked = approximate_order_search(_SCALE * window.to_numpy(), 2)
            plain = next(c for c in ranked if c.seasonal_p == 0)
            agree += (plain.p, 0, plain.q) == best
            gaps.append(aic.get((plain.p, 0, plain.q), np.nan) - aic[best])
            seasonal += int(fit.diagnostics["seasonal_p"])
            key = (fit.order[0], fit.order[2], int(fit.diagnostics["seasonal_p"]))
            chosen[key] = chosen.get(key, 0) + 1
            windows += 1
    gap = np.array(gaps)
    print(f"windows: {windows}")
    print(f"approximate best non-seasonal order = exact AIC's: {agree} ({agree / windows:.0%})")
    print(
        f"its exact AIC above the exact best: median {np.nanmedian(gap):.2f}, 90th percentile "
        f"{np.nanpercentile(gap, 90):.2f}, within 2 points in {np.mean(gap < 2):.0%}"
    )
    print(f"weekly seasonal AR term chosen: {seasonal} ({seasonal / windows:.0%})")
    print("seconds per fit: " + ", ".join(f"{k} {v / windows:.3f}" for k, v in seconds.items()))
    print("orders chosen (p, q, seasonal p): " + str(dict(sorted(chosen.items(), key=lambda kv: -kv[1]))))


if __name__ == "__main__":
    main()
