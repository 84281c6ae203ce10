"""A team's configuration: the lake's catalog in PostgreSQL, several writers at once (issue 19).

The SQLite catalog takes one writer at a time (Dagster's queue). A team points ``catalog`` at
PostgreSQL so that several machines write the same lake; these tests check that the properties the
SQLite tests check still hold then: writes, reads, readers that a writer never disturbs, and writers
at once leaving what the same writes leave one after the other.

Overlap is arranged, not hoped for: :func:`meeting_before_commit` holds each writer's first
transaction open until every writer has done its work, so each commits on a snapshot another has
since changed. Writer *processes* (what two machines are) are also started together, their imports
done before the start line.

The PostgreSQL server comes from Debian's ``postgresql`` package (:mod:`tests.e2e.postgres`).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

import dagster_pmx.lake as lake_module
from dagster_pmx import reader
from dagster_pmx.defs.ingest.assets import PRICES_DDL, exchange_sessions, raw_prices, upsert
from dagster_pmx.defs.ingest.sources import PRICE_COLUMNS, BundledSource
from dagster_pmx.lake import CONFLICT, current_snapshot
from dagster_pmx.resources import PmxSettings, Warehouse

#: The fixtures postgres_server (one server for the session) and postgres_catalog (a database per test).
pytest_plugins = ["tests.e2e.postgres"]

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY = ["ticker", "date", "source"]
COLUMNS = [*PRICE_COLUMNS, "flags"]
#: The window the writers ingest from the bundled real prices (tests/e2e/helpers.py's slice).
SETTINGS = dict(start_date="2006-01-01", end_date="2012-12-31")
#: When a row was written: differs between two runs of the same writes by design.
STAMPS = ("ingested_at", "quarantined_at", "replaced_at", "recorded_at", "refreshed_at")
#: Two machines' universes: disjoint, the benchmark left out (run config ``tickers``).
UNIVERSES = (["AAPL", "MSFT"], ["JPM", "XOM"])


def team_warehouse(folder: Path, dsn: str) -> Warehouse:
    """The resource as a team configures it: a PostgreSQL catalog and a data folder of its own.
    ``path`` only places the source cache beside it: no SQLite catalog is made there."""
    return Warehouse(path=str(folder / "pmx.ducklake"), catalog=f"postgres:{dsn}", data_path=str(folder / "files"))


def table(warehouse: Warehouse, sql: str) -> pd.DataFrame:
    """A query's rows, without the columns that stamp when a row was written."""
    frame = warehouse.query(sql)
    return frame.drop(columns=[c for c in STAMPS if c in frame.columns])


@functools.cache
def _bundled_slice(tickers: tuple[str, ...]) -> pd.DataFrame:
    prices = BundledSource().prices(list(tickers))
    prices["date"] = pd.to_datetime(prices["date"])
    within = prices["date"].between(SETTINGS["start_date"], SETTINGS["end_date"])
    return prices[within].assign(flags="").sort_values(KEY).reset_index(drop=True)


def bundled_prices(tickers: list[str], year: int | None = None) -> pd.DataFrame:
    """The bundled prices of ``tickers`` (of ``year``, or of the whole window) as ``upsert`` takes them."""
    prices = _bundled_slice(tuple(tickers))
    chosen = prices if year is None else prices[prices["date"].dt.year == year]
    return chosen.reset_index(drop=True)


def upsert_prices(warehouse: Warehouse, frame: pd.DataFrame) -> int:
    """``raw.prices`` upserted with ``frame`` in one transaction (the ingest makes one per ticker)."""
    return upsert(warehouse, "raw.prices", PRICES_DDL, frame, COLUMNS, KEY)


def counting_conflicts(conflicts: list[str]) -> Callable:
    """A stand-in for :func:`dagster_pmx.lake.retry` that notes in ``conflicts`` each commit DuckLake
    refused for a conflict, which ``in_transaction`` then runs again: the retries the writers needed."""
    retry = lake_module.retry

    def retry_noting_conflicts(action, pattern=lake_module.LOCKED, attempts=60, wait=0.05):
        def noted():
            try:
                return action()
            except duckdb.Error as exc:
                if pattern is CONFLICT and CONFLICT.search(str(exc)):
                    lines = [line for line in str(exc).splitlines() if "conflict" in line.lower()]
                    conflicts.append((lines or [str(exc)])[0])
                raise

        return retry(noted, pattern, attempts, wait)

    return retry_noting_conflicts


def meeting_before_commit(monkeypatch: pytest.MonkeyPatch, writers: int) -> None:
    """Hold each thread's first lake transaction open, its work done, until ``writers`` threads have
    each done theirs: each then commits on the snapshot it began on, which another has since changed
    (the overlap two machines may have at any time, here on every run)."""
    meeting = threading.Barrier(writers, timeout=120)
    met = threading.local()
    in_transaction = lake_module.in_transaction

    def in_transaction_meeting_before_commit(con, body):
        def body_then_meet():
            result = body()
            if not getattr(met, "done", False):  # a retry after a conflict commits at once
                met.done = True
                meeting.wait()
            return result

        return in_transaction(con, body_then_meet)

    monkeypatch.setattr(lake_module, "in_transaction", in_transaction_meeting_before_commit)


def in_threads(*writes: Callable[[], object]) -> None:
    """Run ``writes`` at once, a thread each; each attaches the lake in a DuckDB of its own, which to the
    catalog is as separate a writer as another process. Re-raises the first failure."""
    failures: list[BaseException] = []

    def run(write):
        try:
            write()
        except BaseException as exc:  # handed to the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(write,)) for write in writes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    if failures:
        raise failures[0]


# --- a: one writer, readers beside it -------------------------------------------------------------


def test_a_lake_on_postgres_writes_reads_and_serves_readers_while_a_writer_commits(postgres_catalog, tmp_path):
    warehouse = team_warehouse(tmp_path, postgres_catalog)
    first = bundled_prices(["AAPL"], year=2006)
    assert upsert_prices(warehouse, first) == len(first)
    assert not (tmp_path / "pmx.ducklake").exists()  # the catalog is the database, not a file
    assert list((tmp_path / "files").rglob("*.parquet"))  # the data files are in data_path
    stored = table(warehouse, f"select {', '.join(COLUMNS)} from raw.prices order by ticker, date, source")
    pd.testing.assert_frame_equal(stored, first[COLUMNS], check_dtype=False)

    pinned = reader.connect(lake=warehouse.lake)  # an analyst's notebook: the state when it was opened
    pinned_at = current_snapshot(pinned)
    following = warehouse.lake.open(read_only=True)  # each query sees the latest commit
    counts: list[int] = []
    errors: list[BaseException] = []
    writing = threading.Event()
    writing.set()

    def poll() -> None:
        cursor = lake_module.use(following.cursor())
        while writing.is_set():
            try:
                counts.append(cursor.execute("select count(*) from raw.prices").fetchone()[0])
            except duckdb.Error as exc:  # a reader must never fail while a writer commits
                errors.append(exc)
            time.sleep(0.01)

    polling = threading.Thread(target=poll)
    polling.start()
    years = range(2007, 2012)
    try:
        for year in years:
            upsert_prices(warehouse, bundled_prices(["AAPL"], year=year))
    finally:
        writing.clear()
        polling.join()
    committed = [len(first)] + [
        len(first) + sum(len(bundled_prices(["AAPL"], y)) for y in years[: i + 1]) for i in range(len(years))
    ]
    assert not errors, errors[:3]
    assert counts == sorted(counts) and set(counts) <= set(committed)  # whole transactions, in order
    assert counts[-1] == committed[-1]

    assert pinned.execute("select count(*) from raw.prices").fetchone()[0] == len(first)
    assert current_snapshot(pinned) == pinned_at
    again = reader.connect(lake=warehouse.lake, snapshot=pinned_at)  # time travel, for any new reader
    assert again.execute("select count(*) from raw.prices").fetchone()[0] == len(first)
    for con in (pinned, following, again):
        con.close()


# --- b: several writers at once --------------------------------------------------------------------


def test_overlapping_update_and_insert_commit_both_by_retrying_the_later(postgres_server, tmp_path, monkeypatch):
    """One writer corrects stored rows (a MERGE that deletes and inserts) while another adds rows to the
    same table. DuckLake refuses the later commit (a delete and an insert on one table conflict);
    ``in_transaction`` runs that transaction again on the new snapshot, and both writes are kept."""
    stored = bundled_prices(["AAPL"], year=2006)
    corrected = stored.assign(close=stored["close"] * 1.01)
    added = bundled_prices(["JPM"], year=2006)

    after_each_other = team_warehouse(tmp_path / "serial", postgres_server.create_database("serial update"))
    for frame in (stored, corrected, added):
        upsert_prices(after_each_other, frame)

    at_once = team_warehouse(tmp_path / "overlap", postgres_server.create_database("overlapping update"))
    upsert_prices(at_once, stored)
    conflicts: list[str] = []
    monkeypatch.setattr(lake_module, "retry", counting_conflicts(conflicts))
    meeting_before_commit(monkeypatch, writers=2)
    in_threads(lambda: upsert_prices(at_once, corrected), lambda: upsert_prices(at_once, added))

    assert conflicts, "the two commits overlapped: DuckLake should have refused the later one"
    assert all("Transaction conflict" in message for message in conflicts), conflicts
    for sql in (
        "select * from raw.prices order by ticker, date, source",
        "select * from raw.prices_audit order by ticker, date, source",
    ):
        pd.testing.assert_frame_equal(table(at_once, sql), table(after_each_other, sql))


def test_overlapping_upserts_of_the_same_new_rows_store_each_key_once(postgres_server, tmp_path, monkeypatch):
    """Two machines each ingest their tickers and the benchmark, which pmx adds to every universe: the
    benchmark's new sessions reach both upserts at once. Each key must be stored once, as when the two
    upserts run one after the other."""
    writes = [bundled_prices(["SP500", "AAPL"], year=2007), bundled_prices(["SP500", "JPM"], year=2007)]
    after_each_other = team_warehouse(tmp_path / "serial", postgres_server.create_database("serial same keys"))
    at_once = team_warehouse(tmp_path / "overlap", postgres_server.create_database("overlapping same keys"))
    for warehouse in (after_each_other, at_once):  # a team's lake after its first run
        upsert_prices(warehouse, bundled_prices(["SP500"], year=2006))
    for frame in writes:
        upsert_prices(after_each_other, frame)

    conflicts: list[str] = []
    monkeypatch.setattr(lake_module, "retry", counting_conflicts(conflicts))
    meeting_before_commit(monkeypatch, writers=2)
    in_threads(*(functools.partial(upsert_prices, at_once, frame) for frame in writes))

    repeated = at_once.query("select ticker, date, source, count(*) n from raw.prices group by all having n > 1")
    assert repeated.empty, f"{len(repeated)} keys stored twice; {len(conflicts)} conflicts retried"
    sql = "select * from raw.prices order by ticker, date, source"
    pd.testing.assert_frame_equal(table(at_once, sql), table(after_each_other, sql))


def ingest_in_this_process(folder: str, dsn: str, tickers: list[str], start_line: str = "") -> dict:
    """Materialize ``raw_prices`` for ``tickers`` with Dagster: a run, whose resource holds the lake and
    records a run point. With ``start_line`` (a file), wait for it first, everything but the run loaded.
    Returns whether the run succeeded, the conflicts ``in_transaction`` retried, the steps Dagster retried
    (its retry policy hides a failure behind a 30 s wait) and how long the run took."""
    conflicts: list[str] = []
    retry = lake_module.retry
    lake_module.retry = counting_conflicts(conflicts)
    try:
        resources = {
            "warehouse": team_warehouse(Path(folder), dsn),
            "settings": PmxSettings(tickers=",".join(tickers), **SETTINGS),
        }
        run_config = {"ops": {"raw_prices": {"config": {"tickers": tickers}}}}
        if start_line:
            # what a process's first ingest loads (the bundled data's readers, the exchange calendar) is
            # loaded before the start line: the runs then overlap in their writes, not in their imports
            BundledSource().prices(tickers)
            exchange_sessions(pd.Series(pd.to_datetime([SETTINGS["start_date"]])))
            Path(f"{start_line}.{os.getpid()}.ready").touch()
            while not Path(start_line).exists():
                time.sleep(0.005)
        started = time.monotonic()
        result = dg.materialize(
            [raw_prices], resources=resources, run_config=run_config, instance=dg.DagsterInstance.ephemeral()
        )
        return {
            "success": result.success,
            "conflicts": conflicts,
            "step_retries": sum(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events),
            "seconds": round(time.monotonic() - started, 2),
        }
    finally:
        lake_module.retry = retry


def ingest_in_a_process() -> None:
    """A writer process's entry point: ``ingest_in_this_process(*json arguments)``, its outcome as JSON."""
    print(json.dumps(ingest_in_this_process(*json.loads(sys.argv[1]))))


def ingest_in_processes_at_once(
    folder: Path, dsn: str, universes: tuple[list[str], ...], meanwhile: Callable[[], object] = lambda: None
) -> list[dict]:
    """Start a writer process per universe on the lake at ``folder``/``dsn``, run ``meanwhile`` while they
    load, then let them ingest together; returns their outcomes."""
    start_line = folder.parent / f"{folder.name}.start"
    code = "from tests.e2e.test_team_catalog import ingest_in_a_process; ingest_in_a_process()"
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", code, json.dumps([str(folder), dsn, tickers, str(start_line)])],
            cwd=REPO_ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tickers in universes
    ]
    try:
        meanwhile()
        deadline = time.monotonic() + 180
        while len(list(folder.parent.glob(f"{start_line.name}.*.ready"))) < len(writers):
            if time.monotonic() > deadline or any(writer.poll() is not None for writer in writers):
                pytest.fail(f"a writer process did not reach the start line: {[w.communicate() for w in writers]}")
            time.sleep(0.02)
        start_line.touch()
        outcomes = []
        for writer in writers:
            out, err = writer.communicate(timeout=300)
            assert writer.returncode == 0, err[-4000:]
            outcomes.append(json.loads(out.strip().splitlines()[-1]))
        return outcomes
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.communicate()


def assert_same_ingest(warehouse: Warehouse, reference: Warehouse) -> None:
    """The ingest's tables (without their time stamps) and run points are the same in both lakes."""
    for sql in (
        "select * from raw.prices order by ticker, date, source",
        "select * from raw.quarantine order by all",
        "select count(*) runs from ops.run_points",
    ):
        pd.testing.assert_frame_equal(table(warehouse, sql), table(reference, sql))


@pytest.mark.slow  # two ingest processes on the Postgres catalog (~32 s); `make test-slow`
def test_two_writer_processes_ingest_at_once_as_one_after_the_other(postgres_server, tmp_path):
    """Two processes (two machines of a team) materialize the ingest for their own tickers into one lake,
    started together; the lake then holds what the two runs leave one after the other, and neither needed
    Dagster to retry a step. (No conflict reaches ``in_transaction`` here: two commits that only insert
    are retried by DuckLake itself when the snapshot id one chose was taken meanwhile.)"""
    serial_folder, overlap_folder = (tmp_path / "serial", tmp_path / "overlap")
    serial_dsn, overlap_dsn = (postgres_server.create_database(name) for name in ("serial runs", "overlapping runs"))

    def prepare_both_lakes() -> None:
        # the team's first run (the benchmark) made the tables and a run point; the reference lake
        # then takes the two runs one after the other
        for tickers in (["SP500"], *UNIVERSES):
            assert ingest_in_this_process(str(serial_folder), serial_dsn, tickers)["success"]
        assert ingest_in_this_process(str(overlap_folder), overlap_dsn, ["SP500"])["success"]

    outcomes = ingest_in_processes_at_once(overlap_folder, overlap_dsn, UNIVERSES, meanwhile=prepare_both_lakes)
    assert all(o["success"] and not o["step_retries"] for o in outcomes), outcomes
    assert_same_ingest(team_warehouse(overlap_folder, overlap_dsn), team_warehouse(serial_folder, serial_dsn))
    print(f"writer processes: {outcomes}")


@pytest.mark.slow
def test_the_first_runs_of_two_machines_at_once_make_the_lake_once(postgres_server, tmp_path):
    """Two machines start the team's very first runs together, on an empty catalog: both succeed, at once
    (no step retried), and leave what the two runs leave one after the other."""
    serial_folder, overlap_folder = (tmp_path / "serial", tmp_path / "overlap")
    serial_dsn, overlap_dsn = (postgres_server.create_database(name) for name in ("serial first", "overlap first"))

    def prepare_reference() -> None:
        for tickers in UNIVERSES:
            assert ingest_in_this_process(str(serial_folder), serial_dsn, tickers)["success"]

    outcomes = ingest_in_processes_at_once(overlap_folder, overlap_dsn, UNIVERSES, meanwhile=prepare_reference)
    assert all(o["success"] and not o["step_retries"] for o in outcomes), outcomes
    assert_same_ingest(team_warehouse(overlap_folder, overlap_dsn), team_warehouse(serial_folder, serial_dsn))


# --- c: the whole stack, dbt included ---------------------------------------------------------------


@pytest.mark.slow
def test_dagster_and_dbt_build_the_features_on_a_postgres_catalog_as_on_sqlite(postgres_catalog, tmp_path, monkeypatch):
    """dbt attaches the lake itself (profiles.yml: ``ducklake:`` and the catalog dbt_env passes it), here
    a PostgreSQL catalog; the ingest and dbt's feature models then build what they build on SQLite."""
    from dagster_pmx.definitions import build_definitions
    from dagster_pmx.defs.transform.project import dbt_env
    from tests.e2e.helpers import SLICE

    team = team_warehouse(tmp_path / "team", postgres_catalog)
    alone = Warehouse(path=str(tmp_path / "alone" / "pmx.ducklake"))
    # a dbt step exports the lake it builds to this process's environment: put it back afterwards, so
    # that nothing later in the session reads a catalog whose server is gone
    for name, value in dbt_env(team.lake).items():
        monkeypatch.setenv(name, value)

    def build_features(warehouse: Warehouse) -> dg.ExecuteInProcessResult:
        defs = build_definitions({"warehouse": warehouse, "settings": PmxSettings(**SLICE)})
        graph = defs.resolve_asset_graph()
        keys = [k for k in graph.materializable_asset_keys if graph.get(k).group_name in ("ingest", "transform")]
        return defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=dg.DagsterInstance.ephemeral(), asset_selection=keys, raise_on_error=False
        )

    for warehouse in (team, alone):
        result = build_features(warehouse)
        failures = [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert result.success, failures
    assert not (tmp_path / "team" / "pmx.ducklake").exists()
    for name in ("marts.prices", "marts.features", "marts.targets"):
        sql = f"select * from {name} order by all"
        pd.testing.assert_frame_equal(table(team, sql), table(alone, sql))
    assert len(team.query("select * from ops.run_points")) == 1
