import os

import numpy as np
import pandas as pd
import pytest

from tests.e2e.background import FIXTURES, Background


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


def pytest_collection_modifyitems(items):
    """The tests that wait for background work (tests/e2e/background.py) run after the others, each group
    in its usual order: the work then has the other tests' time to finish on the second core."""
    items.sort(key=lambda item: any(fixture in FIXTURES for fixture in item.fixturenames))


@pytest.fixture(scope="session", autouse=True)
def background(request, tmp_path_factory):
    """The end-to-end tests' work that runs in processes of its own (tests/e2e/background.py: the two
    warehouses of the slice, the command test's and the reader test's runs): what the selected tests need
    starts as the session starts, one piece after another in the order the tests need them, and runs on
    the second core while the tests before those run on the first."""
    work = Background(tmp_path_factory.mktemp("background"))
    # under pytest-xdist every worker collects every test: each then starts only what a test it runs waits for
    if "PYTEST_XDIST_WORKER" not in os.environ:
        needed = [FIXTURES[f] for item in request.session.items for f in item.fixturenames if f in FIXTURES]
        work.run_in_order(list(dict.fromkeys(needed)))
    yield work
    work.stop()
