"""pmx numerical library: plain functions and small classes on numpy/pandas.

Subpackages mirror the Dagster domains under ``dagster_pmx/defs``:

- :mod:`python_models.forecasters` — every forecaster, the registry and the ensembles;
- :mod:`python_models.evaluation` — walk-forward validation, accuracy metrics, model comparisons;
- :mod:`python_models.governance` — model selection and model risk, signal confidence, feature drift;
- :mod:`python_models.portfolio` — sizing (Kelly), the barbell, risk parity, the safe sleeve, drawdown control;
- :mod:`python_models.backtest` — the backtester, performance statistics, capacity, the tearsheet;
- :mod:`python_models.trading` — the broker interface, the paper broker, paper trading;
- :mod:`python_models.data_quality` — the data-quality wall incoming prices pass through.

Nothing here imports dagster, duckdb or dbt.
"""
