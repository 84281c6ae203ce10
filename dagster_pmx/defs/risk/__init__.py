"""Risk of the strategies' books: VaR and ES per strategy and session, and the backtests of the VaR."""
