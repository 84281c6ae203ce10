"""Blocking checks that keep stopped models and gated signals out of the allocations."""

import dagster as dg
import pandas as pd

from dagster_pmx.defs.governance import reads
from dagster_pmx.resources import PmxSettings, Warehouse


def _violations(rows: pd.DataFrame) -> tuple[int, list]:
    return len(rows), rows.head(5).astype(str).to_dict("records")


@dg.asset_check(
    asset=dg.AssetKey(["marts", "signals"]),
    blocking=True,
    description="Governance gate: every tradable signal comes from the model marts.model_risk marks active at that "
    "date, that model is not emergency-stopped, and its confidence is at least the 0.55 minimum; or, on a session "
    "the audit trail routes to the LLM source (llm_fallback), from that source, at the same minimum.",
)
def signals_follow_governance(warehouse: Warehouse) -> dg.AssetCheckResult:
    n, sample = _violations(reads.ungoverned_signals(warehouse))
    return dg.AssetCheckResult(passed=n == 0, metadata={"violations": n, "sample": str(sample)})


@dg.asset_check(
    asset=dg.AssetKey(["marts", "allocations"]),
    blocking=True,
    description="The governed strategy holds no risky weight on a (ticker, date) whose signal may not trade "
    "(stopped model, low confidence, flip-flopping).",
)
def allocations_respect_the_signal_gate(warehouse: Warehouse, settings: PmxSettings) -> dg.AssetCheckResult:
    n, sample = _violations(reads.ungated_allocations(warehouse))
    return dg.AssetCheckResult(passed=n == 0, metadata={"violations": n, "sample": str(sample)})
