"""Governance assets: which model the signals follow, the audit trail, risk flags and drift.

The asset reads (:mod:`dagster_pmx.defs.governance.reads`), calls the library and writes: a
full build governs every session and replaces the tables; the daily refresh resumes from the
state the tables hold (:mod:`python_models.governance.resume`) and appends the new sessions.
"""

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import pandas as pd

from dagster_pmx.defs import schemas
from dagster_pmx.defs.backtest.engine import backtester, load_market
from dagster_pmx.defs.governance import reads
from dagster_pmx.defs.governance.reads import OUTPUTS
from dagster_pmx.defs.reads import (
    first_origin,
    forecast_models,
    forecasts_with_outcomes,
    market_regimes,
    ticker_batches,
    tickers_of,
)
from dagster_pmx.defs.reads import sessions as session_calendar
from dagster_pmx.defs.refresh import IncrementalRun
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.forecasters.registry import BASELINE, MODELS
from python_models.governance import resume
from python_models.governance.drift import RECENT_WINDOW as DRIFT_RECENT
from python_models.governance.drift import feature_drift
from python_models.governance.fallback import Routing, eligible_signals, resume_route, route, source_stops
from python_models.governance.governor import (
    STATUS_COLUMNS,
    GovernanceResult,
    GovernanceState,
    govern,
    retrain_requests,
)
from python_models.governance.policy import DailyEvidence, GovernancePolicy, model_strategy_returns
from python_models.governance.signals import CONFIDENCE_WINDOW, governed_signals, model_signals

SIGNAL_COLUMNS = [c.name for c in schemas.GOVERNED_SIGNALS.columns]
DRIFT_COLUMNS = [c.name for c in schemas.FEATURE_DRIFT.columns]
#: Calendar columns are known in advance and differ between any two windows by construction: no drift check.
CALENDAR_FEATURES = (
    "day_of_week",
    "month",
    "session_of_month",
    "turn_of_month",
    "days_to_holiday",
    "days_since_holiday",
    "pre_holiday",
    "post_holiday",
)
#: The forecast tables governance chooses among, and the columns it reads of them.
FORECAST_TABLES = ["ml.base_forecasts", "ml.ensemble_forecasts"]
FORECAST_COLUMNS = "model, ticker, asof_date, horizon, target_date, y_pred, y_lower, y_upper, y_std"
#: The decisions' metadata entry naming the retrain requests a run leaves open ({model: alarm date}).
RETRAIN_REQUESTS = "retrain_requests"
#: The governed signals' table: written a ticker batch at a time by a full build.
SIGNALS_TABLE = "ml.governed_signals"


def governance_policy(settings: PmxSettings) -> GovernancePolicy:
    """The policy in force: the settings' baseline and signal horizon, the forecasters' baseline (the random
    walk) as the decay detector's, the documented thresholds."""
    return GovernancePolicy(
        baseline=settings.governance_baseline, horizon=settings.signal_horizon, decay_baseline=BASELINE
    )


def _spec(name: str, schema: dg.TableSchema, description: str, schema_name: str = "marts") -> dg.AssetSpec:
    return dg.AssetSpec(
        [schema_name, name],
        group_name="governance",
        kinds={"python", "duckdb"},
        deps=[
            dg.AssetKey(["ml", "base_forecasts"]),
            dg.AssetKey(["ml", "ensemble_forecasts"]),
            dg.AssetKey(["ml", "regime_probabilities"]),
            dg.AssetKey(["ml", "class_probabilities"]),  # the confidence blend's classifier component
            dg.AssetKey(["intermediate", "int_forward_returns"]),
            dg.AssetKey(["intermediate", "int_returns"]),
            dg.AssetKey(["intermediate", "int_risk_free"]),
            dg.AssetKey(["marts", "features"]),
            dg.AssetKey(["ml", "safe_sleeve"]),  # the market the evidence books are valued on
            dg.AssetKey(["ml", "llm_signals"]),  # fallback routing (llm_fallback; off by default)
        ],
        metadata={"dagster/column_schema": schema},
        description=description,
    )


@dg.multi_asset(
    specs=[
        _spec(
            "governed_signals",
            schemas.GOVERNED_SIGNALS,
            "One signal per (ticker, asof_date) at the signal horizon from the model governance made active at that "
            "close, with the confidence blend and its components, and the trade gate: tradable only when a model "
            "is active, confidence >= 0.55 and the direction has not flip-flopped (block_reason says why not).",
            "ml",
        ),
        _spec(
            "governance_decisions",
            schemas.GOVERNANCE_DECISIONS,
            "Audit trail of governance: promote / hold / revert at each review (every 63 sessions), and stop / "
            "resume / retrain on any session, with the evidence, the thresholds in force and the date. Its "
            "materialization names the retrain requests still open (the decay_retrain sensor queues them).",
        ),
        _spec(
            "governance_reviews",
            schemas.GOVERNANCE_REVIEWS,
            "Evidence on every candidate model against the baseline at every review: one-sided Diebold–Mariano, "
            "profit factor, drawdown, Sharpe, stability across years and regimes, the selection score, and "
            "whether it met the promotion bar.",
        ),
        _spec(
            "model_risk",
            schemas.MODEL_RISK,
            "Per model and session: the two emergency-stop rules' readings (the decay CUSUM on the loss relative to "
            "the random walk, whose alarm is the retraining flag; the floor on the balanced directional accuracy, "
            "< 0.45, resumes at >= 0.50), the plain rolling accuracy, the stop, and whether it is the model "
            "signals follow.",
        ),
        _spec(
            "feature_drift",
            schemas.FEATURE_DRIFT,
            "Population stability index of every marts.features column at each review: the last 63 sessions "
            "against the training window before them, pooled over tickers; drifted when PSI > 0.25.",
        ),
    ],
    pool="warehouse",
)
def governance(
    context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings, config: IncrementalRun
) -> Iterator[dg.MaterializeResult]:
    """Govern every session (full build), or the sessions after the stored state (daily refresh)."""
    policy = governance_policy(settings)
    state = (
        reads.stored_state(warehouse, policy) if config.incremental and _stored_current(context, warehouse) else None
    )
    if state is None:
        yield from _full_build(context, warehouse, settings, policy)
    else:
        yield from _resume(context, warehouse, settings, policy, state)


def _stored_current(context: dg.AssetExecutionContext, warehouse: Warehouse) -> bool:
    """Whether the stored tables have every column this version writes: one stored by an earlier version
    (a confidence component or a stop rule's reading it lacked) is governed again from the first session."""
    for table, columns in ((SIGNALS_TABLE, SIGNAL_COLUMNS), ("marts.model_risk", STATUS_COLUMNS)):
        stored = reads.stored_columns(warehouse, table)
        missing = set(columns) - set(stored)
        if stored and missing:
            context.log.info(f"{table} lacks {sorted(missing)}: governing every session again")
            return False
    return True


def _full_build(
    context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings, policy: GovernancePolicy
) -> Iterator[dg.MaterializeResult]:
    """Govern every session from scratch and replace the tables; the signals, a row per ticker and
    session, are staged a ticker batch at a time (``Warehouse.replace_tables_in_batches``)."""
    forecasts = _Forecasts.streamed(warehouse, policy, since=None)
    result = _govern(warehouse, settings, policy, forecasts, since=None, state=None)
    routing = _routing(warehouse, settings, policy, result.active)
    variance_ratio = reads.variance_ratios(warehouse, settings.benchmark, None)
    up = reads.direction_probabilities(warehouse, policy.horizon, None)
    drift = _drift(warehouse, settings, result.reviews, since=None)
    tables = _tables(result, drift, routing.decisions)
    tally = _SignalTally()

    def batches() -> Iterator[dict[str, pd.DataFrame]]:
        yield {table: rows for table, rows, _ in tables.values()}
        for signals in _signals(forecasts, variance_ratio, up, result.active, settings.ticker_batch, routing=routing):
            tally.add(signals)
            yield {SIGNALS_TABLE: signals}
        if not tally.rows:  # raised before anything is written
            raise ValueError(f"no forecasts at the signal horizon {policy.horizon}")

    rows = warehouse.replace_tables_in_batches(batches())
    counts = {"ml/governed_signals": rows[SIGNALS_TABLE], **{key: rows[table] for key, (table, _, _) in tables.items()}}
    yield from _materializations(context, counts, result, tally, drift, routing)


def _resume(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    settings: PmxSettings,
    policy: GovernancePolicy,
    state: GovernanceState,
) -> Iterator[dg.MaterializeResult]:
    """Govern the sessions after the stored ``state`` only, and replace the rows after it."""
    calendar = session_calendar(warehouse)
    if not resume.has_new_sessions(calendar, state):
        context.log.info(f"no session after {state.date.date()}: nothing to govern")
        for key in OUTPUTS:
            yield dg.MaterializeResult(asset_key=key, metadata={"new_rows": 0})
        return
    start = resume.evidence_start(calendar, state, policy)
    forecasts = _Forecasts.held(warehouse, policy, since=start)
    result = _govern(warehouse, settings, policy, forecasts, since=start, state=state)
    first = resume.signals_start(calendar, state, policy)
    variance_ratio = reads.variance_ratios(warehouse, settings.benchmark, first)
    up = reads.direction_probabilities(warehouse, policy.horizon, first)
    active = resume.active_history(reads.stored_active(warehouse, start), state, result.active)
    routing = _routing(warehouse, settings, policy, active, since=state.date)
    parts = list(_signals(forecasts, variance_ratio, up, active, settings.ticker_batch, first, routing))
    if not parts:
        raise ValueError(f"no forecasts at the signal horizon {policy.horizon} since {first.date()}")
    signals = pd.concat(parts, ignore_index=True)
    signals = signals[signals["asof_date"] > state.date]
    tally = _SignalTally()
    tally.add(signals)
    reviews = result.reviews["review_date"]
    since = resume.drift_start(calendar, reviews.min(), policy, settings.train_window) if len(reviews) else None
    drift = _drift(warehouse, settings, result.reviews, since)
    tables = {"ml/governed_signals": (SIGNALS_TABLE, signals, "asof_date"), **_tables(result, drift, routing.decisions)}
    rows = warehouse.append_after_many([(table, frame, state.date, column) for table, frame, column in tables.values()])
    counts = {key: rows[table] for key, (table, _, _) in tables.items()}
    context.log.info(f"incremental: governed {len(result.active)} sessions after {state.date.date()}")
    yield from _materializations(context, counts, result, tally, drift, routing)


@dataclass(frozen=True)
class _Forecasts:
    """The forecasts at the signal horizon from ``since`` on, with outcomes, and the tickers and models
    (sorted) they cover, read a ticker batch or a model at a time (:meth:`read`).

    A full build (:meth:`streamed`) reads each part from the warehouse: the universe's forecasts are
    never held at once. The daily refresh (:meth:`held`) reads its evidence window once and takes the
    parts from that frame: a dozen small reads would cost it more than the memory it holds.
    """

    warehouse: Warehouse
    policy: GovernancePolicy
    since: pd.Timestamp | None
    tickers: list[str]
    models: list[str]
    frame: pd.DataFrame | None = None

    @classmethod
    def streamed(cls, warehouse: Warehouse, policy: GovernancePolicy, since: pd.Timestamp | None) -> "_Forecasts":
        models = forecast_models(warehouse, FORECAST_TABLES, policy.horizon, since)
        if not models:
            raise ValueError(f"no forecasts at the signal horizon {policy.horizon}")
        return cls(warehouse, policy, since, tickers_of(warehouse, "ml.base_forecasts"), models)

    @classmethod
    def held(cls, warehouse: Warehouse, policy: GovernancePolicy, since: pd.Timestamp | None) -> "_Forecasts":
        frame = _read_forecasts(warehouse, policy, since)
        if frame.empty:
            raise ValueError(f"no forecasts at the signal horizon {policy.horizon}")
        tickers, models = (sorted(frame[c].unique()) for c in ("ticker", "model"))
        return cls(warehouse, policy, since, tickers, models, frame)

    def model_parts(self) -> Iterator[pd.DataFrame]:
        """The forecasts in parts that each hold every forecast of their models: a model at a time
        when streamed, the held frame at once (whoever takes them works a model at a time on its own)."""
        if self.frame is None:
            for model in self.models:
                yield self.read(models=[model])
        else:
            yield self.frame

    def read(self, tickers: list[str] | None = None, models: list[str] | None = None) -> pd.DataFrame:
        """The forecasts of ``tickers`` and of ``models`` (all where None)."""
        if self.frame is None:
            return _read_forecasts(self.warehouse, self.policy, self.since, tickers, models)
        if (tickers is None or set(self.tickers) <= set(tickers)) and (
            models is None or set(self.models) <= set(models)
        ):
            return self.frame  # a batch of every ticker (a universe within one batch): nothing to filter
        keep = pd.Series(True, index=self.frame.index)
        if tickers is not None:
            keep &= self.frame["ticker"].isin(tickers)
        if models is not None:
            keep &= self.frame["model"].isin(models)
        return self.frame[keep]


def _read_forecasts(
    warehouse: Warehouse,
    policy: GovernancePolicy,
    since: pd.Timestamp | None,
    tickers: list[str] | None = None,
    models: list[str] | None = None,
) -> pd.DataFrame:
    """The forecasts at the signal horizon from the origin ``since`` on (of ``tickers``, of ``models``),
    with outcomes."""
    columns = FORECAST_COLUMNS
    return forecasts_with_outcomes(
        warehouse, FORECAST_TABLES, columns, horizon=policy.horizon, since=since, tickers=tickers, models=models
    )


def evidence_strategies(
    warehouse: Warehouse, settings: PmxSettings, forecasts: _Forecasts, since: pd.Timestamp | None
) -> pd.DataFrame:
    """Daily net return of each model's own Kelly strategy, sessions by models: the evidence on profit
    factor, drawdown and Sharpe. The books are valued as ``marts.backtest_daily`` values them (the same
    :func:`~dagster_pmx.defs.backtest.engine.backtester`: its execution, costs, cash and book size, on
    the market from the first origin, or from ``since`` when resuming), so a model is judged on the book
    it would trade."""
    horizon = forecasts.policy.horizon
    start = since if since is not None else first_origin(warehouse, FORECAST_TABLES, horizon)
    backtest = backtester(settings, load_market(warehouse, start))
    strategies: dict[str, pd.Series] = {}
    for part in forecasts.model_parts():
        own = model_strategy_returns(part, backtest, settings.kelly_fraction, settings.position_cap, settings.max_gross)
        strategies.update({name: own[name] for name in own.columns})
    return pd.DataFrame(strategies)


def _govern(
    warehouse: Warehouse,
    settings: PmxSettings,
    policy: GovernancePolicy,
    forecasts: _Forecasts,
    since: pd.Timestamp | None,
    state: GovernanceState | None,
) -> GovernanceResult:
    """The policy over the sessions of the returns from ``since`` on (after ``state`` when resuming):
    each model's own Kelly strategy and its forecasts' losses and hits are the evidence. Neither needs
    the universe's forecasts at once: each model's strategy is sized on its own forecasts, a model at a
    time, and the daily losses and hits are means over tickers, pooled a ticker batch at a time."""
    strategy = evidence_strategies(warehouse, settings, forecasts, since)
    evidence = DailyEvidence(policy.baseline, policy.decay_baseline)
    for tickers in ticker_batches(forecasts.tickers, settings.ticker_batch):
        evidence.add(forecasts.read(tickers=tickers))
    regimes = market_regimes(warehouse)
    return govern(evidence.result(), strategy, policy, regimes=regimes, sessions=strategy.index, state=state)


def _routing(
    warehouse: Warehouse,
    settings: PmxSettings,
    policy: GovernancePolicy,
    active: pd.Series,
    since: pd.Timestamp | None = None,
) -> Routing:
    """Fallback routing (:mod:`python_models.governance.fallback`) over the sessions of ``active``: which of them
    the LLM source drives, under ``llm_fallback``, from its eligible signals and its own stop. Resuming after
    ``since``, the sessions up to it keep the routing of the stored audit trail, and the new ones start from
    its state there."""
    llm = reads.llm_signals(warehouse, policy.horizon) if settings.llm_fallback != "off" else None
    eligible = eligible_signals(llm if llm is not None else pd.DataFrame(columns=reads.FALLBACK_COLUMNS),
                                settings.llm_fallback_backfill)  # fmt: skip
    if eligible.empty:  # nothing to score: no reading, no stop
        accuracy, stopped = pd.Series(float("nan"), index=active.index), pd.Series(False, index=active.index)
    else:
        accuracy, stopped = source_stops(eligible, session_calendar(warehouse), policy.horizon, policy)
    mode, backfill = settings.llm_fallback, settings.llm_fallback_backfill
    if since is None:
        return route(active, eligible, accuracy, stopped, mode, policy, backfill)
    stored = reads.routing_decisions(warehouse)
    return resume_route(active, since, stored, eligible, accuracy, stopped, mode, policy, backfill)


def _signals(
    forecasts: _Forecasts,
    variance_ratio: pd.DataFrame,
    direction_probability: pd.DataFrame | None,
    active: pd.Series,
    batch: int,
    first: pd.Timestamp | None = None,
    routing: Routing | None = None,
) -> Iterator[pd.DataFrame]:
    """The governed signal per (ticker, origin) from ``first`` on (the confidence windows and the flip
    count reach back less far than the evidence): every model's signal and confidence, then the active
    model's, gated. Everything here is per ticker (a model's trailing skill, the models' agreement on a
    ticker's origin, its flips), so it reads and runs ``batch`` tickers at a time and yields each
    batch's signals."""
    policy = forecasts.policy
    singles = sorted(set(forecasts.models) & set(MODELS))  # the models whose signs count as agreement
    for tickers in ticker_batches(forecasts.tickers, batch):
        rows = forecasts.read(tickers=tickers)
        if first is not None:
            rows = rows[rows["asof_date"] >= first]
        if rows.empty:
            continue
        z = variance_ratio[variance_ratio["ticker"].isin(tickers)]
        up = (
            None
            if direction_probability is None
            else direction_probability[direction_probability["ticker"].isin(tickers)]
        )
        per_model = model_signals(
            rows, policy.horizon, singles, variance_ratio_z=z, window=CONFIDENCE_WINDOW, direction_probability=up
        )
        yield governed_signals(per_model, active, policy, routing)[SIGNAL_COLUMNS]


class _SignalTally:
    """What the signals' materialization reports, counted a batch at a time: the tradable share and how
    many rows each block reason stopped."""

    def __init__(self) -> None:
        self.rows = self.tradable = 0
        self.reasons: Counter[str] = Counter()

    def add(self, signals: pd.DataFrame) -> None:
        self.rows += len(signals)
        self.tradable += int(signals["tradable"].sum())
        self.reasons.update(signals["block_reason"].fillna("tradable").value_counts().to_dict())

    def metadata(self) -> dict:
        return {
            "tradable_share": round(self.tradable / self.rows, 4) if self.rows else 0.0,
            "block_reasons": str(dict(self.reasons.most_common())),
        }


def _drift(
    warehouse: Warehouse, settings: PmxSettings, reviews: pd.DataFrame, since: pd.Timestamp | None
) -> pd.DataFrame:
    """Feature drift at each review of ``reviews``: its recent window against the training window
    before it, from the features from ``since`` on."""
    dates = reviews["review_date"].drop_duplicates()
    if not len(dates):
        return pd.DataFrame(columns=DRIFT_COLUMNS)
    features = reads.drift_features(warehouse, settings.benchmark, since, CALENDAR_FEATURES)
    return feature_drift(features, dates, train_window=settings.train_window, recent_window=DRIFT_RECENT)


def _tables(
    result: GovernanceResult, drift: pd.DataFrame, routed: pd.DataFrame
) -> dict[str, tuple[str, pd.DataFrame, str]]:
    """Each output but the signals as ``key: (table, rows, date column)``; the decisions with the routing
    decisions ``routed`` among them, in date order (a session's governance decisions first)."""
    decisions = pd.concat([d for d in (result.decisions, routed) if len(d)] or [result.decisions], ignore_index=True)
    decisions = decisions.sort_values("decision_date", kind="stable").reset_index(drop=True)
    return {
        "marts/governance_decisions": ("marts.governance_decisions", decisions, "decision_date"),
        "marts/governance_reviews": ("marts.governance_reviews", result.reviews, "review_date"),
        "marts/model_risk": ("marts.model_risk", result.status, "date"),
        "marts/feature_drift": ("marts.feature_drift", drift, "review_date"),
    }


def _materializations(
    context: dg.AssetExecutionContext,
    counts: dict[str, int],
    result: GovernanceResult,
    tally: _SignalTally,
    drift: pd.DataFrame,
    routing: Routing,
) -> Iterator[dg.MaterializeResult]:
    """One materialization per output with its row count, and what a reviewer looks at first."""
    actions = result.decisions["action"].value_counts().to_dict()
    events = result.decisions[result.decisions["action"] != "hold"][["decision_date", "action", "model", "reason"]]
    active_share = result.active.replace("", "(none)").value_counts(normalize=True).round(3)
    extra = {
        "ml/governed_signals": {
            **tally.metadata(),
            "active_model_share": dg.MetadataValue.md(active_share.rename("share").to_frame().to_markdown()),
        },
        "marts/governance_decisions": {
            # what the decay_retrain sensor reads (dagster_pmx.defs.governance.sensors)
            RETRAIN_REQUESTS: dg.MetadataValue.json(retrain_requests(result)),
            "actions": str(actions),
            "latest_active_model": result.active.iloc[-1] or "(none: all stopped)",
            "llm_routed_sessions": int(routing.routed.reindex(result.active.index, fill_value=False).sum()),
            "routing_actions": str(routing.decisions["action"].value_counts().to_dict()),
            "events": dg.MetadataValue.md(events.tail(30).to_markdown(index=False)),
        },
        "marts/feature_drift": {
            "drifted_share": round(float(drift["drifted"].mean()), 4) if len(drift) else 0.0,
        },
    }
    for key, rows in counts.items():
        yield dg.MaterializeResult(asset_key=key.split("/"), metadata={"dagster/row_count": rows, **extra.get(key, {})})
    context.log.info(f"governance: {actions}; active share {active_share.to_dict()}")
