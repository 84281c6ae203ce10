"""Great Expectations 1.x suites, one module per gated table, and a runner for them."""
