"""Trading: the broker interface, the paper broker (simulated fills with the backtester's cost model)
and the paper-trading ledger that turns target weights into orders."""
