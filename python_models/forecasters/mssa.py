"""Multivariate SAMoSSA (mSSA): one SSA subspace shared by every ticker of the universe.

The univariate SAMoSSA (:mod:`python_models.forecasters.ssa`) fits each stock's Page matrix alone.
mSSA (Agarwal, Alomar and Shah, "On Multivariate Singular Spectrum Analysis and its
Variants", 2022; the multivariate case of Alomar et al., NeurIPS 2023) stacks the Page
matrices of all ``N`` series side by side, ``[P_1 | P_2 | ... | P_N]``, and keeps the
leading singular components of that ``L x N K`` matrix, as many as capture ``energy`` of
its squared norm. Every series then shares the subspace, its rank and its linear recurrent
formula, estimated from ``N`` times as many columns; each series' residual model (the direct
weights of :mod:`~python_models.forecasters.ssa`) and its in-sample error variances stay its own.
Forecasting from an origin is the univariate rule with the shared parameters.

The rank stays the energy rule's, not the univariate default's Gavish–Donoho threshold: the
threshold's noise level is that of white noise, and with ``N`` times the columns the leading
directions of autocorrelated noise clear it. Ten series sharing a rank-4 subspace under AR(1)
noise got ranks 5 and 6 from the stacked threshold, 4 from the energy rule
(``tests/python_models/forecasters/test_pooled.py``).

The series of a fit are the tickers with a return on every session of the training window;
a ticker with a gap sits that fit out (no forecast until a later fit includes it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from python_models.forecasters.array_module import gpu_module
from python_models.forecasters.base import (
    DEFAULT_HORIZONS,
    PanelFitResult,
    PanelForecaster,
    ReturnForecast,
    by_ticker,
    validate_horizons,
    validate_panel,
)
from python_models.forecasters.ssa import SamossaResult, fit_windows, samossa_result


@dataclass
class MssaResult(PanelFitResult):
    """The shared fit, as one :class:`SamossaResult` per ticker it covers."""

    series: dict[str, SamossaResult] = field(default_factory=dict)

    def forecast(self, panel: pd.DataFrame, origins: pd.Index, horizons: Sequence[int]) -> dict[str, ReturnForecast]:
        wanted, out = pd.DatetimeIndex(origins), {}
        for ticker, _, returns in by_ticker(validate_panel(panel), self.series):
            own = wanted[wanted.isin(returns.index)]
            if len(own):
                out[ticker] = self.series[ticker].forecast(returns, own, horizons)
        return out


class Mssa(PanelForecaster):
    """Multivariate SAMoSSA across the universe (see the module docstring).

    Parameters
    ----------
    rows : int
        Rows ``L`` of each Page matrix.
    energy : float
        Share of the stacked matrix's squared norm the kept components capture.
    horizons : sequence of int
        Horizons whose error variance is estimated at fit time.
    min_series : int
        Fewest complete tickers a fit needs.
    """

    def __init__(
        self, rows: int = 21, energy: float = 0.9, horizons: Sequence[int] = DEFAULT_HORIZONS, min_series: int = 2
    ) -> None:
        if rows < 3:
            raise ValueError(f"rows must be at least 3, got {rows}")
        self.rows, self.energy, self.horizons = rows, energy, validate_horizons(horizons)
        self.min_series = min_series
        self.name = "mssa"

    def fit(self, panel: pd.DataFrame) -> MssaResult:
        p = validate_panel(panel)
        wide = p.pivot(index="date", columns="ticker", values="log_return")
        complete = [t for t in wide.columns if wide[t].notna().all()]
        if len(complete) < self.min_series:
            raise ValueError(f"mSSA needs {self.min_series} tickers with no missing return, got {len(complete)}")
        if len(wide) < 3 * self.rows + max(self.horizons):
            raise ValueError(f"a window of {len(wide)} sessions is too short for {self.rows} rows")
        returns = wide[complete].to_numpy(float).T
        levels = np.concatenate([np.zeros((len(complete), 1)), np.cumsum(returns, axis=1)], axis=1)
        xp = gpu_module()
        fit = fit_windows(
            xp.asarray(levels), self.rows, self.horizons, self.energy, xp=xp, shared=True, rank_rule="energy"
        )
        series = {t: samossa_result(fit, i, self.rows, levels.shape[1]) for i, t in enumerate(complete)}
        first = series[complete[0]]
        diagnostics = {
            "explained_energy": float(fit.energy[0]),
            "rank": float(fit.rank[0]),
            "series": float(len(complete)),
            "mean_phi": float(np.mean(fit.phi)),
            "converged": first.diagnostics["converged"],
        }
        params = first.params.drop("phi")
        return MssaResult(params=params, diagnostics=diagnostics, series=series)
