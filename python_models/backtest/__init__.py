"""Backtesting: the weight-based backtester (execution timing, costs, cash), performance statistics,
capacity at several book sizes, and the tearsheet."""
