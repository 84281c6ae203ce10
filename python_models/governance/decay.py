"""Model decay: a model whose loss has risen above its baseline's on the same rows, persistently.

Before this detector, governance's only emergency stop read a model's plain rolling directional accuracy
against an absolute floor (0.45). When the market falls, every mostly-long model is "wrong" together, so
the floor stopped them all at once: it timed the market, it did not find a model that decayed (the floor
is kept, on the balanced accuracy: :mod:`.policy`). This detector reads instead the
**relative loss differential** against the baseline (the random walk) on the same rows:
``d_t = L_model / L_baseline - 1``, with ``L`` the cross-sectional mean over tickers of the squared errors of
the forecasts realised at date ``t`` (the date's MSE ratio, minus 1). A sell-off multiplies both losses
together and leaves ``d_t`` near where it was (the absolute differential would swing with the losses'
scale, and the CUSUM, which keeps only the upward swings, would take them for decay: tested); a model that
lost its skill raises ``d_t`` and keeps it up.

Page's one-sided CUSUM (Page 1954) on the standardised differential: ``z_t = (d_t - m_t) / s_t`` and
``S_t = max(0, S_(t-1) + z_t - k)``; the model is *decayed* at the first date with ``S_t > h`` and stays
so until ``S_t`` is back at 0. ``m_t`` is the mean of ``d`` over the ``reference`` dates before ``t`` (the
model's own level: in control is "as good, relative to the baseline, as it has been"; whether it was ever
better than the baseline is for the promotion rules and the leaderboard to say, and every default model
loses to the random walk by 0.1 to 20 % of its MSE), ``s_t`` the long-run standard deviation of ``d`` over
those dates (Newey–West with ``lags`` lags: the forecasts' horizons overlap, so ``d`` is
autocorrelated and its plain standard deviation understates how far its sums wander), so ``z`` is in the
units of a sum's standard deviation and ``k``, ``h`` keep their usual meaning for an independent series:
``k = 0.5`` tunes the test to a shift of one standard deviation, and ``h`` sets the false-alarm rate. The
statistic at ``t`` reads ``d`` up to ``t`` only (point in time). A decay that lasts is absorbed into the
reference after ``reference`` dates and the alarm ends: it is a signal to act on (stop, retrain), not a
state that persists on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class DecayPolicy:
    """The CUSUM's settings (see the module docstring)."""

    reference: int = 252
    lags: int = 21
    k: float = 0.5
    h: float = 10.0

    def __post_init__(self) -> None:
        if self.reference < 20 or self.lags < 0 or self.k < 0 or self.h <= 0 or self.lags >= self.reference:
            raise ValueError(
                "need reference >= 20, 0 <= lags < reference, k >= 0 and h > 0, got "
                f"{self.reference}, {self.lags}, {self.k}, {self.h}"
            )


def long_run_sd(x: np.ndarray, lags: int) -> float:
    """Newey–West (Bartlett kernel) long-run standard deviation of ``x`` around its mean."""
    x = np.asarray(x, dtype=float)
    e = x - x.mean()
    n = len(e)
    variance = float(e @ e) / n
    for lag in range(1, min(lags, n - 1) + 1):
        variance += 2.0 * (1.0 - lag / (lags + 1.0)) * float(e[lag:] @ e[:-lag]) / n
    return float(np.sqrt(max(variance, 0.0)))


def relative_loss(model_loss: pd.Series | pd.DataFrame, baseline_loss: pd.Series | pd.DataFrame):
    """``model_loss / baseline_loss - 1`` cell by cell, NaN where the baseline's loss is not positive."""
    return model_loss / baseline_loss.where(baseline_loss > 0) - 1.0


def decay_cusum(
    differential: pd.Series,
    policy: DecayPolicy = DecayPolicy(),
    after: pd.Timestamp | None = None,
    cusum: float = 0.0,
    alarm: bool = False,
) -> pd.DataFrame:
    """The CUSUM of a model's daily loss differential against its baseline, date by date.

    Parameters
    ----------
    differential : Series
        ``d_t`` by realisation date (:func:`relative_loss`), sorted.
    policy : DecayPolicy
    after : Timestamp, optional
        Resume a run that stopped at this date: only the dates after it are computed, from the
        statistic ``cusum`` and the ``alarm`` it left there. Their reference windows read the dates
        before them, so ``differential`` must hold the ``reference`` dates before the first of them
        (or every date from the first: a date with fewer before it is still warming up).
    cusum, alarm : float, bool
        The CUSUM and the alarm at ``after`` (0 and off for a run from the first date).

    Returns
    -------
    DataFrame
        By date (those after ``after`` when given): ``scale`` (the long-run sd of the ``reference``
        dates before), ``z`` (the date's differential above their mean, in those sds), ``cusum`` and
        ``decayed`` (the CUSUM above ``h``, until it is back at 0). A date with fewer than
        ``reference`` dates before it has no scale: NaN, and not decayed.
    """
    d = differential.dropna().astype(float)
    if not d.index.is_monotonic_increasing:
        raise ValueError("the differential must be sorted by date")
    values = d.to_numpy()
    n = len(values)
    first = 0 if after is None else int(d.index.searchsorted(after, side="right"))
    scale, z, out = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    decayed = np.zeros(n, dtype=bool)
    s, on = float(cusum), bool(alarm)
    for t in range(max(first, policy.reference), n):
        reference = values[t - policy.reference : t]
        sd = long_run_sd(reference, policy.lags)
        scale[t] = sd
        step = (values[t] - reference.mean()) / sd if sd > 0 else 0.0
        z[t] = step
        s = max(0.0, s + step - policy.k)
        on = s > policy.h or (on and s > 0.0)
        out[t], decayed[t] = s, on
    frame = pd.DataFrame({"scale": scale, "z": z, "cusum": out, "decayed": decayed}, index=d.index)
    return frame.iloc[first:]
