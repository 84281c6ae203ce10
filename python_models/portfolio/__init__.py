"""Portfolio construction: fractional Kelly sizing with caps, the regime-aware barbell and its safe
sleeve (bond proxy, duration timing), risk parity, and the drawdown control."""
