"""Decay queues a retrain: a sensor that asks for the weekly_retrain job when a model's decay alarm starts.

Governance (:mod:`dagster_pmx.defs.governance.assets`) logs a ``retrain`` decision the session a model's
decay CUSUM alarms (``marts.governance_decisions``: the audit trail) and names the requests still open at
its last session in the decisions' materialization metadata (``retrain_requests``: model -> the date the
alarm started). This sensor reads that metadata from the Dagster instance, not the warehouse (it never
opens DuckDB beside a run that writes it), and requests one ``weekly_retrain`` run for the requests it has
not queued before; its cursor keeps the requests queued, so the retrain's own rebuild of governance, which
finds the same alarm open, asks nothing again. The run is tagged with the models and dates it answers,
and the instance's run queue starts it when the warehouse is free (one run at a time).
"""

import json

import dagster as dg

from dagster_pmx.defs.governance.assets import RETRAIN_REQUESTS
from dagster_pmx.defs.operations.jobs import weekly_retrain_job
from python_models.governance.governor import RETRAIN_SENSOR

DECISIONS = dg.AssetKey(["marts", "governance_decisions"])
#: Materializations read at most per tick (the rest wait for the next: the cursor moves past those read).
EVENTS_PER_TICK = 100


def new_requests(metadata: dict, queued: dict[str, str]) -> dict[str, str]:
    """The requests of a materialization's ``metadata`` (model -> alarm date) not in ``queued``."""
    entry = metadata.get(RETRAIN_REQUESTS)
    asked = dict(entry.value) if entry is not None else {}
    return {m: d for m, d in sorted(asked.items()) if queued.get(m) != d}


@dg.sensor(
    name=RETRAIN_SENSOR,
    job=weekly_retrain_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Queues a weekly_retrain run when governance's decay detector alarms on a model (the retrain "
    "decisions of marts.governance_decisions), once per alarm.",
)
def decay_retrain_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    cursor = json.loads(context.cursor) if context.cursor else {"event": None, "queued": {}}
    # every materialization since the last tick, oldest first: a daily refresh names only the alarms that
    # started in it, so one left unread would be lost
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=DECISIONS, after_storage_id=cursor["event"]),
        limit=EVENTS_PER_TICK,
        ascending=True,
    ).records
    if not records:
        return dg.SkipReason("no new governance decisions")
    queued, fresh = dict(cursor["queued"]), {}
    for record in records:
        materialization = record.asset_materialization
        asked = new_requests(dict(materialization.metadata) if materialization is not None else {}, queued)
        queued.update(asked)
        fresh.update(asked)
    cursor = {"event": records[-1].storage_id, "queued": queued}
    if not fresh:
        return dg.SensorResult(skip_reason="no new decay alarm", cursor=json.dumps(cursor))
    answered = ",".join(f"{m}@{d}" for m, d in sorted(fresh.items()))
    request = dg.RunRequest(
        run_key=f"{RETRAIN_SENSOR}:{answered}",
        tags={"pmx/trigger": "decay", "pmx/decayed_models": answered},
    )
    context.log.info(f"decay alarms on {answered}: retrain queued")
    return dg.SensorResult(run_requests=[request], cursor=json.dumps(cursor))
