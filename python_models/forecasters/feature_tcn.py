"""A temporal conv net over lookback windows of the feature library, pooled across tickers.

The single-series ``tcn`` (:mod:`python_models.forecasters.neural`) sees one channel, the ticker's own
returns. This model sees ``lookback`` sessions of several ``marts.features`` columns (one
input channel each) for every ticker of the training window at once, with the same causal
dilated network and seeded, single-threaded, float32 training.

Inputs: each feature is standardised by its mean and standard deviation over the training
rows; a missing value (a window still filling, a close-only series) becomes 0, the mean.
Target, as for the pooled XGBoost: the forward log return over ``h`` sessions divided by
``sigma_t sqrt(h)`` (``sigma_t`` the daily 21-session volatility at the origin), one output
per horizon. Validation: the network is trained on origins whose labels end before the last
``validation`` share of the window's sessions; its mean squared error on that block, ``s2``
per horizon, sizes the forecast variance ``s2 sigma_t^2 h`` (out-of-sample, not the training
error). The network trained on the earlier part is the one used (no second training).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # torch is imported when a network is trained or run
    import torch

from python_models.forecasters.base import (
    DEFAULT_HORIZONS,
    PanelFitResult,
    PanelForecaster,
    ReturnForecast,
    validate_fitted_horizons,
    validate_horizons,
    validate_panel,
)
from python_models.forecasters.boosting import SCALE_COLUMN, daily_scale, forward_returns
from python_models.forecasters.neural import select_device, train_network

#: Input channels: the day's return, volatility level and term structure, an oscillator, the
#: market's day, and where the ticker's month ranks in the cross-section.
DEFAULT_FEATURES: tuple[str, ...] = (
    "ret_1d",
    "realized_vol_21",
    "volatility_ratio_10_63",
    "rsi_14",
    "bollinger_position",
    "market_return_1d",
    "xs_rank_ret_21d",
)


def _windows(values: np.ndarray, ends: np.ndarray, lookback: int) -> np.ndarray:
    """(n, channels, lookback) windows of ``values`` (rows, channels) ending at rows ``ends``."""
    view = np.lib.stride_tricks.sliding_window_view(values, lookback, axis=0)  # (rows - L + 1, channels, L)
    return view[ends - lookback + 1]


@dataclass
class FeatureTcnResult(PanelFitResult):
    """The network, the feature standardisation and the validation error scales."""

    network: torch.nn.Module | None = None  # None until trained (fit builds the result in two steps)
    features: tuple[str, ...] = ()
    centre: np.ndarray | None = None
    scale: np.ndarray | None = None
    lookback: int = 21
    fit_horizons: tuple[int, ...] = ()
    error_scale: np.ndarray | None = None
    device: str = "cpu"

    def standardise(self, panel: pd.DataFrame) -> np.ndarray:
        return np.nan_to_num((panel[list(self.features)].to_numpy(float) - self.centre) / self.scale, nan=0.0)

    def forecast(self, panel: pd.DataFrame, origins: pd.Index, horizons: Sequence[int]) -> dict[str, ReturnForecast]:
        import torch

        if self.network is None or self.error_scale is None:
            raise ValueError("the feature TCN has not been trained")
        network, error_scale = self.network, self.error_scale
        hs = validate_fitted_horizons(horizons, self.fit_horizons)
        cols = [self.fit_horizons.index(h) for h in hs]
        p = validate_panel(panel)
        wanted, out = pd.DatetimeIndex(origins), {}
        for ticker, rows in p.groupby("ticker", sort=True):
            dates = pd.DatetimeIndex(rows["date"])
            ends = np.flatnonzero(dates.isin(wanted))
            sigma = daily_scale(rows)
            ends = ends[(ends >= self.lookback - 1) & np.isfinite(sigma[ends])]
            if not len(ends):
                continue
            x = _windows(self.standardise(rows), ends, self.lookback)  # rows up to each origin only
            with torch.no_grad():
                pred = network(torch.as_tensor(x, dtype=torch.float32)).numpy().astype(float)[:, cols]
            scale = sigma[ends, None] * np.sqrt(np.asarray(hs, dtype=float))[None, :]
            out[ticker] = ReturnForecast(dates[ends], hs, pred * scale, error_scale[cols][None, :] * scale**2)
        return out


class FeatureTcn(PanelForecaster):
    """TCN over feature windows, pooled across tickers (see the module docstring).

    Parameters
    ----------
    features : sequence of str
        ``marts.features`` columns, one input channel each.
    lookback : int
        Sessions in each input window.
    channels, epochs, learning_rate, weight_decay, seed, device
        As for :class:`python_models.forecasters.neural.TemporalConvNet`.
    validation : float
        Share of the window's sessions held out to size the intervals.
    horizons : sequence of int
    refit_every : int or None
    """

    needs_features = True

    def __init__(
        self,
        features: Sequence[str] = DEFAULT_FEATURES,
        lookback: int = 21,
        channels: int = 8,
        epochs: int = 60,
        learning_rate: float = 0.01,
        weight_decay: float = 1e-3,
        seed: int = 0,
        validation: float = 0.2,
        horizons: Sequence[int] = DEFAULT_HORIZONS,
        device: str = "auto",
        refit_every: int | None = 126,
    ) -> None:
        if lookback < 8:
            raise ValueError(f"lookback must be at least 8 sessions, got {lookback}")
        if not 0 < validation < 0.5:
            raise ValueError(f"validation must be in (0, 0.5), got {validation}")
        self.features, self.lookback, self.validation = tuple(features), lookback, validation
        self.channels, self.epochs, self.learning_rate = channels, epochs, learning_rate
        self.weight_decay, self.seed, self.device = weight_decay, seed, device
        self.horizons, self.refit_every = validate_horizons(horizons), refit_every
        self.name = "tcn_features"

    def panel_columns(self, available: Sequence[str]) -> list[str]:
        return [*self.features, SCALE_COLUMN]

    def check_columns(self, panel: pd.DataFrame) -> None:
        missing = set(self.features) - set(panel.columns)
        if missing:
            raise ValueError(f"panel lacks the feature columns {sorted(missing)}")
        daily_scale(panel.head(0))  # raises without the scale column

    def fit(self, panel: pd.DataFrame) -> FeatureTcnResult:
        p = validate_panel(panel)
        self.check_columns(p)
        raw = p[list(self.features)].to_numpy(float)
        centre, scale = np.nanmean(raw, axis=0), np.nanstd(raw, axis=0)
        if not np.all(np.isfinite(scale) & (scale > 0)):
            raise ValueError("a feature is constant or empty over the training window")
        result = FeatureTcnResult(
            params=pd.Series(dtype=float),
            features=self.features,
            centre=centre,
            scale=scale,
            lookback=self.lookback,
            fit_horizons=self.horizons,
        )
        dates = pd.DatetimeIndex(p["date"].unique())
        cut = dates[int(len(dates) * (1 - self.validation))]
        h_max = max(self.horizons)
        parts: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {"fit": ([], []), "val": ([], [])}
        for _, rows in p.groupby("ticker", sort=True):
            day = pd.DatetimeIndex(rows["date"])
            sigma = daily_scale(rows)
            y = np.column_stack([forward_returns(rows, h) / (sigma * np.sqrt(h)) for h in self.horizons])
            ends = np.arange(self.lookback - 1, len(rows))
            ends = ends[np.isfinite(y[ends]).all(axis=1)]
            # labels of training origins end before the validation block (h_max sessions earlier)
            before = day.searchsorted(cut) - h_max
            for part, keep in (("fit", ends < before), ("val", day[ends] >= cut)):
                if keep.any():
                    parts[part][0].append(_windows(result.standardise(rows), ends[keep], self.lookback))
                    parts[part][1].append(y[ends[keep]])
        if not parts["fit"][0] or not parts["val"][0]:
            raise ValueError("too few labelled origins to train and validate the feature TCN")
        x_fit, y_fit = (np.concatenate(a) for a in parts["fit"])
        x_val, y_val = (np.concatenate(a) for a in parts["val"])
        device = select_device(self.device)
        net, loss = train_network(
            x_fit, y_fit, self.channels, self.epochs, self.learning_rate, self.weight_decay, self.seed, device
        )
        import torch

        with torch.no_grad():
            pred = net(torch.as_tensor(x_val, dtype=torch.float32)).numpy().astype(float)
        error_scale = np.mean((pred - y_val) ** 2, axis=0)
        skill = 1.0 - error_scale / np.mean(y_val**2, axis=0)
        result.network, result.error_scale, result.device = net, error_scale, device
        result.params = pd.Series({"train_mse": loss, "samples": float(len(x_fit))})
        result.diagnostics = {
            "train_mse": loss,
            **{f"val_skill_h{h}": float(s) for h, s in zip(self.horizons, skill, strict=True)},
            "converged": float(np.isfinite(error_scale).all()),
        }
        return result
