"""Ingest assets: raw prices through the data-quality wall, and macro series, upserted idempotently
into schema ``raw``; quarantined rows, the ingest report and an audit of replaced rows beside them."""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd

from dagster_pmx.defs import schemas
from dagster_pmx.defs.ingest import reads
from dagster_pmx.defs.ingest.sources import MACRO_COLUMNS, PRICE_COLUMNS, PriceSource, make_source
from dagster_pmx.defs.operations.calendar import covers, sessions_between
from dagster_pmx.lake import claim, ensure, transaction
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.data_quality.normalise import normalise_columns
from python_models.data_quality.wall import Screened, screen_prices

PRICES_DDL = """
create table if not exists raw.prices (
    ticker varchar not null, date date not null, open double, high double, low double,
    close double, adj_close double, volume double, source varchar not null, ingested_at timestamp,
    flags varchar
)"""
QUARANTINE_DDL = """
create table if not exists raw.quarantine (
    ticker varchar, date date, source varchar not null, reason varchar not null, detail varchar,
    row_json varchar not null, quarantined_at timestamp not null
)"""
ACTIONS_DDL = """
create table if not exists raw.corporate_actions (
    ticker varchar not null, date date not null, action varchar not null, value double, source varchar not null,
    ingested_at timestamp
)"""
REPORT_DDL = """
create table if not exists raw.ingest_report (
    ticker varchar, source varchar not null, check_name varchar not null, count bigint, detail varchar,
    reported_at timestamp not null
)"""
MACRO_DDL = """
create table if not exists raw.macro (
    series_id varchar not null, date date not null, value double, unit varchar, source varchar not null,
    ingested_at timestamp
)"""

#: Steps that reach the network retry the whole step with backoff (the HTTP client also retries each call).
NETWORK_RETRY = dg.RetryPolicy(max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def upsert(
    warehouse: Warehouse,
    table: str,
    ddl: str,
    frame: pd.DataFrame,
    columns: list[str],
    key: list[str],
    batch_by: str | None = None,
) -> int:
    """Insert new rows and replace changed ones, keyed by ``key``; returns the table's row count.

    Only rows that are new or whose values differ from the stored ones are written, stamped
    with ``ingested_at``: re-sending the same rows changes nothing (the incremental dbt
    models read ``ingested_at`` to find what changed). Rows already stored and absent from
    ``frame`` are kept. A stored row that is replaced is first copied, as it was, into
    ``<table>_audit`` with ``replaced_at``. The audit copy and the write are one transaction;
    with ``batch_by``, one transaction per batch of whole values of that column, up to
    :data:`BATCH_ROWS` rows (a crash between batches leaves whole batches stored or untouched,
    and a rerun completes the rest).
    """
    values = [c for c in columns if c not in key]
    on = " and ".join(f"stored.{c} = incoming.{c}" for c in key)
    incoming, stored = (", ".join(f"{side}.{c}" for c in values) for side in ("incoming", "stored"))
    changed = f"row({incoming}) is distinct from row({stored})"
    with warehouse.connect() as con:
        ensure(con, "create schema if not exists raw", ddl)
        # warehouses created before ingested_at existed: their rows count as ingested long ago
        ensure(con, f"alter table {table} add column if not exists ingested_at timestamp")
        if "flags" in columns:  # warehouses from before the data-quality wall
            ensure(con, f"alter table {table} add column if not exists flags varchar")
        ensure(
            con,
            f"create table if not exists {table}_audit as "
            f"select *, now()::timestamp as replaced_at from {table} limit 0",
        )
        claimed = claim(con, table)  # another writer upserting the same keys waits its turn
        # a delivery may repeat a key (the same split reported for a ticker asked twice): the last row
        # wins, as a primary key's "insert or replace" made it
        frame = frame.drop_duplicates(subset=key, keep="last")
        batches = [frame] if batch_by is None else whole_groups(frame, batch_by, BATCH_ROWS)
        audit = (
            f"insert into {table}_audit select stored.*, now()::timestamp from {table} as stored "
            f"join incoming on {on} where {changed}"
        )
        # a DuckLake has no primary keys: MERGE on the key keeps it unique (the wall has already
        # dropped rows repeating a key within one delivery)
        write = (
            f"merge into {table} as stored using (select *, now()::timestamp as ingested_at from incoming) "
            f"as incoming on {on} "
            f"when matched and {changed} then update set "
            + ", ".join(f"{c} = incoming.{c}" for c in [*values, "ingested_at"])
            + f" when not matched then insert ({', '.join(columns)}, ingested_at) "
            f"values ({', '.join('incoming.' + c for c in [*columns, 'ingested_at'])})"
        )
        for batch in batches:
            write_batch(con, batch[columns], [claimed, audit, write])
        return row_count(con, table)


#: Rows one ingest transaction writes at most (whole tickers: one larger alone is a batch of its own).
#: Each transaction costs a DuckLake commit (~0.1 s on a SQLite catalog): a daily refresh's row per
#: ticker is one batch, a first load of 20 tickers x 18 years (90,000 rows) too, and a universe of
#: thousands of tickers is written in pieces whose memory stays bounded.
BATCH_ROWS = 250_000


def whole_groups(frame: pd.DataFrame, column: str, most: int) -> list[pd.DataFrame]:
    """``frame`` cut into batches of whole ``column`` values (in sorted order), each of at most ``most``
    rows unless one value alone has more."""
    batches: list[pd.DataFrame] = []
    pending: list[pd.DataFrame] = []
    rows = 0
    for _, group in frame.groupby(column, sort=True):
        if pending and rows + len(group) > most:
            batches.append(pd.concat(pending))
            pending, rows = [], 0
        pending.append(group)
        rows += len(group)
    if pending:
        batches.append(pd.concat(pending))
    return batches


def row_count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """Rows of ``table`` as the write's own connection sees them (part of the write, not a separate read)."""
    return int(con.execute(f"select count(*) from {table}").fetchall()[0][0])


def write_batch(con, batch: pd.DataFrame, statements: list[str]) -> None:
    """Run ``statements`` over ``batch`` (registered as ``incoming``) in one transaction: one snapshot."""
    con.register("incoming", batch)
    transaction(con, [(statement, []) for statement in statements])
    con.unregister("incoming")


def select_prices(frame: pd.DataFrame, settings: PmxSettings) -> pd.DataFrame:
    """Restrict a price frame to the configured universe (plus the benchmark) and dates."""
    out = frame.copy()
    out["date"] = pd.to_datetime(out["date"]).dt.normalize()
    tickers = settings.ticker_list
    if tickers:
        out = out[out["ticker"].isin(set(tickers) | {settings.benchmark})]
    out = out[out["date"] >= pd.Timestamp(settings.start_date)]
    if settings.end_date:
        out = out[out["date"] <= pd.Timestamp(settings.end_date)]
    return out.sort_values(["ticker", "date", "source"]).reset_index(drop=True)


def exchange_sessions(dates: pd.Series) -> pd.DatetimeIndex | None:
    """NYSE sessions over the span of ``dates`` (exchange_calendars' XNYS), or None outside its range."""
    import exchange_calendars as xcals  # slow to import: only when prices arrive

    parsed = pd.to_datetime(dates, errors="coerce", format="mixed")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("America/New_York").dt.tz_localize(None)
    if parsed.isna().all():
        return None
    start, end = parsed.min().normalize() - pd.Timedelta(days=7), parsed.max().normalize() + pd.Timedelta(days=7)
    if covers(start, end):  # the calendar the freshness checks use: a daily refresh builds one, not two
        return sessions_between(start, end)
    try:
        return pd.DatetimeIndex(xcals.get_calendar("XNYS", start=start, end=end).sessions)
    except (ValueError, xcals.errors.CalendarError):
        return None


def screen_source(
    source: PriceSource, tickers: list[str] | None, now: pd.Timestamp | None = None, since: dict | None = None
) -> Screened:
    """Everything ``source`` sends for ``tickers`` (after ``since``) through the data-quality wall, per
    source name. A ticker with stored history that sends nothing new is not reported as silent."""
    since = since or {}
    frame = source.prices(tickers, since=since)
    refused = getattr(source, "failures", {})  # reported with the API's own reason by the caller
    sent = set(frame["ticker"].astype(str).str.strip().str.upper()) if len(frame) else set()
    silent = [t for t in tickers or [] if t not in sent and t not in since and t not in refused]
    sessions = exchange_sessions(frame["date"]) if len(frame) else None
    parts = []
    names = frame["source"].unique() if len(frame) else [source.name]
    for i, name in enumerate(names):
        rows = frame[frame["source"] == name].drop(columns="source")
        # a ticker is silent when no part of the source sent it: reported once, with the first part
        asked = silent if i == 0 else None
        parts.append(screen_prices(normalise_columns(rows), name, sessions=sessions, now=now, requested=asked))
    return Screened(
        clean=pd.concat([p.clean for p in parts], ignore_index=True),
        quarantine=pd.concat([p.quarantine for p in parts], ignore_index=True),
        report=pd.concat([p.report for p in parts], ignore_index=True),
    )


def store_findings(warehouse: Warehouse, screened: Screened) -> tuple[int, int]:
    """Append new quarantine rows (a row quarantined again for the same reason is not repeated) and
    replace each source's ingest report; returns (quarantined now, quarantine table size)."""
    q = screened.quarantine.assign(date=pd.to_datetime(screened.quarantine["date"]).dt.date)
    sources = sorted(set(screened.clean["source"]) | set(q["source"]) | set(screened.report["source"]))
    with warehouse.connect() as con:
        ensure(con, "create schema if not exists raw", QUARANTINE_DDL, REPORT_DDL)
        claimed = claim(con, "raw.quarantine")  # "insert where not exists" by two writers at once
        con.register("incoming_q", q)
        con.register("incoming_r", screened.report)
        statements: list[tuple[str, list]] = [
            (claimed, []),
            (
                "insert into raw.quarantine "
                "select i.ticker, i.date, i.source, i.reason, i.detail, i.row_json, now()::timestamp "
                "from incoming_q i where not exists (select 1 from raw.quarantine s "
                "where s.source = i.source and s.reason = i.reason and s.row_json = i.row_json)",
                [],
            ),
        ]
        if sources:
            statements.append(("delete from raw.ingest_report where source in (select unnest(?))", [sources]))
        statements.append(
            (
                "insert into raw.ingest_report select ticker, source, check_name, count, detail, "
                "now()::timestamp from incoming_r",
                [],
            )
        )
        transaction(con, statements)
        return len(q), row_count(con, "raw.quarantine")


class IngestConfig(dg.Config):
    """Run config of the ingest (Launchpad in the UI, or ``run_config``): refresh or backfill
    some tickers, or read another source, without touching the environment. Empty fields keep
    the ``PMX_*`` settings. The rest of the warehouse is left as it is (the upsert only adds and
    corrects rows)."""

    tickers: list[str] = []
    source: str = ""
    start_date: str = ""
    end_date: str = ""

    def apply(self, settings: PmxSettings) -> PmxSettings:
        changes = {k: v for k, v in (("source", self.source), ("start_date", self.start_date)) if v}
        if self.end_date:
            changes["end_date"] = self.end_date
        return settings.model_copy(update=changes) if changes else settings


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["raw", "prices"],
            group_name="ingest",
            kinds={"duckdb", "python"},
            metadata={"dagster/column_schema": schemas.RAW_PRICES},
            description="Daily prices per (ticker, date, source) from the configured source (default: real data "
            "bundled in skfolio and arch), through the data-quality wall (python_models.data_quality.wall): clean and "
            "repaired rows (with flags) are upserted idempotently keyed by (ticker, date, source); a replaced row "
            "is kept in raw.prices_audit.",
        ),
        dg.AssetSpec(
            ["raw", "quarantine"],
            group_name="ingest",
            kinds={"duckdb", "python"},
            metadata={"dagster/column_schema": schemas.RAW_QUARANTINE},
            description="Rows the data-quality wall refused: the row as received (JSON), source, reason, detail and "
            "when. Append-only; the same row refused again for the same reason is not repeated.",
        ),
        dg.AssetSpec(
            ["raw", "ingest_report"],
            group_name="ingest",
            kinds={"duckdb", "python"},
            metadata={"dagster/column_schema": schemas.RAW_INGEST_REPORT},
            description="Findings of the latest ingest per source that are not rows: sessions missing against the "
            "NYSE calendar, tickers that sent nothing, identical duplicates collapsed, repairs made.",
        ),
    ],
    pool="warehouse",
    retry_policy=NETWORK_RETRY,
)
def raw_prices(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings, config: IngestConfig):
    settings = config.apply(settings)
    source = make_source(settings.source, settings.csv_dir, Path(warehouse.abs_path).parent / "cache")
    screened, frame = screen_run(warehouse, settings, config, source)
    # one transaction per batch of whole tickers: a crash between batches leaves whole tickers stored or
    # untouched, and the next run (an idempotent upsert) completes the rest
    key = ["ticker", "date", "source"]
    total = upsert(warehouse, "raw.prices", PRICES_DDL, frame, [*PRICE_COLUMNS, "flags"], key, batch_by="ticker")
    refused, stored = store_findings(warehouse, screened)
    actions = getattr(source, "actions", None)
    if actions is not None and len(actions):
        upsert(
            warehouse,
            "raw.corporate_actions",
            ACTIONS_DDL,
            actions.assign(source=source.name, date=pd.to_datetime(actions["date"]).dt.date),
            ["ticker", "date", "action", "value", "source"],
            ["ticker", "date", "action", "source"],
        )
    context.log.info(
        f"upserted {len(frame)} price rows from {source.name}; {refused} quarantined; raw.prices holds {total}"
    )
    yield from materializations(screened, frame, total, refused, stored)


def screen_run(
    warehouse: Warehouse, settings: PmxSettings, config: IngestConfig, source: PriceSource
) -> tuple[Screened, pd.DataFrame]:
    """What one run of the ingest makes of ``source``: everything it sends for the run's universe through the
    wall (with the tickers the API refused reported), and the clean rows to store (the configured universe
    and dates). Raises ValueError when a first ingest finds nothing to store."""
    universe: list[str] | None
    if config.tickers:
        universe = [t.strip().upper() for t in config.tickers]
    else:
        universe = settings.ticker_list + [settings.benchmark] if settings.ticker_list else None
    # a backfill (a start date in the run config) fetches its range again; otherwise only what is new
    row_sources = list(getattr(source, "row_sources", (source.name,)))
    since = {} if config.start_date else reads.last_sessions(warehouse, row_sources)
    screened = with_refusals(screen_source(source, universe, since=since), source)
    frame = select_prices(screened.clean, settings)
    if config.tickers:  # the benchmark is not added to a refresh of chosen tickers
        frame = frame[frame["ticker"].isin(universe)]
    if frame.empty and not since:
        raise ValueError(f"source {source.name!r} returned no usable prices for the configured universe and dates")
    return screened, frame


def with_refusals(screened: Screened, source: PriceSource) -> Screened:
    """``screened`` with the tickers the source's API refused reported as ``no_data``, with the API's reason."""
    failures = getattr(source, "failures", {})
    if not failures:
        return screened
    refused = pd.DataFrame(
        {"ticker": list(failures), "source": source.name, "check_name": "no_data", "count": 0}
    ).assign(detail=list(failures.values()))
    return Screened(screened.clean, screened.quarantine, pd.concat([screened.report, refused]))


def materializations(
    screened: Screened, frame: pd.DataFrame, total: int, refused: int, stored: int
) -> Iterator[dg.MaterializeResult]:
    """The three tables' materializations: what arrived, what was stored, refused and reported."""
    yield dg.MaterializeResult(
        asset_key=["raw", "prices"],
        metadata={
            "rows_received": len(screened.clean) + len(screened.quarantine),
            "rows_stored": len(frame),
            "dagster/row_count": total,
            "tickers": frame["ticker"].nunique(),
            "first_date": str(frame["date"].min().date()) if len(frame) else "nothing new",
            "last_date": str(frame["date"].max().date()) if len(frame) else "nothing new",
            "repaired": int((frame["flags"] != "").sum()),
        },
    )
    by_reason = screened.quarantine.groupby("reason").size().to_dict()
    yield dg.MaterializeResult(
        asset_key=["raw", "quarantine"],
        metadata={"dagster/row_count": stored, "quarantined_now": refused, "reasons": str(by_reason)},
    )
    yield dg.MaterializeResult(
        asset_key=["raw", "ingest_report"],
        metadata={
            "dagster/row_count": len(screened.report),
            "checks": str(screened.report.groupby("check_name")["count"].sum().to_dict()),
        },
    )


@dg.asset(
    key=["raw", "macro"],
    group_name="ingest",
    metadata={"dagster/column_schema": schemas.RAW_MACRO},
    pool="warehouse",
    retry_policy=NETWORK_RETRY,
    kinds={"duckdb", "python"},
    description="Monthly macro series (Fama–French factors and risk-free rate, Moody's AAA/BAA yields, "
    "core CPI) in their published units. Idempotent upsert keyed by (series_id, date, source).",
)
def raw_macro(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings) -> dg.MaterializeResult:
    frame = make_source(settings.source, settings.csv_dir).macro()
    if settings.end_date:
        frame = frame[pd.to_datetime(frame["date"]) <= pd.Timestamp(settings.end_date)]
    if frame.empty:
        context.log.warning("the source provides no macro series; raw.macro left as it was")
        with warehouse.connect() as con:
            ensure(con, "create schema if not exists raw", MACRO_DDL)
        return dg.MaterializeResult(metadata={"rows_received": 0})
    total = upsert(warehouse, "raw.macro", MACRO_DDL, frame, MACRO_COLUMNS, ["series_id", "date", "source"])
    return dg.MaterializeResult(
        metadata={"rows_received": len(frame), "dagster/row_count": total, "series": frame["series_id"].nunique()}
    )
