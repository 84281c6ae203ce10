"""The ingest's reads of the warehouse, as ibis expressions: they run in the database, and only what a
step needs reaches pandas. Writes (upserts, quarantine, audit) stay SQL in ``assets.py``."""

import duckdb
import ibis.common.exceptions
import pandas as pd

from dagster_pmx.defs.reads import frame
from dagster_pmx.resources import Warehouse


def last_sessions(warehouse: Warehouse, sources: list[str]) -> dict[str, pd.Timestamp]:
    """Each ticker's last stored session in ``raw.prices`` from any of ``sources`` (empty before the
    first ingest: no warehouse, or no ``raw.prices`` yet)."""
    try:
        with warehouse.ibis() as db:
            prices = db.table("prices", database="raw")
            rows = prices.filter(prices.source.isin(sources)).group_by("ticker").aggregate(last=prices.date.max())
            last = frame(rows)
    except (duckdb.Error, ibis.common.exceptions.TableNotFound):
        return {}
    return {t: pd.Timestamp(d) for t, d in zip(last["ticker"], last["last"], strict=True)}


def stored_prices(warehouse: Warehouse, columns: list[str]) -> pd.DataFrame:
    """``columns`` of every row of ``raw.prices``."""
    with warehouse.ibis() as db:
        return frame(db.table("prices", database="raw").select(*columns))
