"""The dbt resource: dbt run in this process reads and reports like the dbt subprocess."""

import pytest

from dagster_pmx.defs.transform.dbt_cli import DBT_GLOBAL_FLAGS, PmxDbtCli
from dagster_pmx.defs.transform.project import DBT_EXECUTABLE, dbt_env, dbt_project
from dagster_pmx.lake import Lake


def _dbt(in_process: bool) -> PmxDbtCli:
    return PmxDbtCli(
        project_dir=dbt_project,
        dbt_executable=DBT_EXECUTABLE,
        global_config_flags=DBT_GLOBAL_FLAGS,
        in_process=in_process,
    )


def _events(invocation) -> list[dict]:
    return [e.raw_event for e in invocation.stream_raw_events()]


@pytest.mark.parametrize("in_process", [True, False])
def test_a_query_through_dbt_reports_its_result_and_leaves_the_warehouse_openable(tmp_path, monkeypatch, in_process):
    path = tmp_path / "pmx.ducklake"
    with Lake.at(path).open() as con:
        con.execute("create schema raw; create table raw.answer as select 42 as x")
    for name, value in dbt_env(Lake.at(path)).items():
        monkeypatch.setenv(name, value)
    invocation = _dbt(in_process).cli(
        ["show", "--inline", "select x * 2 as y from pmx.raw.answer"], raise_on_error=True
    )
    events = _events(invocation)
    assert invocation.is_successful()
    shown = [e for e in events if e["info"]["name"] == "ShowNode"]
    assert len(shown) == 1 and "| 84 |" in shown[0]["data"]["preview"]
    with Lake.at(path).open(read_only=True) as con:
        assert con.execute("select x from raw.answer").fetchone() == (42,)


@pytest.mark.parametrize("in_process", [True, False])
def test_a_failing_dbt_command_fails_with_dbts_error(tmp_path, monkeypatch, in_process):
    path = tmp_path / "pmx.ducklake"
    Lake.at(path).open().close()
    for name, value in dbt_env(Lake.at(path)).items():
        monkeypatch.setenv(name, value)
    invocation = _dbt(in_process).cli(["show", "--inline", "select * from pmx.raw.missing"], raise_on_error=False)
    events = _events(invocation)
    assert not invocation.is_successful()
    assert any(e["info"]["level"] == "error" and "missing" in e["info"]["msg"] for e in events)
