"""Governance: which model the signals follow (promote, hold, revert, emergency stop), the
confidence of a signal, the trade gate, and input-feature drift."""
