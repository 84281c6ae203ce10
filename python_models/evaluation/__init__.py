"""Evaluation of forecasts: walk-forward folds (purge, embargo, refit cadence), accuracy metrics and
the Diebold–Mariano test, and statistical comparisons across models (pairwise tests, bootstrap
intervals)."""
