"""The drawdown control's two modes on the default build: how far each traded strategy's drawdown runs
past the 15 % line, over the whole backtest and in the stress windows, and what holding the line costs.

Reads the decisions ``make run`` stored (``ml.strategy_decisions``, before the risk limits) from the
warehouse, applies the ES limit and then the drawdown control in each mode exactly as the
``allocations`` asset does (``_control``), and backtests the result with the run's settings. Prints,
per strategy and mode: the worst drawdown from the all-time peak (the book's own, whatever the
control's peak resets), its overshoot past the line, the worst drawdown within 2008-09 and 2020, the
Sharpe ratio, CAGR, the share of sessions not at full size, the mean turnover, the control's passes
and seconds.

Usage: ``.venv/bin/python benchmarks/drawdown_modes.py [--warehouse warehouse/pmx.ducklake]``
"""

from __future__ import annotations

import argparse
import time

from dagster_pmx.defs.backtest.engine import backtester, decisions_of, load_market
from dagster_pmx.defs.portfolio import assets
from dagster_pmx.defs.portfolio.reads import stored_decisions
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.backtest.performance import PERIODS_PER_YEAR, cagr, max_drawdown, sharpe_ratio
from python_models.portfolio import risk_limits
from python_models.portfolio.books import book_of

WINDOWS = {"2008-09": ("2008-01-01", "2009-12-31"), "2020": ("2020-01-01", "2020-12-31")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default="warehouse/pmx.ducklake")
    args = parser.parse_args()
    warehouse = Warehouse(path=args.warehouse)
    base = PmxSettings()
    rows = stored_decisions(warehouse)
    wide = {s: book_of(g.drop(columns="strategy")) for s, g in rows.groupby("strategy")}
    first = min(book.index.min() for book in wide.values())
    market = load_market(warehouse, first)
    scenarios = assets._scenario_returns(warehouse, market)
    passes = {"n": 0}
    drawdown_states = risk_limits.drawdown_states

    def counted(*a, **k):
        passes["n"] += 1
        return drawdown_states(*a, **k)

    risk_limits.drawdown_states = counted  # count the fixed point's passes
    print(
        f"{'strategy':<12} {'mode':<9} {'worst dd':>9} {'past 15%':>9} {'2008-09':>8} {'2020':>8} {'sharpe':>7} "
        f"{'cagr':>7} {'reduced':>8} {'turnover':>9} {'passes':>7} {'seconds':>8}"
    )
    for mode in ("de_risk", "hard_cap"):
        settings = base.model_copy(update={"drawdown_mode": mode})
        passes["n"] = 0
        started = time.perf_counter()
        controlled, states, _ = assets._control(settings, market, wide, None, None, scenarios)
        seconds = time.perf_counter() - started
        run = backtester(settings, market)
        for strategy, table in controlled.items():
            daily = run(decisions_of(table))
            net = daily["net_return"].dropna()
            years = len(net) / PERIODS_PER_YEAR
            worst = max_drawdown(net)
            windows = [max_drawdown(net.loc[a:b]) for a, b in WINDOWS.values()]
            own = states[states["strategy"] == strategy]
            print(
                f"{strategy:<12} {mode:<9} {worst:>9.2%} {max(0.0, -worst - settings.drawdown_de_risk):>9.2%} "
                f"{windows[0]:>8.2%} {windows[1]:>8.2%} {sharpe_ratio(net):>7.3f} "
                f"{cagr(net):>7.2%} {(own['scale'] < 1).mean():>8.1%} "
                f"{daily['turnover'].sum() / years:>9.2f} {passes['n']:>7} {seconds:>8.1f}"
            )


if __name__ == "__main__":
    main()
