"""The fit store: every model's current fit, versioned, in ``ml.model_fits``.

A fit is identified by what it was fitted on: ``model/ticker/train_start/train_end`` (ticker
``*`` for a pooled model), the ``fit_id`` every forecast row carries. The full build stores
each walk-forward run's last fit; the weekly retrain adds fits on the latest window. The
current fit of a (model, ticker) is the one stored last; the daily refresh forecasts with it.
Fits are pickled into the warehouse, so the file alone restores them.
"""

import io
import json
import pickle

import duckdb
import pandas as pd

from dagster_pmx.defs.forecasting.reads import current_fits
from dagster_pmx.defs.schemas import FIT_DIAGNOSTICS
from dagster_pmx.lake import ensure, transaction
from dagster_pmx.resources import Warehouse
from python_models.evaluation.walk_forward import FoldFit, diagnostics_frame

#: Modules of the flat ``python_models`` layout (before 0.2) and where they live now: fits pickled by
#: an older release still load (CHANGELOG.md, "0.2").
RENAMED_MODULES = {
    "python_models.base": "python_models.forecasters.base",
    "python_models.random_walk": "python_models.forecasters.random_walk",
    "python_models.garch": "python_models.forecasters.garch",
    "python_models.sarimax": "python_models.forecasters.sarimax",
    "python_models.ssa": "python_models.forecasters.ssa",
    "python_models.mssa": "python_models.forecasters.mssa",
    "python_models.changepoint": "python_models.forecasters.changepoint",
    "python_models.boosting": "python_models.forecasters.boosting",
    "python_models.linear": "python_models.forecasters.linear",
    "python_models.neural": "python_models.forecasters.neural",
    "python_models.feature_tcn": "python_models.forecasters.feature_tcn",
    "python_models.hmm": "python_models.forecasters.hmm",
    "python_models.registry": "python_models.forecasters.registry",
    "python_models.array_module": "python_models.forecasters.array_module",
    "python_models.ensemble": "python_models.forecasters.ensemble",
    "python_models.walk_forward": "python_models.evaluation.walk_forward",
    "python_models.metrics": "python_models.evaluation.metrics",
    "python_models.validation": "python_models.evaluation.comparison",
    "python_models.governance": "python_models.governance.policy",
    "python_models.drift": "python_models.governance.drift",
    "python_models.confidence": "python_models.governance.confidence",
    "python_models.signals": "python_models.governance.signals",
    "python_models.allocation": "python_models.portfolio.allocation",
    "python_models.barbell": "python_models.portfolio.barbell",
    "python_models.sizing": "python_models.portfolio.sizing",
    "python_models.risk_limits": "python_models.portfolio.risk_limits",
    "python_models.safe_sleeve": "python_models.portfolio.safe_sleeve",
    "python_models.backtest": "python_models.backtest.engine",
    "python_models.performance": "python_models.backtest.performance",
    "python_models.capacity": "python_models.backtest.capacity",
    "python_models.tearsheet": "python_models.backtest.tearsheet",
    "python_models.broker": "python_models.trading.broker",
    "python_models.paper_broker": "python_models.trading.paper_broker",
    "python_models.paper_trading": "python_models.trading.paper_trading",
    "python_models.data_quality": "python_models.data_quality.wall",
}


class _FitUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        return super().find_class(RENAMED_MODULES.get(module, module), name)


def load_fit(blob: bytes):
    """A stored fit, unpickled; classes pickled under the flat layout resolve to their new modules."""
    return _FitUnpickler(io.BytesIO(blob)).load()


FITS_DDL = """
create table if not exists ml.model_fits (
    fit_id varchar not null, model varchar not null, ticker varchar not null,
    train_start timestamp not null, train_end timestamp not null, converged boolean,
    fitted_by varchar not null, run_id varchar, fitted_at timestamp not null, params varchar, fit blob not null
)"""


#: ``ml.fit_diagnostics`` as the full build writes it (``schemas.FIT_DIAGNOSTICS``), created empty where a
#: warehouse built before it exists has none: the retrain adds to it and dbt's staging view reads it.
FIT_DIAGNOSTICS_DDL = "create table if not exists ml.fit_diagnostics ({})".format(
    ", ".join(f"{c.name} {c.type}" for c in FIT_DIAGNOSTICS.columns)
)


def fit_id(model: str, ticker: str, train_start, train_end) -> str:
    return f"{model}/{ticker}/{pd.Timestamp(train_start):%Y-%m-%d}/{pd.Timestamp(train_end):%Y-%m-%d}"


def fit_id_sql(pooled: set[str]) -> str:
    """The ``fit_id`` of each row as a DuckDB expression over the columns ``model``, ``ticker``, ``train_start``
    and ``train_end``: :func:`fit_id`'s text, built in SQL where the rows are written (a pandas column of a
    batch's ids is millions of strings). The train dates are naive, as everywhere in the warehouse (DuckDB
    would write a zoned one's date in its session's zone, :func:`fit_id` in the timestamp's own)."""
    names = ", ".join("'" + name.replace("'", "''") + "'" for name in sorted(pooled))
    # cast: a frame without rows gives DuckDB untyped columns, and the id is text whatever they are
    ticker = f"case when model in ({names}) then '*' else ticker::varchar end" if pooled else "ticker::varchar"
    return (
        f"cast(model::varchar || '/' || {ticker} || '/' || strftime(train_start, '%Y-%m-%d') || '/' "
        "|| strftime(train_end, '%Y-%m-%d') as varchar)"
    )


def fit_ids(frame: pd.DataFrame, pooled: set[str]) -> pd.Series:
    """The ``fit_id`` of each forecast row (``model``, ``ticker``, ``train_start``, ``train_end``), as
    :func:`fit_id_sql` builds it."""
    with duckdb.connect() as con:
        con.register("frame", frame[["model", "ticker", "train_start", "train_end"]])
        ids = con.execute(f"select {fit_id_sql(pooled)} as fit_id from frame").df()["fit_id"]
    return ids.set_axis(frame.index)


def _params(fit) -> str:
    params = getattr(fit, "params", None)
    if isinstance(params, pd.Series):
        return json.dumps({str(k): float(v) for k, v in params.items() if pd.api.types.is_number(v)})
    return "{}"


def store(warehouse: Warehouse, fits: dict[tuple[str, str], FoldFit], fitted_by: str, run_id: str) -> int:
    """Store fits (a fit already stored under its id becomes current again); returns how many."""
    if not fits:
        return 0
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    rows = pd.DataFrame(
        [
            {
                "fit_id": fit_id(model, ticker, f.train_start, f.train_end),
                "model": model,
                "ticker": ticker,
                "train_start": f.train_start,
                "train_end": f.train_end,
                "converged": f.converged,
                "fitted_by": fitted_by,
                "run_id": run_id,
                "fitted_at": now,
                "params": _params(f.fit),
                "fit": pickle.dumps(f.fit, protocol=pickle.HIGHEST_PROTOCOL),
            }
            for (model, ticker), f in sorted(fits.items())
        ]
    )
    with warehouse.connect() as con:
        ensure(con, "create schema if not exists ml", FITS_DDL)
        con.register("incoming", rows)
        # fit_id stays unique: a DuckLake has no primary keys, so an id stored again replaces its row
        transaction(
            con,
            [
                ("delete from ml.model_fits where fit_id in (select fit_id from incoming)", []),
                ("insert into ml.model_fits by name select * from incoming", []),
            ],
        )
    return len(rows)


def store_diagnostics(warehouse: Warehouse, fits: dict[tuple[str, str], FoldFit], pooled: set[str]) -> int:
    """Add the diagnostics of ``fits`` (the weekly retrain's) to ``ml.fit_diagnostics``, replacing those of a
    fit stored again under its id; returns the rows added. The full build writes the table whole."""
    if not fits:
        return 0
    frame = pd.concat(
        diagnostics_frame([(f.train_start, f.train_end, f.fit.diagnostics)]).assign(model=model, ticker=ticker)
        for (model, ticker), f in sorted(fits.items())
    )
    if frame.empty:  # no fit reported a finite diagnostic
        return 0
    frame["fit_id"] = fit_ids(frame, pooled)
    columns = [c.name for c in FIT_DIAGNOSTICS.columns]
    with warehouse.connect() as con:
        ensure(con, FIT_DIAGNOSTICS_DDL)
        con.register("incoming", frame[columns])
        transaction(
            con,
            [
                ("delete from ml.fit_diagnostics where fit_id in (select distinct fit_id from incoming)", []),
                ("insert into ml.fit_diagnostics by name select * from incoming", []),
            ],
        )
    return len(frame)


def current(warehouse: Warehouse, models: list[str]) -> dict[tuple[str, str], FoldFit]:
    """The last stored fit of every (model, ticker) of ``models``; empty when none is stored."""
    with warehouse.connect() as con:  # the tables may not exist yet: an empty store
        ensure(con, "create schema if not exists ml", FITS_DDL, FIT_DIAGNOSTICS_DDL)
    rows = current_fits(warehouse, models)
    return {
        (r.model, r.ticker): FoldFit(
            load_fit(r.fit), pd.Timestamp(r.train_start), pd.Timestamp(r.train_end), bool(r.converged)
        )
        for r in rows.itertuples()
    }
