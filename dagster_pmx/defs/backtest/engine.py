"""The pipeline's backtester: the market data it reads and the settings it runs with.

Allocation (for the drawdown control) and the backtest assets both run strategies through
:func:`backtester`, so a book is valued the same way wherever it is valued.
"""

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from dagster_pmx.defs.backtest.reads import allocation_rows, bond_returns, market_rows
from dagster_pmx.defs.reads import cash_rates
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.backtest.costs import CostModel
from python_models.backtest.engine import run_backtest
from python_models.portfolio.allocation import BOND
from python_models.portfolio.sizing import CASH


@dataclass(frozen=True)
class Market:
    """Sessions by tickers, from the first decision date on."""

    returns: pd.DataFrame  # close-to-close simple returns, BOND (the safe sleeve's proxy) included
    open_returns: pd.DataFrame  # adjusted open / previous adjusted close - 1 (NaN without an open)
    dollar_volume: pd.DataFrame  # close x volume (NaN without a volume)
    volatility: pd.DataFrame  # daily std of the last 21 log returns (marts.features.realized_vol_21 / sqrt(252))
    cash_rate: pd.Series

    def since(self, start) -> "Market":
        """The sessions from ``start`` on (the cash rate, a series by date, is kept whole)."""
        keep = self.returns.index >= pd.Timestamp(start)
        return Market(
            returns=self.returns.loc[keep],
            open_returns=self.open_returns.loc[keep],
            dollar_volume=self.dollar_volume.loc[keep],
            volatility=self.volatility.loc[keep],
            cash_rate=self.cash_rate,
        )

    def impact_priced(self, tickers) -> bool:
        """Whether every ticker has a volume on every session it has a return (impact can be charged)."""
        tickers = [t for t in tickers if t != BOND]
        have = self.returns[tickers].notna()
        return bool((~have | self.dollar_volume[tickers].gt(0)).all().all())


def load_market(warehouse: Warehouse, start) -> Market:
    """Read returns, opens, volumes and the cash rate from ``start`` (the first decision date) on."""
    # only the sessions from start are read; every ticker of the history keeps its column (NaN here)
    rows, tickers = market_rows(warehouse, start)
    wide = {
        c: rows.pivot(index="date", columns="ticker", values=c).sort_index().reindex(columns=tickers)
        for c in rows.columns[2:]
    }
    returns = wide["simple_return"]
    returns[BOND] = bond_returns(warehouse).reindex(returns.index)
    keep = returns.index >= pd.Timestamp(start)
    return Market(
        returns=returns.loc[keep],
        open_returns=wide["open_return"].loc[keep],
        dollar_volume=wide["dollar_volume"].loc[keep],
        volatility=wide["volatility"].loc[keep],
        cash_rate=cash_rates(warehouse),
    )


def cost_model(settings: PmxSettings, impact: bool) -> CostModel:
    """The settings' costs; impact only where it can be priced."""
    return CostModel(
        commission_bps=settings.cost_bps,
        half_spread_bps=settings.half_spread_bps,
        impact_coefficient=settings.impact_coefficient if impact else 0.0,
    )


def backtester(settings: PmxSettings, market: Market, contributions: bool = False) -> Callable:
    """A function of a decision frame (dates by tickers) returning :func:`run_backtest`'s output
    under the settings' execution, costs and book size. Impact is charged when every ticker the
    book names has volumes; the bundled stocks have none, so on the default data it is not."""

    def run(weights: pd.DataFrame):
        impact = settings.impact_coefficient > 0 and market.impact_priced(weights.columns)
        return run_backtest(
            weights,
            market.returns,
            costs=cost_model(settings, impact),
            execution=settings.execution,
            cash_rate=market.cash_rate,
            open_returns=market.open_returns,
            dollar_volume=market.dollar_volume if impact else None,
            volatility=market.volatility if impact else None,
            aum=settings.aum,
            contributions=contributions,
            safe_assets=(BOND,),
        )

    return run


def read_books(warehouse: Warehouse, strategies: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """marts.allocations as one decision frame per strategy (dates by tickers, CASH implicit).

    Every date with a row is a decision, so a date that is all CASH (nothing held) stays a
    decision to sell everything rather than vanishing and letting the book drift."""
    alloc = allocation_rows(warehouse, strategies)
    alloc["date"] = pd.to_datetime(alloc["date"])
    return {strategy: decisions_of(g) for strategy, g in alloc.groupby("strategy")}


def decisions_of(rows: pd.DataFrame) -> pd.DataFrame:
    """One strategy's allocation rows (``date, ticker, weight``) as its decision frame: dates by tickers,
    CASH implicit, a date that is all CASH kept (a sale of everything)."""
    wide = rows.pivot(index="date", columns="ticker", values="weight")
    return wide.drop(columns=[CASH], errors="ignore").fillna(0.0).rename_axis(columns=None)
