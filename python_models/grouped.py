"""Trailing windows over several series stacked in one frame, each series on its own.

Rows carry a label (``by``), each label's rows contiguous and in time order. One grouped pandas
call then gives every series the windows, and the values, a call per series gives: the loop over
(model, ticker) or (ticker, horizon) series without a pandas call each. Without labels, the frame
is one series.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import pandas as pd

Frame = TypeVar("Frame", pd.Series, pd.DataFrame)


def trailing(values: Frame, how: str, window: int, min_obs: int, by: np.ndarray | pd.Series | None) -> Frame:
    """A rolling ``how`` (``mean``, ``sum``, ``median``) over the trailing ``window`` rows of each
    label's series, NaN until ``min_obs`` values; the index of ``values`` kept (it may repeat across
    labels)."""
    if by is None:
        return getattr(values.rolling(window, min_periods=min_obs), how)()
    positional = values.reset_index(drop=True)
    rolled = getattr(positional.groupby(np.asarray(by), sort=False).rolling(window, min_periods=min_obs), how)()
    return rolled.droplevel(0).sort_index().set_axis(values.index)


def lag(values: Frame, periods: int, by: np.ndarray | pd.Series | None) -> Frame:
    """``values.shift(periods)`` within each label's series."""
    if by is None:
        return values.shift(periods)
    positional = values.reset_index(drop=True)
    return positional.groupby(np.asarray(by), sort=False).shift(periods).set_axis(values.index)
