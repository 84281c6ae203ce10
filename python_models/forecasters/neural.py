"""Neural forecasters (torch) over a lookback window of the ticker's returns: a temporal
convolutional network (``tcn``) and an LSTM (``lstm``).

Input: the last ``lookback`` daily log returns up to the origin, standardised by the training
window's mean and standard deviation. Networks (``torch_networks.py``): the TCN's causal dilated
1-d convolutions (kernel 3, dilations 1, 2, 4, 8, ``width`` channels, ReLU, residual connections)
or one LSTM layer of ``width`` units, then a linear head from the last time step to one output
per horizon: the cumulative log return over the next ``h`` sessions, in units of ``sqrt(h)``
training standard deviations.

Training, walk-forward inside each training window: the origins whose targets end before the
window's last ``validation`` share train the network (full-batch Adam on mean squared error,
weight decay), the origins of that last share validate it; training stops when the validation
loss has not improved for ``patience`` epochs, and the weights of the best validation epoch are
kept (early stopping). The validation loss weighs each horizon's mean squared error by 1/h, about
its number of independent targets in the block: the overlapping long-horizon errors of a block of
~150 sessions are nearly one observation and would otherwise decide the stop by chance.

Forecast: the training window's mean return times ``h`` plus the output, back in return units, times
the horizon's validation slope (the least-squares slope of the validation targets on the outputs, kept
in [0, 1]): a network that learnt nothing the validation block confirms forecasts about the mean. The
forecast variance per horizon is the validation mean squared error of that forecast: out of sample for
the network's weights, in sample for the slope and the stopping epoch, which the same block chose.
Seeded, single threaded, float32: a CPU fit is bit-for-bit repeatable.

The device is chosen by ``device``: "auto" uses CUDA when torch sees a GPU, else the CPU.
"""

from __future__ import annotations

import copy
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


def train_network(*args, **kwargs):
    """:func:`python_models.forecasters.torch_networks.train_network`, importing torch only now."""
    from python_models.forecasters.torch_networks import train_network as train

    return train(*args, **kwargs)


@dataclass(kw_only=True)  # keyword-only: the network has no default, FitResult's fields do
class ReturnNetworkResult(FitResult):
    """The trained network (on the CPU), its standardisation and validation error variances."""

    network: torch.nn.Module
    lookback: int = 63
    centre: float = 0.0
    scale: float = 1.0
    fit_horizons: tuple[int, ...] = ()
    error_var: np.ndarray
    device: str = "cpu"
    #: per fitted horizon, the weight of the network's output against the training mean: the least-squares
    #: slope of the validation targets on the outputs, in [0, 1] (None, as pickled before 0.4.0: 1)
    slope: np.ndarray | None = None

    def forecast(self, returns: pd.Series, origins: pd.Index, horizons: Sequence[int]) -> ReturnForecast:
        import torch

        pos = check_origins(returns, origins)
        hs = validate_fitted_horizons(horizons, self.fit_horizons)
        if pos.min() < self.lookback - 1:
            raise ValueError(f"each origin needs {self.lookback - 1} earlier returns")
        z = (returns.to_numpy(float)[: pos.max() + 1] - self.centre) / self.scale  # nothing after the last origin
        windows = np.lib.stride_tricks.sliding_window_view(z, self.lookback)[pos - self.lookback + 1]
        # in float64 (a copy of the float32 weights, exactly): float32 sums differ in their last bits with
        # the number of windows run at once, and the daily refresh's few origins must get the forecasts the
        # walk-forward gave the same fit's origins in blocks of 252
        network = copy.deepcopy(self.network).double()
        with torch.no_grad():
            out = network(torch.as_tensor(windows, dtype=torch.float64)).numpy()
        cols = [self.fit_horizons.index(h) for h in hs]
        h = np.asarray(hs, dtype=float)
        # the network predicts the standardised deviation from the training mean: the mean comes back
        # (without it every forecast lost the window's drift, 3 % over 63 sessions of a typical stock)
        slope = np.ones(len(cols)) if self.slope is None else self.slope[cols]
        mean = slope * out[:, cols] * np.sqrt(h) * self.scale + self.centre * h
        var = np.tile(self.error_var[cols], (len(pos), 1))
        return ReturnForecast(pd.Index(origins), hs, mean, var)


#: The name fits of 0.4.0 and before were pickled under.
TcnResult = ReturnNetworkResult


class ReturnNetwork(Forecaster):
    """A network over the ticker's last ``lookback`` standardised returns (see the module docstring).

    Parameters
    ----------
    architecture : {"tcn", "lstm"}
        The network (``torch_networks.ARCHITECTURES``).
    lookback : int
        Returns in each input window.
    width : int
        Channels of every convolution (TCN) or units of the LSTM.
    max_epochs, patience : int
        Early stopping: at most ``max_epochs`` epochs, stopped after ``patience`` without a better
        validation loss.
    learning_rate, weight_decay : training settings (full-batch Adam).
    validation : float
        Share of the training window's last sessions whose origins validate (early stopping and the
        forecast variance); the training origins' targets end before it.
    seed : int
        Seed of the initial weights.
    horizons : sequence of int
        Horizons the head predicts (forecasts are limited to them).
    device : {"auto", "cpu", "cuda"}
        Where to train; the fitted network is moved to the CPU for forecasting.
    refit_every : int or None
        Sessions between refits in the walk-forward harness (training is the costly part): 252, a
        yearly refit, keeps both networks within the default run's time (`make run`).
    """

    def __init__(
        self,
        architecture: str,
        lookback: int = 63,
        width: int = 8,
        max_epochs: int = 60,
        patience: int = 20,
        learning_rate: float = 0.01,
        weight_decay: float = 1e-3,
        validation: float = 0.2,
        seed: int = 0,
        horizons: Sequence[int] = DEFAULT_HORIZONS,
        device: str = "auto",
        refit_every: int | None = 252,
    ) -> None:
        if lookback < 8:
            raise ValueError(f"lookback must be at least 8 sessions, got {lookback}")
        if not 0 < validation < 0.5:
            raise ValueError(f"validation must be a share in (0, 0.5), got {validation}")
        if max_epochs < 1 or patience < 1:
            raise ValueError(f"max_epochs and patience must be positive, got {max_epochs} and {patience}")
        self.architecture, self.lookback, self.width = architecture, lookback, width
        self.max_epochs, self.patience, self.validation = max_epochs, patience, validation
        self.learning_rate, self.weight_decay, self.seed = learning_rate, weight_decay, seed
        self.horizons, self.device = validate_horizons(horizons), device
        self.refit_every = refit_every
        self.name = architecture

    def fit(self, returns: pd.Series) -> ReturnNetworkResult:
        from python_models.forecasters.torch_networks import WindowsAlong, receptive_field, train_early_stopped

        h_max = max(self.horizons)
        r = validate_returns(returns, min_obs=self.lookback + 2 * h_max + 100).to_numpy()
        centre, scale = float(r.mean()), float(r.std(ddof=1))
        if not scale > 0:
            raise ValueError("returns are constant over the training window")
        z = (r - centre) / scale
        origins = np.arange(self.lookback - 1, len(z) - h_max)  # targets wholly inside the window
        windows = np.lib.stride_tricks.sliding_window_view(z, self.lookback)[origins - self.lookback + 1]
        csum = np.concatenate([[0.0], np.cumsum(z)])
        targets = np.column_stack([(csum[origins + 1 + h] - csum[origins + 1]) / np.sqrt(h) for h in self.horizons])
        cut = int(len(z) * (1 - self.validation))  # the validation block: sessions cut .. end
        train, held_out = origins + h_max < cut, origins >= cut  # training targets end before the block
        if train.sum() < 50 or held_out.sum() < 10:
            raise ValueError("too few origins to train and validate the network")
        reach = receptive_field(self.architecture)
        train_x: np.ndarray | WindowsAlong
        held_x: np.ndarray | WindowsAlong
        if reach is not None and reach <= self.lookback:
            # a causal network whose outputs see fewer sessions than a window: the same outputs from one
            # pass over the training window as from every window apart (the TCN: 31 of 63 sessions)
            train_x, held_x = WindowsAlong(z, origins[train]), WindowsAlong(z, origins[held_out])
        else:
            train_x, held_x = windows[train], windows[held_out]
        device = select_device(self.device)
        training = train_early_stopped(
            self.architecture,
            train_x,
            targets[train],
            held_x,
            targets[held_out],
            self.width,
            self.max_epochs,
            self.patience,
            self.learning_rate,
            self.weight_decay,
            self.seed,
            device,
            # each horizon's errors weighed by its independent targets in the block (about one in h):
            # the overlapping 63-session targets of ~150 sessions are two observations, not 150
            validation_weights=1.0 / np.asarray(self.horizons, dtype=float),
        )
        net = training.network
        # The outputs are recalibrated on the validation block (which the weights never trained on): the
        # forecast is the training mean plus slope x output, the slope the least-squares one of the
        # targets on the outputs, kept in [0, 1]. A network that learnt the signal keeps a slope near 1;
        # one that fitted noise gets a slope near 0 and forecasts about the mean, instead of trading on
        # its noise (the TCN lost to the random walk by 7-22 % in MSE on 4 default stocks without it).
        outputs, held_targets = training.validation_outputs, targets[held_out]
        slope = np.clip(np.sum(outputs * held_targets, axis=0) / np.maximum(np.sum(outputs**2, axis=0), 1e-12), 0, 1)
        mean_mse = np.mean(held_targets**2, axis=0)
        skill = 1.0 - training.validation_mse / mean_mse
        # the validation MSE per horizon of the recalibrated forecast, back in log-return units: the
        # variance (in sample for the slope alone: one number per horizon fitted on ~150 sessions)
        recalibrated_mse = np.mean((slope * outputs - held_targets) ** 2, axis=0)
        error_var = recalibrated_mse * scale**2 * np.asarray(self.horizons, float)
        return ReturnNetworkResult(
            params=pd.Series(
                {
                    "train_mse": training.train_mse,
                    "best_epoch": float(training.best_epoch),
                    "parameters": float(sum(p.numel() for p in net.parameters())),
                }
            ),
            diagnostics={
                "train_mse": training.train_mse,
                "best_epoch": float(training.best_epoch),
                "epochs_run": float(training.epochs_run),
                **{f"val_skill_h{h}": float(v) for h, v in zip(self.horizons, skill, strict=True)},
                **{f"slope_h{h}": float(v) for h, v in zip(self.horizons, slope, strict=True)},
                "converged": float(np.isfinite(error_var).all()),
            },
            network=net,
            lookback=self.lookback,
            centre=centre,
            scale=scale,
            fit_horizons=self.horizons,
            error_var=error_var,
            device=device,
            slope=slope,
        )


class TemporalConvNet(ReturnNetwork):
    """The TCN forecaster (``tcn``): :class:`ReturnNetwork` with causal dilated convolutions."""

    def __init__(self, lookback: int = 63, channels: int = 8, **settings) -> None:
        super().__init__("tcn", lookback=lookback, width=channels, **settings)
        self.channels = channels


class LstmNet(ReturnNetwork):
    """The LSTM forecaster (``lstm``): :class:`ReturnNetwork` with one LSTM layer of ``hidden`` units.

    Its default lookback is 21 sessions, not the TCN's 63: a recurrent layer steps through the window
    one session at a time, so its cost grows with the lookback (a fit on 1,500 sessions of an AR(1)
    took about three times as long with 63)."""

    def __init__(self, lookback: int = 21, hidden: int = 8, **settings) -> None:
        # 8 units: half the cost of a fit of 16 (0.15 s against 0.30), which learnt an AR(1) as well
        # (forecasts correlated 0.98 with its conditional mean either way); its training cannot share
        # work between windows as the TCN's does, since a recurrent state starts afresh in each
        super().__init__("lstm", lookback=lookback, width=hidden, **settings)
        self.hidden = hidden
