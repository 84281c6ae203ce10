"""Risk of the strategies' books: value at risk and expected shortfall (``var``) and the tests of a
VaR's exceedances (``backtests``)."""
