"""pmx numerical library: forecasters, walk-forward validation, metrics, ensemble, sizing, backtest.

Pure numpy/pandas/statsmodels/arch code: nothing here imports dagster, duckdb or dbt.
"""
