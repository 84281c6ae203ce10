"""Blocking checks that keep stopped models and gated signals out of the allocations."""

import dagster as dg

from dagster_pmx.resources import PmxSettings, Warehouse


def _violations(warehouse: Warehouse, sql: str, params: list | None = None) -> tuple[int, list]:
    rows = warehouse.query(sql, params)
    return len(rows), rows.head(5).astype(str).to_dict("records")


@dg.asset_check(
    asset=dg.AssetKey(["marts", "signals"]),
    blocking=True,
    description="Governance gate: every tradable signal comes from the model marts.model_risk marks active at that "
    "date, that model is not emergency-stopped, and its confidence is at least the 0.55 minimum.",
)
def signals_follow_governance(warehouse: Warehouse) -> dg.AssetCheckResult:
    n, sample = _violations(
        warehouse,
        """
        select s.ticker, s.date, s.model, s.confidence, r.stopped, r.active
        from marts.signals s
        left join marts.model_risk r on r.model = s.model and r.date = s.date
        where s.tradable and (r.model is null or r.stopped or not r.active or s.confidence < 0.55)
        """,
    )
    return dg.AssetCheckResult(passed=n == 0, metadata={"violations": n, "sample": str(sample)})


@dg.asset_check(
    asset=dg.AssetKey(["marts", "allocations"]),
    blocking=True,
    description="The governed strategy holds no risky weight on a (ticker, date) whose signal may not trade "
    "(stopped model, low confidence, flip-flopping).",
)
def allocations_respect_the_signal_gate(warehouse: Warehouse, settings: PmxSettings) -> dg.AssetCheckResult:
    n, sample = _violations(
        warehouse,
        """
        select a.date, a.ticker, a.weight, s.block_reason
        from marts.allocations a
        join marts.signals s on s.ticker = a.ticker and s.date = a.date
        where a.strategy = 'governed' and a.sleeve = 'risky' and a.weight <> 0 and not s.tradable
        """,
    )
    return dg.AssetCheckResult(passed=n == 0, metadata={"violations": n, "sample": str(sample)})
