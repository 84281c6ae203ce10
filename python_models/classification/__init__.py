"""Calibrated classifiers of the binary targets (direction, significant move), their walk-forward and scores."""
