"""The warehouse resource: one open database for a run, the file per connection elsewhere."""

import subprocess
import sys

import dagster as dg
import duckdb
import pandas as pd
import pytest

from dagster_pmx.resources import Warehouse

OTHER_PROCESS_WRITES = (
    "import duckdb, sys; duckdb.connect(sys.argv[1]).execute(f'insert into {sys.argv[2]} values (9)')"
)


def _other_process_writes(path: str, table: str = "t") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", OTHER_PROCESS_WRITES, path, table], capture_output=True, text=True)


def test_held_database_serves_every_connection_and_released_lets_another_process_write(tmp_path):
    warehouse = Warehouse(path=str(tmp_path / "wh.duckdb"))
    warehouse.hold()
    try:
        with warehouse.connect() as con:
            con.execute("create table t (x int)")
            con.execute("insert into t values (1)")
        # a read-only request is a cursor of the held database: it sees the write just made
        assert warehouse.query("select x from t")["x"].tolist() == [1]
        blocked = _other_process_writes(warehouse.abs_path)
        assert blocked.returncode != 0 and "lock" in blocked.stderr.lower()
        with warehouse.released():
            assert _other_process_writes(warehouse.abs_path).returncode == 0
        assert warehouse.query("select x from t order by x")["x"].tolist() == [1, 9]
    finally:
        warehouse.release()
    # released for good: the file is opened per connection again, read-only where asked
    with warehouse.connect(read_only=True) as con, pytest.raises(duckdb.Error, match="read-only"):
        con.execute("insert into t values (3)")
    assert _other_process_writes(warehouse.abs_path).returncode == 0
    assert warehouse.query("select count(*) as n from t")["n"].iloc[0] == 3


def test_a_run_holds_the_warehouse_open_and_closes_it_at_the_end(tmp_path):
    path = str(tmp_path / "wh.duckdb")
    seen = {}

    @dg.asset
    def writes(warehouse: Warehouse) -> None:
        warehouse.replace_table("raw.t", pd.DataFrame({"x": [1, 2]}))

    @dg.asset(deps=[writes])
    def reads(warehouse: Warehouse) -> None:
        seen["rows"] = int(warehouse.query("select count(*) as n from raw.t")["n"].iloc[0])
        # the run's process holds the file read-write: it cannot be opened again with other settings
        with pytest.raises(duckdb.ConnectionException, match="different configuration"):
            duckdb.connect(path, read_only=True)

    result = dg.materialize([writes, reads], resources={"warehouse": Warehouse(path=path)})
    assert result.success and seen["rows"] == 2
    assert _other_process_writes(path, "raw.t").returncode == 0


def test_a_dbt_subprocess_gets_the_file_while_the_run_holds_it(tmp_path):
    """With PMX_DBT_IN_PROCESS=0 dbt is another process: the dbt step closes the run's database for it."""
    from dagster_pmx.defs.transform.assets import _build
    from dagster_pmx.resources import PmxSettings

    path = str(tmp_path / "wh.duckdb")
    with duckdb.connect(path) as con:
        con.execute("create schema raw; create table raw.t (x int)")

    class SubprocessDbt:  # stands in for dagster-dbt's subprocess invocation
        in_process = False

        def cli(self, args, context):
            self.args = args
            return self

        def stream(self):
            assert _other_process_writes(path, "raw.t").returncode == 0
            yield from ()

    @dg.asset
    def dbt_step(context: dg.AssetExecutionContext, warehouse: Warehouse) -> None:
        list(_build(context, SubprocessDbt(), warehouse, PmxSettings(), full=False))
        assert warehouse.query("select x from raw.t")["x"].tolist() == [9]  # held again, sees dbt's write

    assert dg.materialize([dbt_step], resources={"warehouse": Warehouse(path=path)}).success
