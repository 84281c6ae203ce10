"""The forecasters pmx knows, by name, and the set it runs by default."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from python_models.forecasters.base import Forecaster, PanelForecaster
from python_models.forecasters.boosting import PooledXgboost
from python_models.forecasters.changepoint import SsaCusum
from python_models.forecasters.feature_tcn import FeatureTcn
from python_models.forecasters.garch import Garch
from python_models.forecasters.hmm import GaussianHmm
from python_models.forecasters.linear import BayesianRidgeForecaster
from python_models.forecasters.mssa import Mssa
from python_models.forecasters.neural import LstmNet, TemporalConvNet
from python_models.forecasters.random_walk import RandomWalk
from python_models.forecasters.sarimax import Sarimax, SarimaxExog
from python_models.forecasters.ssa import Samossa
from python_models.forecasters.ssa_policy import SsaPolicy

#: Name of the model every other is scored against (Diebold–Mariano baseline).
BASELINE = "random_walk"

#: Models fitted on one ticker's returns at a time.
SERIES_MODELS: dict[str, Callable[[], Forecaster]] = {
    "random_walk": RandomWalk,
    "garch": Garch,
    "gjr_garch": lambda: Garch(vol="GJR"),
    "egarch": lambda: Garch(vol="EGARCH"),
    "sarimax": Sarimax,
    "sarimax_auto": lambda: Sarimax(order="auto"),
    "samossa": Samossa,
    "ssa_cusum": SsaCusum,
    "hmm": GaussianHmm,
    "bayesian_ridge": BayesianRidgeForecaster,
    "tcn": TemporalConvNet,
    "lstm": LstmNet,
}

#: Models fed the whole panel: fitted across tickers (xgboost, mssa, tcn_features; mssa_rl learns its
#: policy across tickers), or per ticker with regressors from marts.features (sarimax_exog).
POOLED_MODELS: dict[str, Callable[[], PanelForecaster]] = {
    "xgboost": PooledXgboost,
    "mssa": Mssa,
    "mssa_rl": SsaPolicy,
    "sarimax_exog": SarimaxExog,
    "tcn_features": FeatureTcn,
}

MODELS: dict[str, Callable[[], Forecaster | PanelForecaster]] = {**SERIES_MODELS, **POOLED_MODELS}

#: What `make run` fits: every model whose walk-forward fits the default time budget. SARIMAX is
#: the automatic-order one (``sarimax_auto``: an approximate search, then one exact fit, about 1.1
#: times the fixed ARMA(1,1)'s cost: benchmarks/sarimax_order_search.py); the fixed-order ``sarimax``
#: is kept for research. ``sarimax_exog`` (ARMA(1,1) with regressors per stock) joined once the
#: compiled ARMA likelihood (arma_likelihood.py) cut its cost from 198 s to 52 s for the default
#: universe on one thread. The TCN trains in one pass over each training window (its outputs see 31
#: sessions of its 63: torch_networks.Tcn.along) and the LSTM refits every 252 sessions. Not yet in
#: it (run it with PMX_MODELS=all): the feature TCN (pooled over 21-session windows of seven
#: features: 178 s). `make bench-models` measures each.
DEFAULT_MODELS: tuple[str, ...] = (
    "random_walk",
    "garch",
    "gjr_garch",
    "egarch",
    "sarimax_auto",
    "sarimax_exog",
    "samossa",
    "ssa_cusum",
    "mssa",
    "mssa_rl",
    "hmm",
    "bayesian_ridge",
    "xgboost",
    "tcn",
    "lstm",
)


def forecasters(names: Sequence[str] | str | None = None) -> list[Forecaster | PanelForecaster]:
    """Forecasters by name: a sequence, a comma-separated string, "all", or None for the defaults."""
    if names is None or names == "" or names == ():
        names = DEFAULT_MODELS
    elif isinstance(names, str):
        names = tuple(MODELS) if names.strip().lower() == "all" else [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise ValueError(f"unknown models {unknown}; choose from {sorted(MODELS)} or 'all'")
    if BASELINE not in names:
        raise ValueError(f"the model set must include the baseline {BASELINE!r}: every score is relative to it")
    return [MODELS[n]() for n in dict.fromkeys(names)]


def default_forecasters() -> list[Forecaster | PanelForecaster]:
    """The default set (DEFAULT_MODELS)."""
    return forecasters(DEFAULT_MODELS)
