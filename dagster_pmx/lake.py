"""The warehouse's storage: a DuckLake (a SQL catalog plus immutable Parquet files).

A plain DuckDB file admits one process at a time when one of them writes: an analyst's notebook
left open made the evening refresh fail, and a run locked every reader out for its whole length.
A DuckLake gives every transaction a snapshot: any number of read-only processes query one
snapshot while a writer commits the next, and every earlier snapshot can be queried again
(time travel) until it is expired. docs/warehouse.md gives the measurements behind the choice.

* **Catalog.** By default a SQLite file (``warehouse/pmx.ducklake``) with the Parquet files beside
  it (``warehouse/pmx.ducklake.files/``): nothing to run, one writer at a time (Dagster's queue).
  A team points ``catalog`` at PostgreSQL (``postgres:dbname=pmx host=…``) and ``data_path`` at
  shared storage: several writers on several machines.
* **Extensions.** DuckDB's signed ``ducklake``, ``sqlite`` and ``postgres`` extensions come from
  their PyPI packages (``duckdb-extension-*``), installed from those files: no network.
* **Run points.** A run writes many transactions (one per asset, one per dbt model). When it
  succeeds it records a *run point* in ``ops.run_points``: the snapshot its last write left.
  Readers (:func:`dagster_pmx.reader.connect`) attach the lake at the latest run point, so a query
  never sees half a run, and any earlier run point stays reachable (time travel).
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import re
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import duckdb

#: Name every process gives the attached lake; unqualified table names (``marts.signals``) resolve in it.
ALIAS = "pmx"

#: The extension each catalog kind needs, besides ``ducklake`` itself.
CATALOG_EXTENSIONS = {"sqlite": "sqlite", "postgres": "postgres"}

#: SQLite answers "database is locked" while another process commits; such a statement is retried.
LOCKED = re.compile(r"database is locked|database table is locked|SQLITE_BUSY", re.IGNORECASE)
#: Two writers committing at once: DuckLake's optimistic concurrency refuses the later commit.
CONFLICT = re.compile(r"conflict|concurrent|database is locked", re.IGNORECASE)
#: Two processes creating the same lake at once (a team's first runs): one of them loses the race.
CREATING = re.compile(r"Failed to initialize DuckLake.*(duplicate key value|already exists)", re.I | re.S)
ATTACHING = re.compile(f"{LOCKED.pattern}|{CREATING.pattern}", re.I | re.S)

T = TypeVar("T")

#: The memory a run's DuckDB may use before it spills to disk (the ``duckdb_memory`` setting's default).
#: DuckDB's own default is 80 % of the machine's memory, per process: a run's process and dbt's would
#: each take that much on a large universe (docs/scaling.md, "Memory").
DEFAULT_DUCKDB_MEMORY = "1.25GB"

_installed: set[str] = set()


def extension_file(name: str) -> Path:
    """The signed ``name`` extension for the installed DuckDB, shipped by ``duckdb-extension-<name>``."""
    package = importlib.import_module(f"duckdb_extension_{name}")
    folder = Path(package.__path__[0]) / "extensions" / f"v{duckdb.__version__}"
    found = sorted(folder.glob(f"{name}.duckdb_extension"))
    if not found:
        raise RuntimeError(
            f"duckdb-extension-{name} ships no build for DuckDB {duckdb.__version__} (looked in {folder}); "
            f"install the duckdb-extension-{name} release matching duckdb (requirements.lock pins both)"
        )
    return found[0]


def install_extensions(con: duckdb.DuckDBPyConnection, names: tuple[str, ...]) -> None:
    """Install (once per machine) and load ``names`` from their PyPI packages, never from the network."""
    for name in names:
        if name not in _installed:
            row = con.execute("select installed from duckdb_extensions() where extension_name = ?", [name]).fetchone()
            if not (row and row[0]):
                con.execute(f"install '{extension_file(name)}'")
            _installed.add(name)
        con.execute(f"load {name}")


def retry(action: Callable[[], T], pattern: re.Pattern = LOCKED, attempts: int = 60, wait: float = 0.05) -> T:
    """``action()``, retried with a growing pause (up to ~30 s in all) while it fails with an error
    matching ``pattern``: a SQLite catalog is briefly locked while another process commits."""
    for attempt in range(attempts):
        try:
            return action()
        except duckdb.Error as exc:
            if attempt == attempts - 1 or not pattern.search(str(exc)):
                raise
            time.sleep(min(wait * (1.5**attempt), 1.0))
    raise AssertionError("unreachable")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Lake:
    """Where a DuckLake lives: its catalog and its data files.

    Parameters
    ----------
    catalog : str
        The DuckLake metadata database: ``sqlite:<file>`` or ``postgres:<libpq connection string>``.
    data_path : str
        Folder (or object-store prefix) of the Parquet files; used when the lake is created, after
        which the catalog remembers it.
    """

    catalog: str
    data_path: str

    @classmethod
    def at(cls, warehouse: str | Path, catalog: str = "", data_path: str = "") -> Lake:
        """The lake a pmx warehouse setting names: ``catalog`` when set (a team's PostgreSQL), else the
        SQLite file ``warehouse``; data files in ``data_path``, else in ``<warehouse>.files/``."""
        path = Path(warehouse).expanduser().resolve()
        if catalog and not catalog.startswith(tuple(f"{kind}:" for kind in CATALOG_EXTENSIONS)):
            raise ValueError(
                f"catalog {catalog!r} must start with 'sqlite:' or 'postgres:' (e.g. 'postgres:dbname=pmx host=db')"
            )
        folder = data_path or f"{path}.files"
        if "://" not in folder:
            folder = str(Path(folder).expanduser().resolve())
        return cls(catalog=catalog or f"sqlite:{path}", data_path=folder.rstrip("/") + "/")

    @property
    def kind(self) -> str:
        """``sqlite`` or ``postgres``."""
        return self.catalog.split(":", 1)[0]

    @property
    def sqlite_file(self) -> Path | None:
        """The catalog file of a SQLite catalog; None for PostgreSQL."""
        return Path(self.catalog.split(":", 1)[1]) if self.kind == "sqlite" else None

    def exists(self) -> bool:
        """Whether the catalog holds a lake (for PostgreSQL: assumed, the server is asked on attach)."""
        file = self.sqlite_file
        return file is None or (file.exists() and file.stat().st_size > 0)

    def attach_sql(self, alias: str = ALIAS, read_only: bool = False, snapshot: int | None = None) -> str:
        """The ``ATTACH`` statement any DuckDB 1.5 client runs to open this lake."""
        # the catalog remembers the data path it was created with; a copied or restored lake, or another
        # machine's mount of shared storage, reads its files where they are now (relative paths are kept)
        options = [f"DATA_PATH {_quote(self.data_path)}", "OVERRIDE_DATA_PATH true"]
        if read_only:
            options.append("READ_ONLY")
        if snapshot is not None:
            options.append(f"SNAPSHOT_VERSION {int(snapshot)}")
        return f"ATTACH {_quote('ducklake:' + self.catalog)} AS {alias} ({', '.join(options)})"

    def copy_to(self, warehouse: str | Path) -> Lake:
        """A copy of this (SQLite) lake as the catalog file ``warehouse``, its data files in
        ``<warehouse>.files/``: the catalog through SQLite's online backup, each data file hard-linked
        where it can be (DuckLake never rewrites one) and copied otherwise. Returns the copy."""
        if self.sqlite_file is None or "://" in self.data_path:
            raise ValueError("only a SQLite catalog with local data files is copied this way")
        copy = Lake.at(warehouse)
        assert copy.sqlite_file is not None
        copy.sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        copy_catalog(self.sqlite_file, copy.sqlite_file)
        shutil.copytree(self.data_path, copy.data_path, copy_function=_link_or_copy, dirs_exist_ok=True)
        return copy

    def open(
        self, read_only: bool = False, snapshot: int | None = None, memory_limit: str = ""
    ) -> duckdb.DuckDBPyConnection:
        """A new in-memory DuckDB with this lake attached as :data:`ALIAS` and in use.

        A reader (``read_only``) needs an existing lake; a writer creates it on first use. With a
        ``memory_limit`` (DuckDB's size, e.g. ``2GB``) the database spills what does not fit to
        :func:`spill_folder` instead of growing past it.
        """
        if read_only and not self.exists():
            raise FileNotFoundError(f"no warehouse at {self.catalog.split(':', 1)[1]}: run `make run` first")
        if self.sqlite_file is not None and not read_only:
            self.sqlite_file.parent.mkdir(parents=True, exist_ok=True)
            if "://" not in self.data_path:
                Path(self.data_path).mkdir(parents=True, exist_ok=True)
            write_ahead_log(self.sqlite_file)
        con = duckdb.connect()
        try:
            # a DuckLake never rewrites a data file (a write adds new ones), so the footers a query read
            # stay true for the connection's life: later queries of the same files skip reading them again
            con.execute("set parquet_metadata_cache = true")
            if memory_limit:
                # a folder per database: DuckDB numbers its spill files from 0 in each
                for name, value in duckdb_limits(memory_limit, f"run-{os.getpid()}-{next(_databases)}").items():
                    con.execute(f"set {name} = '{value}'")
            install_extensions(con, ("ducklake", CATALOG_EXTENSIONS[self.kind]))
            retry(lambda: con.execute(self.attach_sql(read_only=read_only, snapshot=snapshot)), ATTACHING)
            con.execute(f"use {ALIAS}")
            if not read_only:
                with_lake_options(con)
        except BaseException:
            con.close()
            raise
        return con


#: Numbers the DuckDB databases this process opens on a lake (each spills to a folder of its own).
_databases = itertools.count()


def spill_folder(owner: str) -> Path:
    """Where the DuckDB database ``owner`` spills what does not fit in its memory limit:
    ``<TMPDIR>/pmx-duckdb-spill/<owner>``. DuckDB numbers its spill files from 0 in every database, so
    two databases must never share a folder; it creates the folder when it first spills and removes it
    when it closes."""
    parent = Path(tempfile.gettempdir()) / "pmx-duckdb-spill"
    parent.mkdir(parents=True, exist_ok=True)
    return parent / owner


def duckdb_limits(memory_limit: str, owner: str) -> dict[str, str]:
    """The DuckDB settings that bound the database ``owner`` to ``memory_limit`` and say where it spills:
    the same for a run's own databases and for dbt's (profiles.yml reads them from DBT_PMX_MEMORY_LIMIT
    and DBT_PMX_TEMP_DIRECTORY)."""
    return {"memory_limit": memory_limit, "temp_directory": str(spill_folder(owner))}


def copy_catalog(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite catalog, its write-ahead log included (SQLite's online
    backup: no writer has to stop)."""
    with contextlib.closing(sqlite3.connect(source, timeout=60)) as live:
        with contextlib.closing(sqlite3.connect(target)) as copy:
            live.backup(copy)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copy2(source, target)


def write_ahead_log(file: Path) -> None:
    """Put a SQLite catalog in write-ahead-log mode (it stays so): its readers then never block the
    writer's commits, nor its commits their reads. Measured here: in SQLite's default rollback
    journal, two reader processes slowed 40 commits from 19 s to 54 s."""
    with contextlib.closing(sqlite3.connect(file, timeout=30)) as catalog:
        if catalog.execute("pragma journal_mode").fetchone()[0] != "wal":
            catalog.execute("pragma journal_mode=wal")


#: Settings the lake's catalog keeps, so dbt and any other client writing the lake follow them
#: (:func:`with_lake_options`).
LAKE_OPTIONS = {"data_inlining_row_limit": "0", "parquet_compression": "zstd"}


def with_lake_options(con: duckdb.DuckDBPyConnection) -> None:
    """Set :data:`LAKE_OPTIONS` in the catalog where it holds another value (one lookup when it holds them).

    ``data_inlining_row_limit = 0``: every row in Parquet files, none in the catalog. DuckLake "inlines" a
    small insert into the catalog, in a SQLite table of its own for every version of every table, and
    every later statement looks them up: measured here, 600 small ``create or replace`` statements took a
    query on the lake from 9 to 40 ms and a small ``create`` from 50 to 180 ms; without inlining both
    stayed flat (4.5 ms and 40 ms), and the daily refresh went from 41.7 to 34.4 s. The price: every small
    write is a Parquet file of its own, which may be why the full build measured slower
    (docs/benchmarks.md).

    ``parquet_compression = zstd`` (DuckLake's default is snappy): the forecast tables, most of the
    warehouse, are doubles that compress little either way, and zstd's files are 8-25 % smaller and take
    about as long to write (docs/benchmarks.md, "warehouse bytes per ticker"). Files written before keep theirs.
    """
    names = ", ".join(f"'{name}'" for name in LAKE_OPTIONS)
    held = dict(
        con.execute(f"select option_name, value from {ALIAS}.options() where option_name in ({names})").fetchall()
    )
    for name, value in LAKE_OPTIONS.items():
        if held.get(name) != value:
            ensure(con, f"call {ALIAS}.set_option('{name}', '{value}')")


def use(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """``con`` (a cursor of a connection :meth:`Lake.open` made) resolving unqualified names in the lake:
    ``USE`` is per cursor in DuckDB."""
    con.execute(f"use {ALIAS}")
    return con


def ensure(con: duckdb.DuckDBPyConnection, *statements: str) -> None:
    """Idempotent DDL (``create … if not exists``, ``add column if not exists``) outside a transaction,
    run again when another writer created the same thing meanwhile: DuckLake refuses the second
    creation as a conflict, and the retry then finds it there."""
    for sql in statements:
        retry(lambda sql=sql: con.execute(sql), CONFLICT, attempts=20, wait=0.1)


def claim_table(table: str) -> str:
    """The one-row table whose update claims ``table`` for a transaction (see :func:`claim`)."""
    return "ops.claim_" + table.replace(".", "_")


def claim(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """The statement that claims ``table`` for the transaction it runs in.

    DuckLake lets two transactions insert into one table at once, and a DuckLake table has no primary
    key: two writers each adding the same new key (both upserting the benchmark's prices) would both
    commit it. Every writer that keeps keys unique starts its transaction with this update of a
    one-row table, so two of them always conflict; :func:`in_transaction` then runs the later one
    again, and its ``MERGE`` now sees the other's rows. With one writer it costs one small update.
    """
    ensure(con, "create schema if not exists ops")
    ensure(con, f"create table if not exists {claim_table(table)} as select 0::bigint as claims")
    return f"update {claim_table(table)} set claims = claims + 1"


def in_transaction(con: duckdb.DuckDBPyConnection, body: Callable[[], T]) -> T:
    """``body()`` (statements on ``con``) in one transaction: one snapshot, all or nothing.

    With several writers (a team's PostgreSQL catalog) DuckLake refuses a commit that conflicts
    with one made meanwhile; the whole transaction is then run again on the new snapshot.
    """

    def attempt() -> T:
        con.execute("begin transaction")
        try:
            result = body()
            con.execute("commit")
        except BaseException:
            with contextlib.suppress(duckdb.Error):  # a failed commit has already ended the transaction
                con.execute("rollback")
            raise
        return result

    return retry(attempt, CONFLICT, attempts=20, wait=0.1)


def transaction(con: duckdb.DuckDBPyConnection, statements: list[tuple[str, list]]) -> None:
    """Run ``statements`` (SQL, parameters) in one transaction on ``con`` (:func:`in_transaction`)."""

    def body() -> None:
        for sql, params in statements:
            con.execute(sql, params)

    in_transaction(con, body)


def current_snapshot(con: duckdb.DuckDBPyConnection) -> int:
    """The id of the lake's latest snapshot, as ``con`` sees it."""
    return int(con.execute(f"select * from {ALIAS}.current_snapshot()").fetchone()[0])
