"""Reads of the risk marts for the tearsheet."""

from collections.abc import Sequence

import pandas as pd

from dagster_pmx.defs.reads import frame
from dagster_pmx.resources import Warehouse

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
