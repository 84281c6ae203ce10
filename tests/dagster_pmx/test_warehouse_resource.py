"""The warehouse resource: one attached lake for a run, another process free to read and write beside it,
and a run point recorded when (and only when) a run succeeds."""

import os
import subprocess
import sys

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from dagster_pmx import run_points
from dagster_pmx.lake import Lake
from dagster_pmx.reader import connect
from dagster_pmx.resources import Warehouse

OTHER_PROCESS_WRITES = (
    "import sys; from dagster_pmx.lake import Lake; "
    "Lake.at(sys.argv[1]).open().execute(f'insert into {sys.argv[2]} values (9)')"
)


def _other_process_writes(path: str, table: str = "t") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", OTHER_PROCESS_WRITES, path, table], capture_output=True, text=True)


def test_held_lake_serves_every_connection_while_another_process_writes_and_reads(tmp_path):
    warehouse = Warehouse(path=str(tmp_path / "wh.ducklake"))
    warehouse.hold()
    try:
        with warehouse.connect() as con:
            con.execute("create table t (x int)")
            con.execute("insert into t values (1)")
        # a read-only request is a cursor of the held connection: it sees the write just made
        assert warehouse.query("select x from t")["x"].tolist() == [1]
        # the plain DuckDB file refused this ("Could not set lock on file"); a DuckLake admits it
        done = _other_process_writes(warehouse.abs_path)
        assert done.returncode == 0, done.stderr
        assert warehouse.query("select x from t order by x")["x"].tolist() == [1, 9]
        with connect(warehouse.abs_path) as reader:  # a reader beside the held writer
            assert reader.execute("select count(*) from t").fetchone() == (2,)
    finally:
        warehouse.release()
    with warehouse.connect(read_only=True) as con, pytest.raises(duckdb.Error, match="read.only|read-only"):
        con.execute("insert into t values (3)")


def test_a_successful_run_records_a_run_point_and_a_failed_run_does_not(tmp_path):
    path = str(tmp_path / "wh.ducklake")

    @dg.asset
    def writes(warehouse: Warehouse) -> None:
        warehouse.replace_table("raw.t", pd.DataFrame({"x": [1, 2]}))

    @dg.asset(deps=[writes])
    def fails_after_writing(warehouse: Warehouse) -> None:
        warehouse.replace_table("raw.u", pd.DataFrame({"x": [3]}))
        raise RuntimeError("the run fails after one more write")

    good = dg.materialize([writes], resources={"warehouse": Warehouse(path=path)})
    assert good.success
    with Lake.at(path).open(read_only=True) as con:
        points = run_points.run_points(con)
    assert points["run_id"].tolist() == [good.run_id]
    bad = dg.materialize(
        [writes, fails_after_writing], resources={"warehouse": Warehouse(path=path)}, raise_on_error=False
    )
    assert not bad.success
    with Lake.at(path).open(read_only=True) as con:
        assert run_points.run_points(con)["run_id"].tolist() == [good.run_id]
        assert con.execute("select count(*) from raw.u").fetchone() == (1,)  # committed, but past the run point
    # a reader stays on the state the successful run left: raw.u did not exist then
    with connect(path) as reader:
        assert reader.execute("select count(*) from raw.t").fetchone() == (2,)
        with pytest.raises(duckdb.CatalogException):
            reader.execute("select * from raw.u")


def test_a_dbt_subprocess_writes_while_the_run_holds_the_lake(tmp_path):
    """With PMX_DBT_IN_PROCESS=0 dbt is another process; the run sees its writes when it goes on."""
    from dagster_pmx.defs.transform.assets import _build
    from dagster_pmx.resources import PmxSettings

    path = str(tmp_path / "wh.ducklake")
    with Lake.at(path).open() as con:
        con.execute("create schema raw; create table raw.t (x int)")

    class SubprocessDbt:  # stands in for dagster-dbt's subprocess invocation
        in_process = False
        project_dir, target_path = tmp_path, tmp_path / "invocation"  # the folder _build deletes after

        def cli(self, args, context):
            self.args = args
            return self

        def stream(self):
            assert _other_process_writes(path, "raw.t").returncode == 0
            yield from ()

    @dg.asset
    def dbt_step(context: dg.AssetExecutionContext, warehouse: Warehouse) -> None:
        (tmp_path / "invocation").mkdir()
        list(_build(context, SubprocessDbt(), warehouse, PmxSettings(), full=False))
        assert not (tmp_path / "invocation").exists()
        assert warehouse.query("select x from raw.t")["x"].tolist() == [9]  # sees dbt's write

    assert dg.materialize([dbt_step], resources={"warehouse": Warehouse(path=path)}).success


def test_a_writer_keeps_small_writes_out_of_the_catalog(tmp_path):
    import sqlite3

    lake = Lake.at(tmp_path / "pmx.ducklake")
    with lake.open() as con:
        con.execute("create schema s")
        for i in range(3):  # a few rows each: DuckLake's default would inline them into the catalog
            con.execute(f"create or replace table s.t as select {i} as x")
        assert con.execute("select value from options() where option_name = 'data_inlining_row_limit'").fetchone() == (
            "0",
        )
        assert con.execute("select x from s.t").fetchall() == [(2,)]
    catalog = sqlite3.connect(lake.sqlite_file)
    inlined = catalog.execute(
        "select count(*) from sqlite_master where type = 'table' and name like 'ducklake_inlined_data_%' "
        "and name != 'ducklake_inlined_data_tables'"  # the registry of such tables: one per inlined table version
    ).fetchone()[0]
    catalog.close()
    assert inlined == 0
    assert list((tmp_path / "pmx.ducklake.files").rglob("*.parquet"))  # the rows are in Parquet files


def test_a_writer_compresses_the_data_files_with_zstd_and_a_lake_written_before_follows(tmp_path):
    import duckdb

    lake = Lake.at(tmp_path / "pmx.ducklake")
    with lake.open() as con:
        con.execute("call pmx.set_option('parquet_compression', 'snappy')")  # as a lake from before 0.4.0
        con.execute("create table old as select range as i from range(1000)")
    with lake.open() as con:  # a writer sets the option again
        con.execute("create table new as select range as i from range(1000)")
        files = {
            name: con.execute(f"select data_file from ducklake_list_files('pmx', '{name}')").fetchone()[0]
            for name in ("old", "new")
        }
    codecs = {
        name: duckdb.sql(f"select distinct compression from parquet_metadata('{path}')").fetchall()
        for name, path in files.items()
    }
    assert codecs == {"old": [("SNAPPY",)], "new": [("ZSTD",)]}


@pytest.mark.parametrize("held", [True, False])
def test_has_finds_tables_and_views_by_name_and_agrees_with_information_schema(tmp_path, held):
    warehouse = Warehouse(path=str(tmp_path / "wh.ducklake"))
    if held:
        warehouse.hold()
    try:
        with warehouse.connect() as con:
            con.execute("create schema ml")
            con.execute("create table ml.fits (x int)")
            con.execute("create view ml.recent as select * from ml.fits")
        listed = set(
            warehouse.query(
                "select table_schema || '.' || table_name as t from information_schema.tables "
                "where table_catalog = 'pmx'"
            )["t"]
        )
        for name in ("ml.fits", "ml.recent", "ml.missing", "nowhere.fits"):
            assert warehouse.has(name) is (name in listed), name
        assert warehouse.has("ml.fits", "ml.recent")
        assert not warehouse.has("ml.fits", "ml.missing")
        # a table dropped in another transaction is gone for the next lookup
        with warehouse.connect() as con:
            con.execute("drop view ml.recent")
        assert not warehouse.has("ml.recent")
    finally:
        warehouse.release()


def test_several_tables_are_written_in_one_snapshot_and_a_failure_writes_none(tmp_path):
    from dagster_pmx.lake import current_snapshot

    warehouse = Warehouse(path=str(tmp_path / "wh.ducklake"))
    day = pd.Timestamp("2024-01-02")
    a = pd.DataFrame({"date": [day, day + pd.Timedelta(days=1)], "x": [1.0, 2.0]})
    b = pd.DataFrame({"date": [day], "y": pd.Categorical(["up"])})  # stored as text: a lake has no ENUM
    assert warehouse.replace_tables({"marts.a": a, "ml.b": b}) == {"marts.a": 2, "ml.b": 1}
    with warehouse.connect() as con:
        before = current_snapshot(con)
    new_a = pd.DataFrame({"date": [day + pd.Timedelta(days=1), day + pd.Timedelta(days=2)], "x": [5.0, 6.0]})
    new_b = pd.DataFrame({"date": [day + pd.Timedelta(days=2)], "y": ["down"]})
    rows = warehouse.append_after_many(
        [("marts.a", new_a, day, "date"), ("ml.b", new_b, day, "date")],
        then=[("update ml.b set y = 'flat' where date = ?", [day])],
    )
    assert rows == {"marts.a": 3, "ml.b": 2}
    with warehouse.connect() as con:
        assert current_snapshot(con) == before + 1  # one commit for both tables and the update
        assert con.execute("select x from marts.a order by date").fetchall() == [(1.0,), (5.0,), (6.0,)]
        assert con.execute("select y from ml.b order by date").fetchall() == [("flat",), ("down",)]
    # a write that fails (no such column) leaves both tables as they were
    bad = pd.DataFrame({"date": [day + pd.Timedelta(days=3)], "nope": [1]})
    with pytest.raises(duckdb.Error):
        warehouse.append_after_many([("marts.a", new_a.iloc[:0], day, "date"), ("ml.b", bad, day, "date")])
    with warehouse.connect() as con:
        assert current_snapshot(con) == before + 1
        assert con.execute("select count(*) from marts.a").fetchone() == (3,)


def _columns(warehouse: Warehouse, table: str) -> list[tuple]:
    with warehouse.connect() as con:
        return con.execute(f"select column_name, column_type from (describe {table})").fetchall()


def test_tables_written_in_batches_equal_the_tables_written_whole_and_a_failed_batch_writes_nothing(tmp_path):
    from dagster_pmx.lake import current_snapshot

    rng = np.random.default_rng(3)
    days = pd.bdate_range("2024-01-02", periods=40)
    frame = pd.DataFrame(
        {
            "ticker": pd.Categorical(np.repeat(["AAA", "BBB", "CCC", "DDD"], 10)),
            "asof_date": days,
            "day": days.date,  # a DATE column
            "horizon": np.tile(np.array([1, 5], dtype=np.int64), 20),
            "y_pred": rng.normal(size=40),
            "converged": rng.random(40) > 0.5,
            "note": [None] * 39 + ["x"],
        }
    )
    scores = frame.groupby("ticker", observed=True)["y_pred"].mean().reset_index()
    whole = Warehouse(path=str(tmp_path / "whole.ducklake"))
    whole.replace_tables({"ml.f": frame, "marts.s": scores, "marts.none": frame.iloc[:0]})
    batched = Warehouse(path=str(tmp_path / "batched.ducklake"))

    def batches():
        for ticker in ["AAA", "BBB", "CCC", "DDD"]:
            rows = frame[frame["ticker"] == ticker]
            yield {"ml.f": rows, "marts.s": scores[scores["ticker"] == ticker], "marts.none": rows.iloc[:0]}

    assert batched.replace_tables_in_batches(batches()) == {"ml.f": 40, "marts.s": 4, "marts.none": 0}
    for table in ("ml.f", "marts.s", "marts.none"):
        assert _columns(batched, table) == _columns(whole, table), table
        with batched.connect() as b, whole.connect() as w:
            sql = f"select * from {table} order by all"
            pd.testing.assert_frame_equal(b.execute(sql).df(), w.execute(sql).df())
    with batched.connect() as con:
        before = current_snapshot(con)

    def failing():
        yield {"ml.f": frame.iloc[:5], "marts.s": scores}
        raise RuntimeError("the third ticker's ensemble failed")

    with pytest.raises(RuntimeError, match="third ticker"):
        batched.replace_tables_in_batches(failing())
    with batched.connect() as con:
        assert current_snapshot(con) == before  # nothing written: the tables are replaced only at the end
        assert con.execute("select count(*) from ml.f").fetchone() == (40,)


@pytest.mark.slow  # a speed or memory behaviour: `make test-slow` (the default suite's 15-minute budget)
def test_every_duckdb_of_a_run_is_bounded_by_the_memory_setting_and_spills_past_it(tmp_path):
    from dagster_pmx.defs.transform.project import dbt_env

    warehouse = Warehouse(path=str(tmp_path / "wh.ducklake"), memory_limit="64MB")
    with warehouse.connect() as con:
        limit, spill = con.execute(
            "select current_setting('memory_limit'), current_setting('temp_directory')"
        ).fetchone()
        assert limit == "61.0 MiB" and "pmx-duckdb-spill" in spill  # DuckDB reports 64 MB (10^6) in MiB
        # a sort of ~5x the limit completes: DuckDB spills to the folder instead of failing or growing
        rows = con.execute(
            "select count(*), min(a) from (select a from (select range a, random() b from range(20000000)) order by b)"
        ).fetchone()
        assert rows == (20000000, 0)
    held = Warehouse(path=str(tmp_path / "wh.ducklake"))  # the default
    held.hold()
    try:
        with held.connect() as a, held.connect() as b:  # the run's one database: one limit, one spill folder
            assert a.execute("select current_setting('memory_limit')").fetchone()[0] == "1.1 GiB"  # 1.25 GB
            assert (
                b.execute("select current_setting('temp_directory')").fetchone()
                == a.execute("select current_setting('temp_directory')").fetchone()
            )
    finally:
        held.release()
    with (
        Warehouse(path=str(tmp_path / "a.ducklake")).connect() as a,
        Warehouse(path=str(tmp_path / "b.ducklake")).connect() as b,
    ):
        folders = [c.execute("select current_setting('temp_directory')").fetchone()[0] for c in (a, b)]
        assert folders[0] != folders[1]  # DuckDB numbers its spill files from 0 in every database
    # dbt's DuckDB: the same limit; a spill folder of this process's own (another process's dbt may build
    # the same lake while a run keeps its dbt database open) that stays the same for a lake in the process
    # (a later dbt step of the run reuses the parse)
    env = dbt_env(warehouse.lake, "3GB")
    assert (
        env["DBT_PMX_MEMORY_LIMIT"] == "3GB"
        and env["DBT_PMX_TEMP_DIRECTORY"] == dbt_env(warehouse.lake)["DBT_PMX_TEMP_DIRECTORY"]
        and f"dbt-{os.getpid()}-" in env["DBT_PMX_TEMP_DIRECTORY"]
    )
    assert env["DBT_PMX_TEMP_DIRECTORY"] != dbt_env(Lake.at(tmp_path / "other.ducklake"))["DBT_PMX_TEMP_DIRECTORY"]


def test_dbt_sets_its_memory_limit_once_when_its_database_opens(tmp_path):
    """dbt-duckdb sets a profile's ``settings`` again on every cursor it opens, and DuckDB refuses a second
    ``SET temp_directory`` once the database has spilled ("Cannot switch temporary directory"): the 800-ticker
    feature build of ``make bench-features`` failed so. The limit and the folder are connection options: the
    limit in the profile, the folder (a process's own, which the profile must not render) from the plugin."""
    import yaml

    from dagster_pmx.defs.transform.duckdb_spill import Plugin
    from dagster_pmx.defs.transform.project import DBT_DIR

    output = yaml.safe_load((DBT_DIR / "profiles.yml").read_text())["pmx"]["outputs"]["dev"]
    assert set(output["config_options"]) == {"memory_limit"}
    assert {"module": "dagster_pmx.defs.transform.duckdb_spill"} in output["plugins"]
    assert not {"memory_limit", "temp_directory"} & set(output["settings"])
    config = {"memory_limit": "1GB"}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DBT_PMX_TEMP_DIRECTORY", str(tmp_path / "dbt-spill"))
        Plugin("duckdb_spill", {}).update_connection_config(None, config)
    assert config == {"memory_limit": "1GB", "temp_directory": str(tmp_path / "dbt-spill")}
    spill = str(tmp_path / "spill")
    with duckdb.connect() as con:  # what DuckDB does with a second SET after a spill, the same folder too
        con.execute(f"set memory_limit = '20MB'; set temp_directory = '{spill}'")
        con.execute("select count(*) from (select range a, random() b from range(3000000) order by b)").fetchall()
        with pytest.raises(duckdb.Error, match="temporary directory"):
            con.execute(f"set temp_directory = '{spill}'")


@pytest.mark.parametrize("held", [False, True])
def test_ibis_reads_the_schema_ibis_itself_reads_and_a_run_shares_one_backend(tmp_path, held):
    import ibis

    from dagster_pmx.lake import use

    warehouse = Warehouse(path=str(tmp_path / "pmx.ducklake"))
    with warehouse.connect() as con:
        con.execute("create schema marts")
        con.execute(
            "create table marts.kinds (t timestamp not null, d date, s varchar, f double, i bigint, b boolean,"
            " m decimal(18, 4), l double[], n hugeint, u utinyint)"
        )
        con.execute(
            "insert into marts.kinds values (now()::timestamp, current_date, 'x', 1.5, 2, true, 3.25, [1.0, 2.0], 4, 5)"
        )
    if held:
        warehouse.hold()
    try:
        with warehouse.ibis() as db, warehouse.connect() as con:
            ours = db.table("kinds", database="marts")
            theirs = ibis.duckdb.from_connection(use(con)).table("kinds", database="marts")
            assert ours.schema() == theirs.schema()
            assert ours.to_pandas().equals(theirs.to_pandas())
            with pytest.raises(ibis.common.exceptions.TableNotFound):
                db.table("missing", database="marts")
            with warehouse.ibis() as again:
                assert (again is db) == held  # one backend for the run; a new one outside
    finally:
        warehouse.release()


def test_batches_in_any_order_store_the_same_rows(tmp_path):
    # the walk-forward takes each pooled model's rows when it ends, which depends on timing; the lake keeps
    # no row order of its own (DuckLake's insert is parallel), so the rows, not their order, are the contract
    names = ["batch 0", "batch 1", "pooled a", "pooled b"]

    def batches(order):
        for name in order:
            yield {"ml.f": pd.DataFrame({"name": [name] * 3, "row": range(3)})}

    stored = []
    for k, order in enumerate([names, names[::-1]]):
        warehouse = Warehouse(path=str(tmp_path / f"wh{k}.ducklake"))
        assert warehouse.replace_tables_in_batches(batches(order)) == {"ml.f": 12}
        stored.append(warehouse.query("select name, row from ml.f order by name, row"))
    pd.testing.assert_frame_equal(stored[0], stored[1])
    assert stored[0]["name"].tolist() == [n for n in names for _ in range(3)]
