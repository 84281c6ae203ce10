"""Session-wide builds of the small slice, shared by the end-to-end tests."""

import pytest

from tests.e2e.helpers import CUT, build


@pytest.fixture(scope="session")
def full(tmp_path_factory):
    path = tmp_path_factory.mktemp("full") / "pmx.ducklake"
    result = build(path)
    assert result.success, [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return path


@pytest.fixture(scope="session")
def truncated(tmp_path_factory):
    path = tmp_path_factory.mktemp("cut") / "pmx.ducklake"
    assert build(path, end_date=CUT).success
    return path
