"""The forecasters pmx runs by default, by name."""

from __future__ import annotations

from python_models.base import Forecaster
from python_models.garch import Garch
from python_models.random_walk import RandomWalk
from python_models.sarimax import Sarimax

#: Name of the model every other is scored against (Diebold–Mariano baseline).
BASELINE = "random_walk"


def default_forecasters() -> list[Forecaster]:
    """Random walk with drift, GARCH(1,1)-t, and ARMA(1,1) via SARIMAX."""
    return [RandomWalk(), Garch(), Sarimax()]
