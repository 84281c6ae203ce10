"""Forecasters: the :class:`~python_models.forecasters.base.Forecaster` interface, every model family
(random walk, SARIMAX, the GARCH family, SSA/SAMoSSA, multivariate SSA, CUSUM change points, Bayesian
ridge, XGBoost, the TCNs, the HMM regime model), the registry of names and the ensembles that
combine their forecasts."""
