"""Backtester speed against vectorbt on the same target weights, and agreement.

1. Synthetic: ``--sessions`` (default 100,000) x ``--assets`` (10) seeded daily returns and
   target weights drawn anew every 21 sessions and traded back to every session. pmx's
   ``run_backtest`` (execution at the close, 10 bps per unit traded) and vectorbt's ``Portfolio.from_orders(size_type=
   "targetpercent", cash_sharing=True, call_seq="auto")`` with the same fees run on it.
   Prints the best of ``--repeat`` wall times (vectorbt after a warm-up that compiles its
   numba kernels), the ratio, and the largest difference of the daily net returns (the same
   model without fees; with fees vectorbt pays them from cash as each order of the bar
   fills, so later orders of the bar size against a slightly smaller book, while pmx
   charges them once per bar: a difference of order fee x turnover x weight).
2. The default universe: the inverse-MSE ensemble's weights from ``marts.allocations`` of
   the warehouse ``make run`` built (``--warehouse``), skipped without one.

vectorbt is installed only for this benchmark (``make bench-backtest`` installs it).
Usage: ``python benchmarks/bench_backtest.py [--sessions 100000] [--assets 10]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dagster_pmx.lake import Lake
from python_models.backtest.engine import run_backtest

FEE_BPS = 10.0


def best_time(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def vectorbt_equity(weights: pd.DataFrame, returns: pd.DataFrame, fee_bps: float) -> pd.Series:
    import vectorbt as vbt

    price = 100.0 * (1.0 + returns.fillna(0.0)).cumprod()
    pf = vbt.Portfolio.from_orders(
        price,
        size=weights.reindex(index=returns.index, columns=returns.columns).fillna(0.0),
        size_type="targetpercent",
        cash_sharing=True,
        group_by=True,
        call_seq="auto",
        fees=fee_bps / 1e4,
        init_cash=1.0,
        freq="D",
    )
    return pf.value()


def compare(name: str, weights: pd.DataFrame, returns: pd.DataFrame, repeat: int) -> None:
    vectorbt_equity(weights.iloc[:50], returns.iloc[:50], FEE_BPS)  # compile numba kernels
    for fee in (0.0, FEE_BPS):
        t_pmx, ours = best_time(lambda f=fee: run_backtest(weights, returns, cost_bps=f), repeat)
        t_vbt, theirs = best_time(lambda f=fee: vectorbt_equity(weights, returns, f), repeat)
        theirs_r = theirs.pct_change().fillna(theirs.iloc[0] - 1.0).to_numpy()
        diff = float(np.max(np.abs(ours["net_return"].to_numpy() - theirs_r)))
        print(
            f"{name:<28} fees {fee:>4.0f} bps  pmx {t_pmx * 1e3:8.1f} ms  vectorbt {t_vbt * 1e3:8.1f} ms  "
            f"vectorbt/pmx {t_vbt / t_pmx:5.2f}x  max |daily return difference| {diff:.1e}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--assets", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warehouse", default=str(Path(__file__).resolve().parents[1] / "warehouse" / "pmx.ducklake"))
    args = parser.parse_args(argv)
    try:
        import vectorbt  # noqa: F401
    except ImportError:
        print("vectorbt is not installed: run `make bench-backtest` (installs vectorbt==1.2.0)", file=sys.stderr)
        return 1
    rng = np.random.default_rng(0)
    idx = pd.bdate_range("1700-01-01", periods=args.sessions)
    cols = [f"A{i}" for i in range(args.assets)]
    returns = pd.DataFrame(rng.normal(0.0003, 0.015, (args.sessions, args.assets)), index=idx, columns=cols)
    # new target weights every 21 sessions, re-targeted (drift traded back) every session
    monthly = rng.dirichlet(np.ones(args.assets), args.sessions // 21 + 1) * 0.95
    weights = pd.DataFrame(np.repeat(monthly, 21, axis=0)[: args.sessions], index=idx, columns=cols)
    compare(f"synthetic {args.sessions:,} x {args.assets}", weights, returns, args.repeat)

    path = Path(args.warehouse)
    if not path.exists():
        print(f"no warehouse at {path}: default-universe comparison skipped (run `make run` first)")
        return 0

    with Lake.at(path).open(read_only=True) as con:
        alloc = con.execute(
            "select date, ticker, weight from marts.allocations where strategy = 'ensemble' and sleeve = 'risky'"
        ).df()
        rets = con.execute("select date, ticker, simple_return from intermediate.int_returns").df()
    w = alloc.pivot(index="date", columns="ticker", values="weight")
    r = rets.pivot(index="date", columns="ticker", values="simple_return").sort_index()
    r = r.loc[r.index >= w.index.min(), w.columns]
    compare(f"default universe {len(r):,} x {r.shape[1]}", w, r, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
