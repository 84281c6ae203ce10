"""The torch networks of the neural forecasters and their training loops.

Kept apart from ``neural.py`` so that torch is imported only when a network is built or run, and
defined at module level so that a trained network pickles (fits are stored in ``ml.model_fits``):
a class defined inside a function does not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


class CausalBlock(nn.Module):
    """A dilated causal convolution (kernel 3, ReLU) with a residual connection."""

    def __init__(self, c_in: int, channels: int, dilation: int) -> None:
        super().__init__()
        self.pad = 2 * dilation  # left padding only: an output never sees a later input
        self.conv = nn.Conv1d(c_in, channels, kernel_size=3, dilation=dilation)
        self.skip = nn.Conv1d(c_in, channels, kernel_size=1) if c_in != channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(nn.functional.pad(x, (self.pad, 0)))) + self.skip(x)


class Tcn(nn.Module):
    """Causal dilated convolutions, then a linear head from the last time step to one output per horizon."""

    def __init__(self, horizons: int, channels: int, dilations: Sequence[int], inputs: int = 1) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            *[CausalBlock(inputs if i == 0 else channels, channels, d) for i, d in enumerate(dilations)]
        )
        self.head = nn.Linear(channels, horizons)
        #: sessions an output depends on: the last one and 2 * dilation before it per kernel-3 block
        self.receptive_field = 1 + 2 * sum(dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, lookback) or (batch, inputs, lookback)
        return self.head(self.blocks(x[:, None, :] if x.ndim == 2 else x)[:, :, -1])

    def along(self, series: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The outputs for the windows that end at ``positions`` of ``series`` ((T,) or (inputs, T)),
        from one pass of the convolutions over the whole series.

        Equal to ``forward`` on those windows when every position has ``receptive_field - 1`` sessions
        before it and the windows are at least ``receptive_field`` long: a causal output sees only its
        last ``receptive_field`` inputs, so the zero padding of a window never reaches its last step.
        One pass costs the series' length, where the windows cost their number times their length
        (about 60 times more for 63-session windows over a 756-session training window)."""
        x = series[None, None, :] if series.ndim == 1 else series[None]
        return self.head(self.blocks(x)[0, :, positions].T)


class Lstm(nn.Module):
    """One LSTM layer over the window, then a linear head from its last hidden state."""

    def __init__(self, horizons: int, hidden: int, inputs: int = 1) -> None:
        super().__init__()
        self.lstm = nn.LSTM(inputs, hidden, batch_first=True)
        self.head = nn.Linear(hidden, horizons)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, lookback) or (batch, inputs, lookback)
        sequence = x[:, :, None] if x.ndim == 2 else x.transpose(1, 2)  # (batch, lookback, inputs)
        out, _ = self.lstm(sequence)
        return self.head(out[:, -1, :])


#: The TCN's dilations, one kernel-3 block each.
TCN_DILATIONS = (1, 2, 4, 8)

#: The architectures by name, each built from (outputs, width, inputs).
ARCHITECTURES = {
    "tcn": lambda outputs, width, inputs: Tcn(outputs, width, TCN_DILATIONS, inputs),
    "lstm": lambda outputs, width, inputs: Lstm(outputs, width, inputs),
}


def receptive_field(architecture: str) -> int | None:
    """Sessions a window's last output depends on: the TCN's receptive field, or None for a network
    that reads its whole window (the LSTM)."""
    return 1 + 2 * sum(TCN_DILATIONS) if architecture == "tcn" else None


def _build(architecture: str, outputs: int, width: int, inputs: int, seed: int, device: str) -> nn.Module:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {architecture!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ARCHITECTURES[architecture](outputs, width, inputs).float().to(device)


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch on one thread for the block (repeatable sums; a walk-forward worker has one core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_network(
    windows: np.ndarray,
    targets: np.ndarray,
    channels: int,
    epochs: int,
    learning_rate: float,
    weight_decay: float,
    seed: int,
    device: str,
) -> tuple[nn.Module, float]:
    """Train a TCN full-batch (Adam, MSE) for ``epochs`` on ``windows`` (n, lookback) or (n, inputs,
    lookback) against ``targets`` (n, horizons): seeded, one thread, float32. Returns the network on
    the CPU in eval mode and the final training loss."""
    with _one_thread():
        inputs = 1 if windows.ndim == 2 else windows.shape[1]
        net = _build("tcn", targets.shape[1], channels, inputs, seed, device)
        x = torch.as_tensor(windows, dtype=torch.float32, device=device)
        y = torch.as_tensor(targets, dtype=torch.float32, device=device)
        optimiser = torch.optim.Adam(net.parameters(), lr=learning_rate, weight_decay=weight_decay)
        for _ in range(epochs):
            optimiser.zero_grad()
            loss = torch.mean((net(x) - y) ** 2)
            loss.backward()
            optimiser.step()
        return net.to("cpu").eval(), float(loss.detach().cpu())


@dataclass(frozen=True)
class WindowsAlong:
    """Windows given as the series they are cut from and the positions they end at, for a network with
    an ``along`` method (the TCN): it computes them in one pass over the series (:meth:`Tcn.along`)."""

    series: np.ndarray  # (T,) or (inputs, T)
    positions: np.ndarray  # int, (n,)

    def __len__(self) -> int:
        return len(self.positions)


def _inputs(x: np.ndarray | WindowsAlong, device: str) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    if isinstance(x, WindowsAlong):
        return (
            torch.as_tensor(x.series, dtype=torch.float32, device=device),
            torch.as_tensor(x.positions, dtype=torch.long, device=device),
        )
    return torch.as_tensor(x, dtype=torch.float32, device=device)


def _outputs(net: nn.Module, x: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    if isinstance(x, tuple):
        along: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = getattr(net, "along")  # noqa: B009 (a Tcn)
        return along(*x)
    return net(x)


@dataclass
class Training:
    """An early-stopped training: the network of the best validation epoch (on the CPU, eval mode)."""

    network: nn.Module
    #: the training loss at the kept epoch
    train_mse: float
    #: the epoch kept (1-based) and the epochs run
    best_epoch: int
    epochs_run: int
    #: mean squared validation error per output at the kept epoch
    validation_mse: np.ndarray
    #: the kept network's validation outputs (n, outputs)
    validation_outputs: np.ndarray


def train_early_stopped(
    architecture: str,
    windows: np.ndarray | WindowsAlong,
    targets: np.ndarray,
    validation_windows: np.ndarray | WindowsAlong,
    validation_targets: np.ndarray,
    width: int,
    max_epochs: int,
    patience: int,
    learning_rate: float,
    weight_decay: float,
    seed: int,
    device: str,
    validation_weights: np.ndarray | None = None,
) -> Training:
    """Full-batch Adam on MSE, stopped when the validation loss has not improved for ``patience``
    epochs; the weights of the best validation epoch are kept. Seeded, one thread, float32: a CPU
    training repeats bit for bit.

    ``validation_weights`` (one per output, default equal) weigh the outputs' mean squared errors
    in the validation loss that decides the stop. Windows given as :class:`WindowsAlong` are computed
    in one pass over their series (the TCN only): the same outputs, a fraction of the cost."""
    with _one_thread():
        if isinstance(windows, WindowsAlong):
            inputs = 1 if windows.series.ndim == 1 else windows.series.shape[0]
        else:
            inputs = 1 if windows.ndim == 2 else windows.shape[1]
        net = _build(architecture, targets.shape[1], width, inputs, seed, device)
        if isinstance(windows, WindowsAlong) and not hasattr(net, "along"):
            raise ValueError(f"the {architecture} network takes its windows one by one, not along a series")
        x, xv = _inputs(windows, device), _inputs(validation_windows, device)
        y, yv = (torch.as_tensor(a, dtype=torch.float32, device=device) for a in (targets, validation_targets))
        weights = np.ones(targets.shape[1]) if validation_weights is None else np.asarray(validation_weights, float)
        w = torch.as_tensor(weights / weights.sum(), dtype=torch.float32, device=device)
        # fused: one kernel for every parameter's update (a TCN step 1.56 ms against 1.97 on one CPU thread)
        optimiser = torch.optim.Adam(net.parameters(), lr=learning_rate, weight_decay=weight_decay, fused=True)
        best, best_state, best_epoch, best_train, epoch = np.inf, None, 0, np.nan, 0
        for epoch in range(1, max_epochs + 1):
            net.train()
            optimiser.zero_grad()
            loss = torch.mean((_outputs(net, x) - y) ** 2)
            loss.backward()
            optimiser.step()
            net.eval()
            with torch.no_grad():
                validation = float(torch.sum(torch.mean((_outputs(net, xv) - yv) ** 2, dim=0) * w))
            if validation < best:
                best, best_epoch, best_train = validation, epoch, float(loss.detach())
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            elif epoch - best_epoch >= patience:
                break
        if best_state is None:
            raise ValueError("the validation loss was never finite")
        net.load_state_dict(best_state)
        net = net.to("cpu").eval()
        with torch.no_grad():
            xv_cpu = (xv[0].cpu(), xv[1].cpu()) if isinstance(xv, tuple) else xv.cpu()
            outputs = _outputs(net, xv_cpu).numpy().astype(float)
        errors = outputs - validation_targets
        return Training(net, best_train, best_epoch, epoch, np.mean(errors**2, axis=0), outputs)
