"""Resources: the warehouse (a DuckLake) and the pipeline settings, both configured by pmx.toml and PMX_* variables.

A run's process attaches the lake once, when Dagster sets its resources up, and detaches it when
the run ends; every method here works on a cursor of that connection, and each write is one
DuckLake transaction (a snapshot readers may see). Readers never open this resource: they attach
the lake read-only at a run point (:mod:`dagster_pmx.reader`). Outside a run (an asset called as a
plain function, a script) each method attaches the lake, does its work and detaches it.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import ibis
import ibis.backends.duckdb
import pandas as pd
import sqlglot as sg
from pydantic import PrivateAttr

from dagster_pmx import run_points
from dagster_pmx.lake import DEFAULT_DUCKDB_MEMORY, Lake, ensure, transaction, use
from dagster_pmx.staging import StagedTables, quoted, stage, stored


def project_root() -> Path:
    """The folder holding ``dbt_project/`` and ``warehouse/``: ``$PMX_PROJECT_DIR`` if set, else the
    checkout this package runs from (``make setup``'s editable install), else the current directory
    (a ``pip install .`` into site-packages, run from a clone)."""
    if os.environ.get("PMX_PROJECT_DIR"):
        return Path(os.environ["PMX_PROJECT_DIR"]).expanduser().resolve()
    checkout = Path(__file__).resolve().parent.parent
    return checkout if (checkout / "dbt_project").is_dir() else Path.cwd().resolve()


REPO_ROOT = project_root()
DEFAULT_WAREHOUSE = REPO_ROOT / "warehouse" / "pmx.ducklake"


class LakeBackend(ibis.backends.duckdb.Backend):
    """ibis's DuckDB backend, reading a table's schema with one ``DESCRIBE`` through ``execute``.

    ibis runs it through DuckDB's relational API (``sql()`` then an Arrow fetch), which costs ~2 ms a
    table more on a lake, and parses every column type again; a daily refresh opens ~75 tables."""

    def get_schema(self, table_name: str, *, catalog: str | None = None, database: str | None = None) -> ibis.Schema:
        name = sg.table(table_name, db=database, catalog=catalog, quoted=True).sql("duckdb")
        try:
            columns = self.con.execute(f"describe {name}").fetchall()
        except duckdb.CatalogException as exc:
            raise ibis.common.exceptions.TableNotFound(table_name) from exc
        # DESCRIBE's columns: name, type, null ('YES' / 'NO'), key, default, extra
        return ibis.schema({column: _dtype(kind, null == "YES") for column, kind, null, *_ in columns})


@functools.cache
def _dtype(kind: str, nullable: bool) -> ibis.DataType:
    """The ibis type of a DuckDB type name (ibis's own mapping, parsed once per name)."""
    return ibis.backends.duckdb.Backend.compiler.type_mapper.from_string(kind, nullable=nullable)


class Warehouse(dg.ConfigurableResource):
    """The DuckLake that holds every schema (raw, staging, intermediate, ml, marts, ops).

    ``path`` is its SQLite catalog file (the default, embedded set-up); ``catalog`` and ``data_path``
    name a shared catalog (PostgreSQL) and data folder instead (docs/warehouse.md, "A team").
    """

    path: str = str(DEFAULT_WAREHOUSE)
    catalog: str = ""
    data_path: str = ""
    #: the memory each of the run's DuckDB databases may use before it spills to disk (``duckdb_memory``)
    memory_limit: str = DEFAULT_DUCKDB_MEMORY
    _run_database: duckdb.DuckDBPyConnection | None = PrivateAttr(default=None)
    #: the run's ibis backend, on a cursor of ``_run_database`` (see :meth:`ibis`)
    _run_ibis: ibis.BaseBackend | None = PrivateAttr(default=None)

    @property
    def abs_path(self) -> str:
        return str(Path(self.path).expanduser().resolve())

    @property
    def lake(self) -> Lake:
        """Where the lake's catalog and files are."""
        return Lake.at(self.abs_path, self.catalog, self.data_path)

    @property
    def folder(self) -> Path:
        """The folder beside the catalog file: reports, the source cache and local backups live here."""
        return Path(self.abs_path).parent

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Attaching costs ~0.2 s (extensions and catalog are read), and a daily refresh makes ~190
        # connections: held for the run, each one is a cursor (microseconds). dbt-duckdb, run in this
        # process, attaches the same lake itself. An asset called as a plain function has no run: it
        # attaches per connection, as scripts do.
        if context.run is not None:
            self.hold()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        try:
            run = context.run
            if run is not None and self._run_database is not None and not _failed_steps(context):
                # every step succeeded: readers move on to the state this run left (dagster_pmx.run_points)
                with self.connect() as con:
                    run_points.record(con, run.run_id, run.job_name)
        finally:
            self.release()

    def hold(self) -> None:
        """Keep the lake attached in this process until :meth:`release` (the run's lifetime)."""
        if self._run_database is None:
            self._run_database = self.lake.open(memory_limit=self.memory_limit)

    def release(self) -> None:
        """Detach the lake :meth:`hold` attached."""
        if self._run_ibis is not None:
            self._run_ibis.disconnect()
            self._run_ibis = None
        if self._run_database is not None:
            self._run_database.close()
            self._run_database = None

    @contextmanager
    def released(self) -> Iterator[None]:
        """The lake detached for the length of the block (a dbt subprocess writes it), then attached again.

        A DuckLake admits other processes at any time; detaching only drops this process's cached
        catalog, so the block's writes are read afresh after it."""
        held = self._run_database is not None
        self.release()
        try:
            yield
        finally:
            if held:
                self.hold()

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the lake, its tables reachable unqualified (``raw.prices``); ``read_only`` is
        honoured where the lake is attached here (inside a run, the run's connection writes and the
        caller's SQL says what it does)."""
        if self._run_database is not None:
            con = use(self._run_database.cursor())
        else:
            con = self.lake.open(read_only=read_only and self.lake.exists(), memory_limit=self.memory_limit)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def ibis(self, read_only: bool = True) -> Iterator[ibis.BaseBackend]:
        """An ibis DuckDB backend over :meth:`connect`: reads written as ibis expressions run in the
        database, and only their result reaches pandas (``expr.to_pandas()`` inside the block).

        In a run every call gets the same backend, on one cursor of the run's database: setting up a
        backend runs three statements (~3 ms on a lake), and a daily refresh asks for one ~100 times."""
        if self._run_database is not None:
            if self._run_ibis is None:
                self._run_ibis = LakeBackend.from_connection(use(self._run_database.cursor()))
            yield self._run_ibis
            return
        with self.connect(read_only=read_only) as con:
            yield LakeBackend.from_connection(con)

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        """Run a read-only query and return its result as a DataFrame."""
        with self.connect(read_only=True) as con:
            return con.execute(sql, params or []).df()

    def replace_table(self, table: str, frame: pd.DataFrame) -> int:
        """Atomically replace ``schema.table`` with ``frame``; returns the row count."""
        return self.replace_tables({table: frame})[table]

    def replace_tables(self, frames: Mapping[str, pd.DataFrame]) -> dict[str, int]:
        """Replace each ``schema.table`` of ``frames`` with its frame, all in one transaction (one lake
        snapshot: a reader sees every table before or every table after); the row counts by table."""
        with self.connect() as con:
            for schema in sorted({table.split(".")[0] for table in frames}):
                ensure(con, f"create schema if not exists {schema}")
            statements = []
            for i, (table, frame) in enumerate(frames.items()):
                con.register(f"incoming_{i}", stored(frame))
                statements.append((f"create or replace table {table} as select * from incoming_{i}", []))
            transaction(con, statements)
            return {table: _count(con, table) for table in frames}

    def replace_tables_in_batches(
        self,
        batches: Iterable[Mapping[str, pd.DataFrame]],
    ) -> dict[str, int]:
        """:meth:`replace_tables` with each table's rows coming in batches: each ``schema.table`` of the
        batches gets the rows of all its frames, and only one batch is held in memory.

        A step that would otherwise hold a whole universe's results in pandas (docs/scaling.md) yields
        them a few tickers at a time: each batch's frames are written as it comes to Parquet files in
        a temporary folder (``TMPDIR``), and the tables are replaced from those files in one
        transaction at the end, so readers see every table before or every table after, as with
        :meth:`replace_tables`, and a run that fails half-way changes nothing. A table whose frames
        are all empty is replaced by its first frame, so it keeps its columns.

        A table holds its rows in no particular order, whatever the order of the batches: DuckLake's parallel
        insert does not keep the order it reads (measured with DuckDB 1.5.5), as with :meth:`replace_tables`;
        readers order by their key."""
        with tempfile.TemporaryDirectory(prefix="pmx-batches-") as folder:
            staged = StagedTables()
            for i, frames in enumerate(batches):
                staged.add(*stage(frames, Path(folder), f"{i:06d}"))
            return self.replace_tables_from_files(staged)

    def replace_tables_from_files(self, staged: StagedTables) -> dict[str, int]:
        """Each table of ``staged`` replaced by the rows of its Parquet files (:func:`stage`), all in one
        transaction (by its empty frame where it has none); the row counts by table."""
        with self.connect() as con:
            return _replace_from_files(con, staged.files, staged.empty)

    def append(self, table: str, frame: pd.DataFrame) -> int:
        """Add ``frame``'s rows to ``schema.table`` (created with its columns when missing), in one
        transaction: a log that keeps every row it was given. Returns the table's row count."""
        with self.connect() as con:
            ensure(con, f"create schema if not exists {table.split('.')[0]}")
            con.register("incoming", stored(frame))
            transaction(
                con,
                [
                    (f"create table if not exists {table} as select * from incoming limit 0", []),
                    (f"insert into {table} by name select * from incoming", []),
                ],
            )
            return _count(con, table)

    def has(self, *tables: str) -> bool:
        """Whether every ``schema.table`` (or view) of ``tables`` exists.

        Looks each one up by name, not in ``information_schema``: after a commit, DuckLake reads the whole
        catalog afresh for ``information_schema`` (~0.2 s in the default warehouse), and a run checks
        for a table after nearly every write; a lookup by name costs ~0.01 s."""
        with self.connect(read_only=True) as con:
            for table in tables:
                try:
                    con.execute(f"select 1 from {table} limit 0")
                except duckdb.CatalogException:
                    return False
        return True

    def last(self, table: str, column: str = "date") -> pd.Timestamp | None:
        """The latest ``column`` of ``table``; None when the table is missing or empty."""
        if not self.has(table):
            return None
        value = self.query(f"select max({column}) as d from {table}")["d"].iloc[0]
        return None if pd.isna(value) else pd.Timestamp(value)

    def append_after(self, table: str, frame: pd.DataFrame, since: pd.Timestamp, column: str = "date") -> int:
        """Replace the rows of ``table`` dated after ``since`` with ``frame``, in one transaction (a rerun
        writes the same rows); returns the table's row count."""
        return self.append_after_many([(table, frame, since, column)])[table]

    def append_after_many(
        self, writes: Sequence[tuple[str, pd.DataFrame, pd.Timestamp, str]], then: Sequence[tuple[str, list]] = ()
    ) -> dict[str, int]:
        """:meth:`append_after` for each ``(table, frame, since, column)``, all in one transaction (one
        lake snapshot, and one commit instead of one a table), and the statements ``then`` (SQL,
        parameters) after them in the same transaction; the row counts by table."""
        with self.connect() as con:
            statements = []
            for i, (table, frame, since, column) in enumerate(writes):
                con.register(f"incoming_{i}", frame)
                statements += [
                    (f"delete from {table} where {column} > ?", [since]),
                    (f"insert into {table} by name select * from incoming_{i}", []),
                ]
            transaction(con, [*statements, *then])
            return {table: _count(con, table) for table, *_ in writes}


def _replace_from_files(
    con: duckdb.DuckDBPyConnection, files: dict[str, list[str]], first: dict[str, pd.DataFrame]
) -> dict[str, int]:
    """Each table of ``files`` replaced, in one transaction, by the rows of its Parquet files (by its
    frame in ``first`` where it has none); the row counts by table."""
    for schema in sorted({table.split(".")[0] for table in files}):
        ensure(con, f"create schema if not exists {schema}")
    statements = []
    for i, (table, paths) in enumerate(files.items()):
        if paths:
            source = "read_parquet([" + ", ".join(quoted(path) for path in paths) + "])"
        else:
            con.register(f"incoming_{i}", stored(first[table]))
            source = f"incoming_{i}"
        statements.append((f"create or replace table {table} as select * from {source}", []))
    transaction(con, statements)
    return {table: _count(con, table) for table in files}


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"select count(*) from {table}").fetchone()[0])


def _failed_steps(context: dg.InitResourceContext) -> int:
    """Steps of the context's run that failed so far (a failed blocking check fails its step too)."""
    if context.instance is None or context.run is None:
        return 0
    records = context.instance.get_records_for_run(
        context.run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=1
    ).records
    return len(records)


class PmxSettings(dg.ConfigurableResource):
    """Universe, dates, model and portfolio settings. ``from_env`` reads them from ``pmx.toml`` and
    ``PMX_*`` variables (:mod:`dagster_pmx.config`); docs/configuration.md documents each one."""

    tickers: str = ""  # comma-separated; empty means every ticker of the source
    benchmark: str = "SP500"
    start_date: str = "1990-01-01"
    end_date: str = ""  # empty means all data; set it to build on a truncated history
    source: str = "bundled"
    csv_dir: str = ""
    forecast_start: str = "2005-01-01"
    train_window: int = 756
    refit_every: int = 63
    embargo: int = 5
    ensemble_window: int = 252
    # the ensemble library's defaults (DEFAULT_SHRINKAGE, DEFAULT_POWER), not imported: it loads scipy
    ensemble_shrinkage: float = 0.2
    ensemble_power: float = 30.0  # exponent of the inverse MSE at one session (power / h at horizon h)
    ensemble_reweight_every: int = 21  # sessions between re-estimations of the ensemble weights
    signal_horizon: int = 21  # horizon of the forecasts that become signals and allocations
    governance_baseline: str = "ensemble"  # the fallback model governance reverts to
    kelly_fraction: float = 0.5
    position_cap: float = 0.10
    max_gross: float = 1.0
    cost_bps: float = 10.0  # commission per unit of turnover
    half_spread_bps: float = 2.0  # paid on every trade on top of the commission
    impact_coefficient: float = 0.1  # square-root impact law; charged only where volume is known
    aum: float = 10_000_000.0  # starting book in currency, for participation in volume
    execution: str = "next_close"  # close, next_close or next_open (see python_models.backtest.engine)
    rebalance_every: int = 5  # sessions between decisions of the barbell and risk-parity books
    bond_duration: float = 10.0  # modified duration of the safe sleeve's bond proxy
    barbell_target_vol: float = 0.15  # market volatility above which the risky sleeve shrinks
    drawdown_de_risk: float = 0.15  # drawdown that halves the risky positions
    drawdown_stop: float = 0.25  # drawdown that closes them (emergency stop)
    drawdown_mode: str = "de_risk"  # de_risk (halve at drawdown_de_risk) or hard_cap (hold drawdown_de_risk)
    drawdown_cap_multiplier: float = 10.0  # hard_cap: risky scale = this x the cushion above the floor
    es_limit: float = 0.03  # cap on a decision's one-session ES at es_level (0: off)
    es_level: float = 0.975  # confidence of that ES
    freshness_sessions: int = 1  # sessions marts.prices and marts.signals may lag the last published one
    as_of: str = ""  # wall-clock time the freshness checks compare against (ISO, UTC); empty: now
    paper_strategies: str = "barbell"  # comma-separated strategies the paper broker trades
    paper_start: str = ""  # first session of a new paper ledger; empty: 63 sessions before the last one
    paper_lot_size: int = 1
    paper_min_trade: float = 1_000.0  # smallest order value sent (a full exit always is)
    paper_participation: float = 0.10  # largest fill as a share of the session's dollar volume
    workers: int = 2  # worker processes of the local Dask cluster; threads for XGBoost
    scheduler: str = ""  # a Dask scheduler address or scheduler file; empty: a local cluster of `workers`
    ticker_batch: int = 20  # tickers whose per-ticker results a step holds in memory at once (docs/scaling.md)
    models: str = ""  # comma-separated forecaster names, "all", or empty for the default set
    full_refresh: bool = False  # rebuild the incremental dbt models from scratch
    # the LLM signal source (docs/llm.md): on when PMX_LLM_HOST (environment only) and llm_models are set
    llm_models: str = ""  # comma-separated Ollama models, in order of preference; empty: the source is off
    llm_call_timeout: float = 30.0  # seconds a call to one model may take
    llm_read_timeout: float = 10.0  # seconds without a byte before a model is abandoned
    llm_failover_rate: float = 5.0  # tokens per second below which a model is abandoned (0: never)
    llm_max_calls: int = 200  # calls a run may make (the call budget)
    llm_history: int = 21  # latest sessions a run asks signals for (those not yet asked)
    llm_fallback: str = "off"  # off, all_stopped or always: when LLM signals drive the governed book
    llm_fallback_backfill: bool = False  # let backfilled LLM signals drive it too (research only)

    @classmethod
    def from_env(cls) -> PmxSettings:
        """The settings of ``pmx.toml`` (or ``$PMX_CONFIG``) overridden by ``PMX_*`` variables.

        See :func:`dagster_pmx.config.load_config`; with neither, the defaults above.

        Raises
        ------
        ValueError
            An unknown key in the file, or a bad value, naming the key and where it came from.
        """
        from dagster_pmx.config import load_config

        return load_config().pmx_settings()

    @property
    def ticker_list(self) -> list[str]:
        return [t.strip().upper() for t in self.tickers.split(",") if t.strip()]

    @property
    def llm_model_list(self) -> list[str]:
        """The Ollama models of ``llm_models``, in order of preference (empty: the LLM source is off)."""
        return [m.strip() for m in self.llm_models.split(",") if m.strip()]
