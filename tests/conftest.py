import numpy as np
import pandas as pd
import pytest


def arma_returns(
    n: int = 1200, seed: int = 0, phi: float = 0.3, theta: float = -0.1, mu: float = 3e-4, garch: bool = True
) -> pd.Series:
    """Seeded daily log returns: ARMA(1,1) mean with GARCH(1,1) variance."""
    rng = np.random.default_rng(seed)
    z = rng.standard_t(8, size=n) / np.sqrt(8 / 6)
    h = np.full(n, 1e-4)
    e = np.zeros(n)
    y = np.zeros(n)
    for t in range(1, n):
        h[t] = 2e-6 + 0.08 * e[t - 1] ** 2 + 0.9 * h[t - 1] if garch else 1e-4
        e[t] = np.sqrt(h[t]) * z[t]
        y[t] = mu * (1 - phi) + phi * y[t - 1] + e[t] + theta * e[t - 1]
    return pd.Series(y, index=pd.bdate_range("2000-01-03", periods=n), name="TEST")


@pytest.fixture
def returns() -> pd.Series:
    return arma_returns()
