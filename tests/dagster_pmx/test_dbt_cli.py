"""The dbt resource: dbt run in this process reads and reports like the dbt subprocess."""

import os

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


@pytest.mark.slow  # a speed or memory behaviour: `make test-slow` (the default suite's 15-minute budget)
def test_in_a_run_dbts_database_stays_open_between_dbt_steps_until_a_build_fails_or_the_run_ends(tmp_path, monkeypatch):
    import dagster as dg
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    path = tmp_path / "pmx.ducklake"
    with Lake.at(path).open() as con:
        con.execute("create schema raw; create table raw.answer as select 42 as x")
    for name, value in dbt_env(Lake.at(path)).items():
        monkeypatch.setenv(name, value)
    seen, folders = [], []

    def show(dbt: PmxDbtCli, query: str) -> None:
        dbt.cli(["show", "--inline", query], raise_on_error=False).wait()
        seen.append(DuckDBConnectionManager._ENV)
        if seen[-1] is not None:  # the spill folder the plugin gave it: this process's, from the environment
            folders.append(seen[-1].conn.execute("select current_setting('temp_directory')").fetchone()[0])

    @dg.op
    def failing(dbt: PmxDbtCli):
        show(dbt, "select * from pmx.raw.missing")

    @dg.op(ins={"after": dg.In(dg.Nothing)})
    def first(dbt: PmxDbtCli):
        show(dbt, "select x from pmx.raw.answer")

    @dg.op(ins={"after": dg.In(dg.Nothing)})
    def second(dbt: PmxDbtCli):
        show(dbt, "select x + 1 from pmx.raw.answer")

    @dg.job(resource_defs={"dbt": _dbt(in_process=True)}, executor_def=dg.in_process_executor)
    def steps():
        second(after=first(after=failing()))

    assert steps.execute_in_process().success
    after_failure, kept, reused = seen
    assert after_failure is None  # a failed build closes dbt's database
    assert kept is not None and reused is kept  # a successful one keeps it: the next step's build used it
    assert folders == [os.environ["DBT_PMX_TEMP_DIRECTORY"]] * 2
    assert DuckDBConnectionManager._ENV is None  # the run's end closes it
    with Lake.at(path).open() as con:  # and the lake is free for a writer
        con.execute("insert into raw.answer values (43)")
