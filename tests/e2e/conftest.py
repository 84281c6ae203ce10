"""Session-wide builds of the small slice, shared by the end-to-end tests, and the command's and the
reader test's runs.

Each runs in a process of its own, started as the session starts (``background``: tests/conftest.py
and tests/e2e/background.py). Tests only read the two warehouses (a test that writes copies one first:
``Lake.at(full).copy_to(...)``), through one connection held open for the session.
"""

import pytest

from tests.e2e.helpers import held_open


@pytest.fixture(scope="session")
def full(background):
    with held_open(background.wait("full") / "pmx.ducklake") as path:
        yield path


@pytest.fixture(scope="session")
def truncated(background):
    with held_open(background.wait("truncated") / "pmx.ducklake") as path:
        yield path


@pytest.fixture(scope="session")
def cli_runs(background):
    """The folder of the command test's runs (tests/e2e/cli_scenario.py), once they have ended."""
    return background.wait("cli")


@pytest.fixture(scope="session")
def reader_runs(background):
    """The folder of the reader test's runs (tests/e2e/reader_scenario.py), once they have ended."""
    return background.wait("reader")
