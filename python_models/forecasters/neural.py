"""A temporal convolutional network (torch) over a lookback window of the ticker's returns.

Input: the last ``lookback`` daily log returns up to the origin, standardised by the
training window's mean and standard deviation. Network: causal dilated 1-d convolutions
(kernel 3, dilations 1, 2, 4, 8, ``channels`` wide, ReLU, residual connections), then a
linear head from the last time step to one output per horizon: the cumulative log return
over the next ``h`` sessions, in units of ``sqrt(h)`` training standard deviations.

Training: full-batch Adam on mean squared error over the training origins whose targets
lie wholly inside the window, a fixed number of epochs, weight decay. Seeded, single
threaded, float32, so a CPU fit is bit-for-bit repeatable.
The forecast variance per horizon is the in-sample mean squared error of the fitted
network (so intervals are sized by what it could not explain in training).

The device is chosen by ``device``: "auto" uses CUDA when torch sees a GPU, else the CPU.
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
    FitResult,
    Forecaster,
    ReturnForecast,
    check_origins,
    validate_fitted_horizons,
    validate_horizons,
    validate_returns,
)


def select_device(device: str = "auto") -> str:
    """ "cuda" when asked for or when "auto" and torch sees a GPU; otherwise "cpu"."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    return device


def _network(horizons: int, channels: int, dilations: Sequence[int], inputs: int = 1):
    import torch
    from torch import nn

    class CausalBlock(nn.Module):
        def __init__(self, c_in: int, dilation: int) -> None:
            super().__init__()
            self.pad = 2 * dilation  # left padding only: an output never sees a later input
            self.conv = nn.Conv1d(c_in, channels, kernel_size=3, dilation=dilation)
            self.skip = nn.Conv1d(c_in, channels, kernel_size=1) if c_in != channels else nn.Identity()

        def forward(self, x):
            return torch.relu(self.conv(nn.functional.pad(x, (self.pad, 0)))) + self.skip(x)

    class Tcn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.Sequential(
                *[CausalBlock(inputs if i == 0 else channels, d) for i, d in enumerate(dilations)]
            )
            self.head = nn.Linear(channels, horizons)

        def forward(self, x):  # x: (batch, lookback) or (batch, inputs, lookback)
            return self.head(self.blocks(x[:, None, :] if x.ndim == 2 else x)[:, :, -1])

    return Tcn()


def train_network(
    windows: np.ndarray,
    targets: np.ndarray,
    channels: int,
    epochs: int,
    learning_rate: float,
    weight_decay: float,
    seed: int,
    device: str,
):
    """Train a TCN full-batch (Adam, MSE) on ``windows`` (n, lookback) or (n, inputs,
    lookback) against ``targets`` (n, horizons): seeded, one thread, float32. Returns the
    network on the CPU in eval mode and the final training loss."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            inputs = 1 if windows.ndim == 2 else windows.shape[1]
            net = _network(targets.shape[1], channels, (1, 2, 4, 8), inputs).float().to(device)
        x = torch.as_tensor(windows, dtype=torch.float32, device=device)
        y = torch.as_tensor(targets, dtype=torch.float32, device=device)
        optimiser = torch.optim.Adam(net.parameters(), lr=learning_rate, weight_decay=weight_decay)
        for _ in range(epochs):
            optimiser.zero_grad()
            loss = torch.mean((net(x) - y) ** 2)
            loss.backward()
            optimiser.step()
        return net.to("cpu").eval(), float(loss.detach().cpu())
    finally:
        torch.set_num_threads(threads)


@dataclass(kw_only=True)  # keyword-only: the network has no default, FitResult's fields do
class TcnResult(FitResult):
    """The trained network (on the CPU), its standardisation and in-sample error variances."""

    network: torch.nn.Module
    lookback: int = 63
    centre: float = 0.0
    scale: float = 1.0
    fit_horizons: tuple[int, ...] = ()
    error_var: np.ndarray
    device: str = "cpu"

    def forecast(self, returns: pd.Series, origins: pd.Index, horizons: Sequence[int]) -> ReturnForecast:
        import torch

        pos = check_origins(returns, origins)
        hs = validate_fitted_horizons(horizons, self.fit_horizons)
        if pos.min() < self.lookback - 1:
            raise ValueError(f"each origin needs {self.lookback - 1} earlier returns")
        z = (returns.to_numpy(float)[: pos.max() + 1] - self.centre) / self.scale  # nothing after the last origin
        windows = np.lib.stride_tricks.sliding_window_view(z, self.lookback)[pos - self.lookback + 1]
        with torch.no_grad():
            out = self.network(torch.as_tensor(windows, dtype=torch.float32)).numpy().astype(float)
        cols = [self.fit_horizons.index(h) for h in hs]
        root_h = np.sqrt(np.asarray(hs, dtype=float))
        mean = out[:, cols] * root_h * self.scale
        var = np.tile(self.error_var[cols], (len(pos), 1))
        return ReturnForecast(pd.Index(origins), hs, mean, var)


class TemporalConvNet(Forecaster):
    """TCN forecaster (see the module docstring).

    Parameters
    ----------
    lookback : int
        Returns in each input window.
    channels : int
        Width of every convolution.
    epochs, learning_rate, weight_decay : training settings (full-batch Adam).
    seed : int
        Seed of the initial weights.
    horizons : sequence of int
        Horizons the head predicts (forecasts are limited to them).
    device : {"auto", "cpu", "cuda"}
        Where to train; the fitted network is moved to the CPU for forecasting.
    refit_every : int or None
        Sessions between refits in the walk-forward harness (training is the costly part).
    """

    def __init__(
        self,
        lookback: int = 63,
        channels: int = 8,
        epochs: int = 60,
        learning_rate: float = 0.01,
        weight_decay: float = 1e-3,
        seed: int = 0,
        horizons: Sequence[int] = DEFAULT_HORIZONS,
        device: str = "auto",
        refit_every: int | None = 126,
    ) -> None:
        if lookback < 8:
            raise ValueError(f"lookback must be at least 8 sessions, got {lookback}")
        self.lookback, self.channels, self.epochs = lookback, channels, epochs
        self.learning_rate, self.weight_decay, self.seed = learning_rate, weight_decay, seed
        self.horizons, self.device = validate_horizons(horizons), device
        self.refit_every = refit_every
        self.name = "tcn"

    def fit(self, returns: pd.Series) -> TcnResult:
        import torch

        r = validate_returns(returns, min_obs=self.lookback + max(self.horizons) + 100).to_numpy()
        centre, scale = float(r.mean()), float(r.std(ddof=1))
        if not scale > 0:
            raise ValueError("returns are constant over the training window")
        z = (r - centre) / scale
        h_max = max(self.horizons)
        origins = np.arange(self.lookback - 1, len(z) - h_max)  # targets wholly inside the window
        windows = np.lib.stride_tricks.sliding_window_view(z, self.lookback)[origins - self.lookback + 1]
        csum = np.concatenate([[0.0], np.cumsum(z)])
        targets = np.column_stack([(csum[origins + 1 + h] - csum[origins + 1]) / np.sqrt(h) for h in self.horizons])

        device = select_device(self.device)
        net, loss = train_network(
            windows, targets, self.channels, self.epochs, self.learning_rate, self.weight_decay, self.seed, device
        )
        with torch.no_grad():
            fitted = net(torch.as_tensor(windows, dtype=torch.float32)).numpy().astype(float)
        # in-sample MSE per horizon, back in log-return units
        error_var = np.mean((fitted - targets) ** 2, axis=0) * scale**2 * np.asarray(self.horizons, dtype=float)
        return TcnResult(
            params=pd.Series({"train_mse": loss, "parameters": float(sum(p.numel() for p in net.parameters()))}),
            diagnostics={"train_mse": loss, "converged": float(np.isfinite(fitted).all())},
            network=net,
            lookback=self.lookback,
            centre=centre,
            scale=scale,
            fit_horizons=self.horizons,
            error_var=error_var,
            device=device,
        )
