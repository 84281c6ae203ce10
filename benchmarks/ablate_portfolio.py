"""Where the traded strategies' numbers come from: each one re-run with one piece switched off.

Reads a built warehouse (``make run`` first) and re-runs the barbell and governed books through
the pipeline's backtester with the pipeline's settings:

* execution at the close of the decision (the old convention) instead of the next close;
* without the drawdown control;
* the barbell without the bond proxy (its safe sleeve all cash);
* the barbell's risky sleeve alone (no safe-sleeve return at all: cash at 0).

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/ablate_portfolio.py``
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from dagster_pmx.config import load_config
from dagster_pmx.defs.backtest.engine import backtester, load_market, read_books
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.backtest.performance import summarize
from python_models.portfolio.allocation import BOND


def main() -> None:
    warehouse = Warehouse(path=load_config().warehouse)
    settings = PmxSettings.from_env()
    books = read_books(warehouse, ["barbell", "governed", "risk_parity"])
    market = load_market(warehouse, min(b.index.min() for b in books.values()))
    bench = market.returns[settings.benchmark].fillna(0.0)
    scale = warehouse.query("select strategy, date, scale from marts.drawdown_control")
    scale["date"] = pd.to_datetime(scale["date"])
    run = backtester(settings, market)
    at_close = backtester(settings.model_copy(update={"execution": "close"}), market)
    no_cash_rate = backtester(settings, dataclasses.replace(market, cash_rate=market.cash_rate * 0.0))
    rows = []
    for strategy, book in books.items():
        s = scale[scale["strategy"] == strategy].set_index("date")["scale"].reindex(book.index)
        risky = [c for c in book.columns if c != BOND]
        uncontrolled = book.copy()
        uncontrolled[risky] = book[risky].div(s.where(s > 0), axis=0).fillna(0.0)  # undo the scale (0: unknown)
        variants = {
            "as built": run(book),
            "execution at the decision's close": at_close(book),
            "no drawdown control": run(uncontrolled.loc[s > 0]),
        }
        if strategy == "barbell":
            variants["no bond (safe sleeve all cash)"] = run(book.drop(columns=[BOND]))
            variants["risky sleeve only (cash earns 0)"] = no_cash_rate(book.drop(columns=[BOND]))
        for name, daily in variants.items():
            stats = summarize(daily["net_return"], bench.reindex(daily.index), daily["turnover"], daily["exposure"])
            rows.append({"strategy": strategy, "variant": name, **stats})
    table = pd.DataFrame(rows)[["strategy", "variant", "sharpe", "cagr", "volatility", "max_drawdown", "turnover"]]
    pd.set_option("display.width", 200)
    print(table.to_string(index=False, float_format=lambda x: f"{x:,.3f}"))


if __name__ == "__main__":
    main()
