"""What the governance assets read from the warehouse, as ibis expressions.

Filters run in DuckDB and only the rows a step needs reach pandas; :func:`~dagster_pmx.defs.reads.frame` returns
dates as ``datetime64[us]``, so the frames are the ones the library received when these reads
were SQL. ``since`` is the first session a resumed run needs (None: the whole history).
"""

from __future__ import annotations

import pandas as pd

from dagster_pmx.defs.llm.reads import valid_signals
from dagster_pmx.defs.reads import frame
from dagster_pmx.resources import Warehouse
from python_models.classification.logistic import NAME as CLASSIFIER
from python_models.governance.fallback import LLM_PREFIX, SOURCE
from python_models.governance.governor import GovernanceState
from python_models.governance.policy import GovernancePolicy
from python_models.governance.resume import state_from_status

#: The tables the governance asset writes: a resumed run needs all of them.
OUTPUTS = (
    ["ml", "governed_signals"],
    ["marts", "governance_decisions"],
    ["marts", "governance_reviews"],
    ["marts", "model_risk"],
    ["marts", "feature_drift"],
)


#: The marts.model_risk columns the state a run leaves is read from.
STATE_COLUMNS = ("model", "stopped", "active", "accuracy_stop", "decay_cusum", "needs_retrain")


def stored_state(warehouse: Warehouse, policy: GovernancePolicy) -> GovernanceState | None:
    """Where the stored tables leave governance (None when they hold no run to resume): the last
    session's stops and active model, and the last review."""
    if not warehouse.has(*(".".join(key) for key in OUTPUTS)):
        return None
    # one read for the last session's rows and the last review (Warehouse.last twice and a read: five
    # connections and queries)
    with warehouse.ibis() as db:
        t = db.table("model_risk", database="marts")
        reviews = db.table("governance_reviews", database="marts")
        rows = frame(
            t.filter(t.date == t.date.max()).select(
                *STATE_COLUMNS, "date", review=reviews.review_date.max().as_scalar()
            )
        )
    if rows.empty or pd.isna(rows["review"].iloc[0]):  # nothing stored, or no review yet
        return None
    last, review = pd.Timestamp(rows["date"].iloc[0]), pd.Timestamp(rows["review"].iloc[0])
    return state_from_status(rows[list(STATE_COLUMNS)], last, review, policy.baseline)


def variance_ratios(warehouse: Warehouse, benchmark: str, since: pd.Timestamp | None) -> pd.DataFrame:
    """``ticker, date, z``: the 10-session variance-ratio statistic of marts.features (a confidence
    component), the benchmark left out, from ``since`` on."""
    with warehouse.ibis() as db:
        t = db.table("features", database="marts")
        t = t.filter(t.ticker != benchmark)
        if since is not None:
            t = t.filter(t.date >= pd.Timestamp(since))
        return frame(t.select("ticker", "date", z=t.variance_ratio_z_10))


def direction_probabilities(warehouse: Warehouse, horizon: int, since: pd.Timestamp | None) -> pd.DataFrame | None:
    """``ticker, date, probability``: the direction classifier's P(up) at ``horizon`` per close (the
    confidence blend's ``classifier`` component), from ``since`` on; None when none is stored."""
    if not warehouse.has("ml.class_probabilities"):
        return None
    with warehouse.ibis() as db:
        t = db.table("class_probabilities", database="ml")
        t = t.filter((t.model == CLASSIFIER) & (t.target == "direction") & (t.horizon == horizon))
        if since is not None:
            t = t.filter(t.date >= pd.Timestamp(since))
        return frame(t.select("ticker", "date", "probability"))


def stored_columns(warehouse: Warehouse, table: str) -> list[str]:
    """The columns the stored ``schema.table`` has (none when it does not exist)."""
    if not warehouse.has(table):
        return []
    schema, name = table.split(".")
    with warehouse.ibis() as db:
        return list(db.table(name, database=schema).columns)


def stored_active(warehouse: Warehouse, since: pd.Timestamp) -> pd.Series:
    """The model marts.model_risk marks active per stored session from ``since`` on ("" where none is:
    every model stopped)."""
    with warehouse.ibis() as db:
        t = db.table("model_risk", database="marts")
        rows = frame(
            t.filter(t.date >= pd.Timestamp(since))
            .group_by("date")
            .aggregate(model=t.model.max(where=t.active).fill_null(""))  # one active model a session at most
            .order_by("date")
        )
    return pd.Series(rows["model"].to_numpy(), index=pd.DatetimeIndex(rows["date"]))


def drift_features(
    warehouse: Warehouse, benchmark: str, since: pd.Timestamp | None, leave_out: tuple[str, ...]
) -> pd.DataFrame:
    """``date`` and every feature of marts.features but ``leave_out`` (the benchmark's rows left
    out), from ``since`` on: what the drift compares."""
    with warehouse.ibis() as db:
        t = db.table("features", database="marts")
        t = t.filter(t.ticker != benchmark)
        if since is not None:
            t = t.filter(t.date >= pd.Timestamp(since))
        # drop() compiles to one `* exclude (...)`: a select of each of ~60 columns costs ~20 ms to compile
        return frame(t.drop("ticker", "refreshed_at", *[c for c in leave_out if c in t.columns]))


def ungoverned_signals(warehouse: Warehouse) -> pd.DataFrame:
    """``ticker, date, model, confidence, stopped, active`` of each tradable row of marts.signals that governance
    does not allow, by date and ticker: its model not in marts.model_risk at that date, stopped, not the active
    one, or its confidence under the 0.55 minimum (``stopped, active`` NULL where marts.model_risk has no row);
    a row of the LLM source (model ``llm:<model>``) on a session the audit trail does not route to it (the
    last routing decision of marts.governance_decisions at or before the date is not ``route``), or under the
    minimum; a row of a model on a session it routes to the LLM source."""
    with warehouse.ibis() as db:
        s = db.table("signals", database="marts")
        r = db.table("model_risk", database="marts")
        joined = s.left_join(r, [r.model == s.model, r.date == s.date])
        quantitative = ~s.model.startswith(LLM_PREFIX)
        rows = joined.filter(
            s.tradable & quantitative & (r.model.isnull() | r.stopped | ~r.active | (s.confidence < 0.55))
        ).select(s.ticker, s.date, s.model, s.confidence, r.stopped, r.active)
        governed = frame(rows)
    routing = (
        "select decision_date, action from marts.governance_decisions where model = ?"
        if warehouse.has("marts.governance_decisions")
        else "select cast(null as timestamp) as decision_date, cast(null as varchar) as action where ? is null"
    )
    routed = warehouse.query(
        f"""
        with tradable as (
            select ticker, date, model, confidence, starts_with(model, ?) as from_llm
            from marts.signals where tradable
        ),
        routing as ({routing})
        select l.ticker, l.date, l.model, l.confidence, cast(null as boolean) as stopped,
            cast(null as boolean) as active
        from tradable as l
        asof left join routing as d on l.date >= d.decision_date
        where (l.from_llm and (d.action is distinct from 'route' or l.confidence < 0.55))
            or (not l.from_llm and d.action = 'route')
        """,
        [LLM_PREFIX, SOURCE],
    )
    both = [f for f in (governed, routed) if len(f)]
    # a row is one (ticker, date, model): a ticker may have tradable signals of two models on a session
    out = pd.concat(both, ignore_index=True).drop_duplicates(["ticker", "date", "model"]) if both else governed
    return out.sort_values(["date", "ticker"], kind="stable").reset_index(drop=True)


def ungated_allocations(warehouse: Warehouse) -> pd.DataFrame:
    """``date, ticker, weight, block_reason`` of each nonzero risky weight of the governed strategy in
    marts.allocations whose signal in marts.signals may not trade, by date and ticker."""
    with warehouse.ibis() as db:
        a = db.table("allocations", database="marts")
        s = db.table("signals", database="marts")
        joined = a.join(s, [s.ticker == a.ticker, s.date == a.date])
        rows = joined.filter(a.strategy == "governed", a.sleeve == "risky", a.weight != 0, ~s.tradable)
        return frame(rows.select(a.date, a.ticker, a.weight, s.block_reason).order_by(["date", "ticker"]))


def llm_signals(warehouse: Warehouse, horizon: int) -> pd.DataFrame:
    """The valid LLM signals at ``horizon`` that fallback routing may read (:data:`FALLBACK_COLUMNS`), with
    ``y_true`` NULL until realised (:func:`dagster_pmx.defs.llm.reads.valid_signals`)."""
    return valid_signals(warehouse, horizon)[FALLBACK_COLUMNS]


#: Columns of :func:`llm_signals`.
FALLBACK_COLUMNS = ["ticker", "date", "model", "direction", "expected_return", "confidence", "called_at", "y_true"]


def routing_decisions(warehouse: Warehouse) -> pd.DataFrame:
    """``decision_date, action, reason`` of the stored routing decisions (marts.governance_decisions rows of the LLM
    source), by date: the routing a resumed run starts from."""
    return warehouse.query(
        "select decision_date, action, reason from marts.governance_decisions where model = ? order by decision_date",
        [SOURCE],
    )
