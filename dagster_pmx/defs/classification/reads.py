"""The classification assets' reads of the warehouse, as ibis expressions."""

from __future__ import annotations

from collections.abc import Sequence

import ibis.expr.types as ir
import pandas as pd

from dagster_pmx.defs.reads import frame
from dagster_pmx.resources import Warehouse


def _universe(t: ir.Table, benchmark: str, tickers: Sequence[str]) -> ir.Table:
    t = t.filter(t.ticker != benchmark)
    return t.filter(t.ticker.isin(list(tickers))) if tickers else t


def feature_sessions(warehouse: Warehouse, benchmark: str, tickers: Sequence[str]) -> pd.DatetimeIndex:
    """Every session ``marts.features`` has a row of the universe for: the calendar the folds are laid on."""
    with warehouse.ibis() as db:
        t = _universe(db.table("features", database="marts"), benchmark, tickers)
        days = frame(t.select("date").distinct().order_by("date"))
    return pd.DatetimeIndex(days["date"])


def classifier_panel(
    warehouse: Warehouse,
    benchmark: str,
    tickers: Sequence[str],
    labels: Sequence[str],
    first: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """``marts.features`` of the universe (without ``refreshed_at``) with the ``labels`` columns of
    ``marts.targets`` joined, from ``first`` on, by date and ticker (the order the classifiers keep)."""
    with warehouse.ibis() as db:
        features = _universe(db.table("features", database="marts").drop("refreshed_at"), benchmark, tickers)
        targets = db.table("targets", database="marts").select("ticker", "date", *labels)
        if first is not None:
            features = features.filter(features.date >= pd.Timestamp(first).date())
            targets = targets.filter(targets.date >= pd.Timestamp(first).date())
        joined = features.left_join(targets, ["ticker", "date"]).select(features, *[targets[c] for c in labels])
        return frame(joined.order_by(["date", "ticker"]))


def last_probability_date(warehouse: Warehouse) -> pd.Timestamp | None:
    """The last origin stored in ``ml.class_probabilities`` (None when it is empty)."""
    with warehouse.ibis() as db:
        value = db.table("class_probabilities", database="ml").date.max().to_pandas()
    return None if value is None or pd.isna(value) else pd.Timestamp(value)


def scored_groups(warehouse: Warehouse) -> list[tuple[str, str, int]]:
    """Every (model, target, horizon) of ``marts.class_probabilities`` with a realised row, in order."""
    with warehouse.ibis() as db:
        t = db.table("class_probabilities", database="marts")
        realised = t.filter(t.event.notnull(), t.model.notnull(), t.target.notnull(), t.horizon.notnull())
        groups = frame(realised.select("model", "target", "horizon").distinct())
    return sorted((str(m), str(t), int(h)) for m, t, h in groups.itertuples(index=False))


def realised_probabilities(warehouse: Warehouse, model: str, target: str, horizon: int) -> pd.DataFrame:
    """The realised rows of one (model, target, horizon) of ``marts.class_probabilities``: ``model, target,
    horizon, date, probability, base_rate, event``. One group at a time: every group's rows together are
    14 M at 500 tickers, gigabytes in pandas."""
    with warehouse.ibis() as db:
        t = db.table("class_probabilities", database="marts")
        t = t.filter(t.event.notnull(), t.model == model, t.target == target, t.horizon == horizon)
        return frame(
            t.select("model", "target", "horizon", t.asof_date.name("date"), "probability", "base_rate", "event")
        )
