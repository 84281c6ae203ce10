"""Governance assets: which model the signals follow, the audit trail, risk flags and drift."""

import dagster as dg
import pandas as pd

from dagster_pmx.defs import schemas
from dagster_pmx.defs.reads import cash_rates, forecasts_with_outcomes, market_regimes, sessions_back
from dagster_pmx.defs.reads import sessions as session_calendar
from dagster_pmx.defs.refresh import NEVER, IncrementalRun
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.forecasters.registry import MODELS
from python_models.governance.drift import RECENT_WINDOW as DRIFT_RECENT
from python_models.governance.drift import feature_drift
from python_models.governance.policy import (
    GovernancePolicy,
    GovernanceState,
    daily_evidence,
    govern,
    model_strategy_returns,
)
from python_models.governance.signals import CONFIDENCE_WINDOW, governed_signals, model_signals

SIGNAL_COLUMNS = [c.name for c in schemas.GOVERNED_SIGNALS.columns]
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


OUTPUTS = (
    ["ml", "governed_signals"],
    ["marts", "governance_decisions"],
    ["marts", "governance_reviews"],
    ["marts", "model_risk"],
    ["marts", "feature_drift"],
)


def governance_policy(settings: PmxSettings) -> GovernancePolicy:
    return GovernancePolicy(baseline=settings.governance_baseline, horizon=settings.signal_horizon)


def stored_state(warehouse: Warehouse, policy: GovernancePolicy) -> GovernanceState | None:
    """Where the stored tables leave governance (None when they hold no run to resume): the last
    session's stops and active model (a promoted candidate is active unless stopped, and a stop
    reverts it the same close), and the last review."""
    if not {".".join(key) for key in OUTPUTS} <= warehouse.tables():
        return None
    last, review = warehouse.last("marts.model_risk"), warehouse.last("marts.governance_reviews", "review_date")
    if last is None or review is None:
        return None
    rows = warehouse.query("select model, stopped, active from marts.model_risk where date = ?", [last])
    leader = rows.loc[rows["active"], "model"]
    promoted = leader.iloc[0] if len(leader) and leader.iloc[0] != policy.baseline else ""
    stopped = {m: bool(x) for m, x in zip(rows["model"], rows["stopped"], strict=True)}
    return GovernanceState(date=last, promoted=promoted, stopped=stopped, last_review=review)


def _spec(name: str, schema: dg.TableSchema, description: str, schema_name: str = "marts") -> dg.AssetSpec:
    return dg.AssetSpec(
        [schema_name, name],
        group_name="governance",
        kinds={"python", "duckdb"},
        deps=[
            dg.AssetKey(["ml", "base_forecasts"]),
            dg.AssetKey(["ml", "ensemble_forecasts"]),
            dg.AssetKey(["ml", "regime_probabilities"]),
            dg.AssetKey(["intermediate", "int_forward_returns"]),
            dg.AssetKey(["intermediate", "int_returns"]),
            dg.AssetKey(["intermediate", "int_risk_free"]),
            dg.AssetKey(["marts", "features"]),
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
            "Audit trail of governance: promote / hold / revert at each review (every 63 sessions) and stop / "
            "resume on any session, with the evidence, the thresholds in force and the date.",
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
            "Per model and session: rolling directional accuracy (63 realised dates), emergency stop (< 0.45, "
            "resumes at >= 0.50), retraining flag (< 0.50) and whether it is the model signals follow.",
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
def governance(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings, config: IncrementalRun):
    policy = governance_policy(settings)
    state = stored_state(warehouse, policy) if config.incremental else None
    calendar = session_calendar(warehouse)
    start = None
    if state is not None:
        if not len(calendar) or calendar[-1] <= state.date:
            context.log.info(f"no session after {state.date.date()}: nothing to govern")
            for key in OUTPUTS:
                yield dg.MaterializeResult(asset_key=key, metadata={"new_rows": 0})
            return
        # every input a decision after state.date reads: the evidence window before a review (with a
        # session to enter the strategies), the forecasts realised in it, and the accuracy window
        lookback = max(policy.evidence_window + 1, CONFIDENCE_WINDOW) + policy.accuracy_window + 2 * policy.horizon
        start = sessions_back(calendar, min(state.date, state.last_review), lookback)
    forecasts = forecasts_with_outcomes(
        warehouse,
        ["ml.base_forecasts", "ml.ensemble_forecasts"],
        "model, ticker, asof_date, horizon, target_date, y_pred, y_lower, y_upper, y_std",
        horizon=policy.horizon,
        since=start,
    )
    if forecasts.empty:
        raise ValueError(f"no forecasts at the signal horizon {policy.horizon}")
    returns = warehouse.query(
        "select date, ticker, simple_return from intermediate.int_returns where ticker <> ? and date >= ?",
        [settings.benchmark, start or NEVER],
    ).pivot(index="date", columns="ticker", values="simple_return")
    returns = returns.sort_index().fillna(0.0)
    strategy = model_strategy_returns(
        forecasts,
        returns,
        settings.kelly_fraction,
        settings.position_cap,
        settings.max_gross,
        settings.cost_bps,
        cash_rate=cash_rates(warehouse),
    )
    regimes = market_regimes(warehouse)
    loss_diff, hits = daily_evidence(forecasts, policy.baseline)
    result = govern(loss_diff, hits, strategy, policy, regimes=regimes, sessions=strategy.index, state=state)

    vr = warehouse.query(
        "select ticker, date, variance_ratio_z_10 as z from marts.features where ticker <> ? and date >= ?",
        [settings.benchmark, start or NEVER],
    )
    singles = sorted(set(forecasts["model"]) & set(MODELS))
    if state is not None:  # the confidence windows and the flip count reach back less far than the evidence
        reach = CONFIDENCE_WINDOW + 2 * policy.horizon + policy.flip_window + 5
        first = sessions_back(calendar, state.date, reach)
        forecasts, vr = forecasts[forecasts["asof_date"] >= first], vr[vr["date"] >= first]
    per_model = model_signals(forecasts, policy.horizon, singles, variance_ratio_z=vr, window=CONFIDENCE_WINDOW)
    if state is None:
        signals = governed_signals(per_model, result.active, policy)[SIGNAL_COLUMNS]
    else:  # the flip count reads the directions of the sessions before the new ones too
        stored = warehouse.query(
            "select date, coalesce(any_value(model) filter (where active), '') as model from marts.model_risk "
            "where date >= ? group by date order by date",
            [start],
        )
        before = pd.Series(stored["model"].to_numpy(), index=pd.DatetimeIndex(stored["date"]))
        active = pd.concat([before[before.index <= state.date], result.active])
        signals = governed_signals(per_model, active, policy)[SIGNAL_COLUMNS]
        signals = signals[signals["asof_date"] > state.date]
    reviews = result.reviews["review_date"].drop_duplicates()
    drift = pd.DataFrame(columns=[c.name for c in schemas.FEATURE_DRIFT.columns])
    if len(reviews):  # the drift at each new review: its recent window against the training window before
        reach = settings.train_window + DRIFT_RECENT + policy.review_every + 5
        first = None if state is None else sessions_back(calendar, reviews.min(), reach)
        features = warehouse.query(
            "select * exclude (ticker, refreshed_at) from marts.features where ticker <> ? and date >= ?",
            [settings.benchmark, first or NEVER],
        ).drop(columns=list(CALENDAR_FEATURES), errors="ignore")
        drift = feature_drift(features, reviews, train_window=settings.train_window, recent_window=DRIFT_RECENT)

    tables = {
        "ml/governed_signals": ("ml.governed_signals", signals, "asof_date"),
        "marts/governance_decisions": ("marts.governance_decisions", result.decisions, "decision_date"),
        "marts/governance_reviews": ("marts.governance_reviews", result.reviews, "review_date"),
        "marts/model_risk": ("marts.model_risk", result.status, "date"),
        "marts/feature_drift": ("marts.feature_drift", drift, "review_date"),
    }
    if state is None:
        counts = {key: warehouse.replace_table(table, frame) for key, (table, frame, _) in tables.items()}
    else:
        counts = {
            key: warehouse.append_after(table, frame, state.date, column)
            for key, (table, frame, column) in tables.items()
        }
        context.log.info(f"incremental: governed {len(result.active)} sessions after {state.date.date()}")
    actions = result.decisions["action"].value_counts().to_dict()
    events = result.decisions[result.decisions["action"] != "hold"][["decision_date", "action", "model", "reason"]]
    active_share = result.active.replace("", "(none)").value_counts(normalize=True).round(3)
    blocked = signals["block_reason"].fillna("tradable").value_counts().to_dict()
    extra = {
        "ml/governed_signals": {
            "tradable_share": round(float(signals["tradable"].mean()), 4),
            "block_reasons": str(blocked),
            "active_model_share": dg.MetadataValue.md(active_share.rename("share").to_frame().to_markdown()),
        },
        "marts/governance_decisions": {
            "actions": str(actions),
            "latest_active_model": result.active.iloc[-1] or "(none: all stopped)",
            "events": dg.MetadataValue.md(events.tail(30).to_markdown(index=False)),
        },
        "marts/feature_drift": {
            "drifted_share": round(float(drift["drifted"].mean()), 4) if len(drift) else 0.0,
        },
    }
    for key, rows in counts.items():
        yield dg.MaterializeResult(asset_key=key.split("/"), metadata={"dagster/row_count": rows, **extra.get(key, {})})
    context.log.info(f"governance: {actions}; active share {active_share.to_dict()}")
