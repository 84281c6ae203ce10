"""backtest domain of the pmx asset graph."""
