"""A team's configuration: the lake's catalog in PostgreSQL, several writers at once (issue 19).

The SQLite catalog takes one writer at a time (Dagster's queue). A team points ``catalog`` at
PostgreSQL so that several machines write the same lake; these tests check that the properties the
SQLite tests check still hold then: writes, reads and a reader that a writer never disturbs, and
writers whose transactions overlap leaving what the same writes leave one after the other.

Overlap is arranged, not hoped for: :func:`meeting_before_commit` holds each writer's first
transaction open until every writer has done its work, so all of them commit on a stale snapshot.
Two writer *processes* are started together as well (what two machines do).

The PostgreSQL server comes from Debian's ``postgresql`` package (:mod:`tests.e2e.postgres`).
"""

from __future__ import annotations

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
#: The slice the writers ingest: the bundled real prices of a few years (tests/e2e/helpers.py's window).
SETTINGS = dict(start_date="2006-01-01", end_date="2012-12-31")
#: When a row was written: differs between two runs of the same writes by design.
STAMPS = ("ingested_at", "quarantined_at", "replaced_at", "recorded_at")


def team_warehouse(folder: Path, dsn: str) -> Warehouse:
    """The resource as a team configures it: a PostgreSQL catalog and a data folder of its own.
    ``path`` only places the cache beside it: no SQLite catalog is made there."""
    return Warehouse(path=str(folder / "pmx.ducklake"), catalog=f"postgres:{dsn}", data_path=str(folder / "files"))


def table(warehouse: Warehouse, sql: str) -> pd.DataFrame:
    """A query's rows, without the columns that stamp when a row was written."""
    frame = warehouse.query(sql)
    return frame.drop(columns=[c for c in STAMPS if c in frame.columns])


def bundled_prices(tickers: list[str], year: int | None = None) -> pd.DataFrame:
    """The bundled prices of ``tickers`` (of ``year``, or the whole slice) as ``upsert`` takes them."""
    prices = BundledSource().prices(tickers)
    dates = pd.to_datetime(prices["date"])
    keep = (dates >= SETTINGS["start_date"]) & (dates <= SETTINGS["end_date"])
    if year is not None:
        keep &= dates.dt.year == year
    return prices[keep].assign(flags="").reset_index(drop=True)


def upsert_prices(warehouse: Warehouse, frame: pd.DataFrame) -> int:
    """``raw.prices`` upserted with ``frame``, in one transaction (as the ingest does per ticker)."""
    return upsert(warehouse, "raw.prices", PRICES_DDL, frame, COLUMNS, KEY)


def counting_conflicts(conflicts: list[str]) -> Callable:
    """A stand-in for :func:`dagster_pmx.lake.retry` that notes, in ``conflicts``, each commit DuckLake
    refused for a conflict (which ``in_transaction`` then retries): the retries the writers needed."""
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
    each done theirs: every one of them then commits on the snapshot it began on, which another has
    since changed (the overlap two machines may have at any time, here on every run)."""
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
    """Run ``writes`` at once, one thread each (each opens its own DuckDB and attaches the lake: to the
    catalog, a writer as separate as another process); re-raises the first failure."""
    failures: list[BaseException] = []

    def run(write):
        try:
            write()
        except BaseException as exc:  # noqa: BLE001 (handed to the test's thread)
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
    aapl = bundled_prices(["AAPL"], year=2006)
    assert upsert_prices(warehouse, aapl) == len(aapl)
    assert not (tmp_path / "pmx.ducklake").exists()  # the catalog is the database, not a file
    assert list((tmp_path / "files").rglob("*.parquet"))  # the data files are in data_path
    stored = table(warehouse, f"select {', '.join(COLUMNS)} from raw.prices order by ticker, date, source")
    pd.testing.assert_frame_equal(stored, aapl[COLUMNS].sort_values(KEY).reset_index(drop=True), check_dtype=False)

    pinned = reader.connect(lake=warehouse.lake)  # an analyst's notebook: the state as it was when opened
    before = current_snapshot(pinned)
    following = warehouse.lake.open(read_only=True)  # each query sees the latest commit
    seen: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def poll() -> None:
        cursor = following.cursor()
        lake_module.use(cursor)
        while not done.is_set():
            try:
                seen.append(cursor.execute("select count(*) from raw.prices").fetchone()[0])
            except duckdb.Error as exc:  # a reader must never fail while a writer commits
                errors.append(exc)
            time.sleep(0.01)

    polling = threading.Thread(target=poll)
    polling.start()
    try:
        years = range(2007, 2012)
        for year in years:
            upsert_prices(warehouse, bundled_prices(["AAPL"], year=year))
    finally:
        done.set()
        polling.join()
    total = len(bundled_prices(["AAPL"])) - len(bundled_prices(["AAPL"], year=2012))
    assert not errors, errors[:3]
    assert seen == sorted(seen) and seen[0] >= len(aapl) and total in seen  # whole transactions, in order
    yearly_totals = {len(aapl)} | {
        len(aapl) + sum(len(bundled_prices(["AAPL"], year=y)) for y in years if y <= last) for last in years
    }
    assert set(seen) <= yearly_totals  # never a transaction's half
    assert pinned.execute("select count(*) from raw.prices").fetchone()[0] == len(aapl)
    assert current_snapshot(pinned) == before
    assert following.execute("select count(*) from raw.prices").fetchone()[0] == total
    # time travel: the pinned state is still there for any new reader
    again = reader.connect(lake=warehouse.lake, snapshot=before)
    assert again.execute("select count(*) from raw.prices").fetchone()[0] == len(aapl)
    for con in (pinned, following, again):
        con.close()


# --- b: several writers at once --------------------------------------------------------------------


def test_overlapping_update_and_insert_commit_both_by_retrying_the_later(postgres_server, tmp_path, monkeypatch):
    """One writer corrects stored rows (a MERGE that deletes and inserts) while another adds rows to the
    same table. DuckLake refuses the later commit (a delete and an insert on one table conflict);
    ``in_transaction`` runs that transaction again on the new snapshot, and both writes are kept."""
    aapl = bundled_prices(["AAPL"], year=2006)
    corrected = aapl.assign(close=aapl["close"] * 1.01)
    jpm = bundled_prices(["JPM"], year=2006)

    after_each_other = team_warehouse(tmp_path / "serial", postgres_server.create_database("serial_update"))
    for frame in (aapl, corrected, jpm):
        upsert_prices(after_each_other, frame)

    at_once = team_warehouse(tmp_path / "overlap", postgres_server.create_database("overlap_update"))
    upsert_prices(at_once, aapl)
    conflicts: list[str] = []
    monkeypatch.setattr(lake_module, "retry", counting_conflicts(conflicts))
    meeting_before_commit(monkeypatch, writers=2)
    in_threads(lambda: upsert_prices(at_once, corrected), lambda: upsert_prices(at_once, jpm))

    assert conflicts, "the two commits overlapped: DuckLake should have refused the later one"
    assert all("Transaction conflict" in message for message in conflicts), conflicts
    for sql in (
        "select * from raw.prices order by ticker, date, source",
        "select * from raw.prices_audit order by ticker, date, source",
    ):
        pd.testing.assert_frame_equal(table(at_once, sql), table(after_each_other, sql))


@pytest.mark.xfail(
    strict=True,
    reason="DuckLake finds no conflict between two transactions that only insert into one table, so two "
    "upserts of the same new key both insert it (raw.prices has no primary key); the upsert needs a write "
    "that makes two upserts of one table conflict (see the report of issue 19)",
)
def test_overlapping_upserts_of_the_same_new_rows_store_each_key_once(postgres_server, tmp_path, monkeypatch):
    """Two machines each ingest their tickers and the benchmark, which pmx adds to every universe: the
    benchmark's new sessions reach both upserts at once. Each key must be stored once, as one after the
    other stores it."""
    writes = [bundled_prices(["SP500", "AAPL"], year=2007), bundled_prices(["SP500", "JPM"], year=2007)]

    after_each_other = team_warehouse(tmp_path / "serial", postgres_server.create_database("serial_same_keys"))
    at_once = team_warehouse(tmp_path / "overlap", postgres_server.create_database("overlap_same_keys"))
    for warehouse in (after_each_other, at_once):  # a team's lake after its first run
        upsert_prices(warehouse, bundled_prices(["SP500"], year=2006))
    for frame in writes:
        upsert_prices(after_each_other, frame)
    conflicts: list[str] = []
    monkeypatch.setattr(lake_module, "retry", counting_conflicts(conflicts))
    meeting_before_commit(monkeypatch, writers=2)
    in_threads(*(lambda frame=frame: upsert_prices(at_once, frame) for frame in writes))

    repeated = at_once.query("select ticker, date, source, count(*) n from raw.prices group by all having n > 1")
    assert repeated.empty, f"{len(repeated)} keys stored twice, {len(conflicts)} conflicts"
    sql = "select * from raw.prices order by ticker, date, source"
    pd.testing.assert_frame_equal(table(at_once, sql), table(after_each_other, sql))


def ingest_in_this_process(folder: str, dsn: str, tickers: list[str], start_file: str = "") -> dict:
    """Materialize ``raw_prices`` for ``tickers`` with Dagster (a run: its resource holds the lake, a run
    point is recorded), once ``start_file`` exists; returns the run's outcome and the conflicts retried."""
    conflicts: list[str] = []
    retry = lake_module.retry
    lake_module.retry = counting_conflicts(conflicts)
    try:
        return _materialize_ingest(folder, dsn, tickers, start_file, conflicts)
    finally:
        lake_module.retry = retry


def _materialize_ingest(folder: str, dsn: str, tickers: list[str], start_file: str, conflicts: list[str]) -> dict:
    resources = {
        "warehouse": team_warehouse(Path(folder), dsn),
        "settings": PmxSettings(tickers=",".join(tickers), **SETTINGS),
    }
    run_config = {"ops": {"raw_prices": {"config": {"tickers": tickers}}}}
    if start_file:
        # what a process's first ingest loads (the bundled data's readers, the exchange calendar) is loaded
        # before the start line: the two runs then overlap in their writes, not in their imports
        BundledSource().prices(tickers)
        exchange_sessions(pd.Series(pd.to_datetime([SETTINGS["start_date"]])))
        Path(start_file + f".{os.getpid()}.ready").touch()
        while not Path(start_file).exists():
            time.sleep(0.005)
    started = time.monotonic()
    result = dg.materialize(
        [raw_prices], resources=resources, run_config=run_config, instance=dg.DagsterInstance.ephemeral()
    )
    return {"success": result.success, "conflicts": conflicts, "seconds": round(time.monotonic() - started, 2)}


def ingest_in_a_process() -> None:
    """Entry point of a writer process: ``ingest_in_this_process(*json args)``, its outcome as JSON on stdout."""
    outcome = ingest_in_this_process(*json.loads(sys.argv[1]))
    print(json.dumps(outcome))


def test_two_writer_processes_ingest_at_once_as_one_after_the_other(postgres_server, tmp_path):
    """Two processes (two machines of a team) materialize the ingest for their own tickers into one lake,
    started together; the lake then holds what the two runs leave one after the other."""
    universes = [["AAPL", "MSFT"], ["JPM", "XOM"]]
    serial_folder, overlap_folder = (tmp_path / "serial", tmp_path / "overlap")
    serial_dsn, overlap_dsn = (postgres_server.create_database(name) for name in ("serial_runs", "overlap_runs"))
    go = tmp_path / "go"
    code = "from tests.e2e.test_team_catalog import ingest_in_a_process; ingest_in_a_process()"
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    writers = [  # they import while this process prepares both lakes; they wait at the start line
        subprocess.Popen(
            [sys.executable, "-c", code, json.dumps([str(overlap_folder), overlap_dsn, tickers, str(go)])],
            cwd=REPO_ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tickers in universes
    ]
    try:
        # the team's first run (the benchmark) made the tables and a run point; the reference lake then
        # takes the two runs one after the other
        for tickers in (["SP500"], *universes):
            assert ingest_in_this_process(str(serial_folder), serial_dsn, tickers)["success"]
        assert ingest_in_this_process(str(overlap_folder), overlap_dsn, ["SP500"])["success"]
        deadline = time.monotonic() + 180
        while len(list(tmp_path.glob("go.*.ready"))) < len(writers):
            if time.monotonic() > deadline or any(writer.poll() is not None for writer in writers):
                pytest.fail(f"a writer process did not reach the start line: {[w.communicate() for w in writers]}")
            time.sleep(0.02)
        go.touch()
        outcomes = []
        for writer in writers:
            out, err = writer.communicate(timeout=300)
            assert writer.returncode == 0, err[-4000:]
            outcomes.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.communicate()
    assert all(outcome["success"] for outcome in outcomes), outcomes

    serial, overlap = (team_warehouse(serial_folder, serial_dsn), team_warehouse(overlap_folder, overlap_dsn))
    for sql in (
        "select * from raw.prices order by ticker, date, source",
        "select * from raw.quarantine order by all",
        "select count(*) runs from ops.run_points",
    ):
        pd.testing.assert_frame_equal(table(overlap, sql), table(serial, sql))
    # the conflicts in_transaction retried (none expected here: DuckLake itself retries a commit whose
    # snapshot id another took, when the two change nothing the other read or deleted)
    print(f"writer processes: {outcomes}")
