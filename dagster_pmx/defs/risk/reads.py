"""Reads of the risk marts for the tearsheet."""

from collections.abc import Sequence

import pandas as pd

from dagster_pmx.defs.reads import frame
from dagster_pmx.resources import Warehouse
from python_models.risk.stress import SHOCKS

#: The estimate the tearsheet draws: one session ahead at 99 %.
DRAWN_LEVEL, DRAWN_HORIZON = 0.99, 1


def drawn_var(warehouse: Warehouse, strategies: Sequence[str]) -> pd.DataFrame:
    """``strategy, date, method, var, es, next_return`` of the one-session 99 % estimates of ``strategies``."""
    with warehouse.ibis() as db:
        t = db.table("risk_var", database="marts")
        wanted = t.filter(t.strategy.isin(list(strategies)), t.level == DRAWN_LEVEL, t.horizon == DRAWN_HORIZON).select(
            "strategy", "date", "method", "var", "es", "next_return"
        )
        return frame(wanted.order_by(["strategy", "date"]))


def var_backtests(warehouse: Warehouse) -> pd.DataFrame:
    """marts.var_backtests, by strategy, method and level."""
    with warehouse.ibis() as db:
        return frame(db.table("var_backtests", database="marts").order_by(["strategy", "method", "level"]))


def allocation_strategies(warehouse: Warehouse) -> list[str]:
    """Every strategy of marts.allocations, sorted."""
    with warehouse.ibis() as db:
        t = db.table("allocations", database="marts")
        return sorted(frame(t.select("strategy").distinct())["strategy"])


def current_stress(warehouse: Warehouse, strategies: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The latest book's stress of each of ``strategies``: its shocks' losses (a row per strategy, a column per
    scenario) and its Monte Carlo rows."""
    with warehouse.ibis() as db:
        t = db.table("stress_tests", database="marts").filter(lambda t: t.strategy.isin(list(strategies)))
        latest = t.group_by("strategy").aggregate(last=t.date.max())
        shocks = frame(
            t.join(latest, [t.strategy == latest.strategy, t.date == latest["last"]]).select(
                t.strategy, t.date, t.scenario, t.loss
            )
        )
        mc = db.table("stress_monte_carlo", database="marts")
        simulated = frame(mc.filter(mc.strategy.isin(list(strategies))).order_by(["strategy", "horizon"]))
    wide = shocks.pivot_table(index=["strategy", "date"], columns="scenario", values="loss", aggfunc="first")
    order = [s for s in SHOCKS if s in wide.columns]
    return wide[order].reset_index(), simulated[
        ["strategy", "date", "horizon", "p05", "p50", "var_99", "es_99", "prob_drawdown_15"]
    ]
