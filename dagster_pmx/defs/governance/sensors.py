"""Decay queues a retrain: a sensor that asks for the weekly_retrain job when a model's decay alarm starts.

Governance (:mod:`dagster_pmx.defs.governance.assets`) logs a ``retrain`` decision the session a model's
decay CUSUM alarms (``marts.governance_decisions``: the audit trail) and names the requests still open at
its last session in the decisions' materialization metadata (``retrain_requests``: model -> the date the
alarm started), the alarms that started in that run and are still on (one that started and ended within a
run, in a multi-session catch-up or a full build's history, asks nothing: it is over). This sensor reads
that metadata from the Dagster instance, not the warehouse (it never opens DuckDB beside a run that
writes it), and requests one ``weekly_retrain`` run for the alarms new since its last tick; its cursor
keeps every alarm queued, so the retrain's own rebuild of governance, which finds the same alarm open,
asks nothing again. The run is tagged with the models and dates it answers, and the instance's run
queue starts it when the warehouse is free (one run at a time). A retrain run that fails is not asked
for again: the failure sensor reports it, and the next decay alarm or the weekly schedule retrains.
"""

import json

import dagster as dg

from dagster_pmx.defs.governance.assets import RETRAIN_REQUESTS
from dagster_pmx.defs.operations.jobs import weekly_retrain_job
from python_models.governance.governor import RETRAIN_SENSOR

DECISIONS = dg.AssetKey(["marts", "governance_decisions"])
#: Materializations read at most per tick (the rest wait for the next: the cursor moves past those read).
EVENTS_PER_TICK = 100


def new_requests(metadata: dict, queued: set[str]) -> list[str]:
    """The requests (``model@alarm date``) a materialization's ``metadata`` names that are not in ``queued``."""
    entry = metadata.get(RETRAIN_REQUESTS)
    asked = dict(entry.value) if entry is not None else {}
    return [request for request in (f"{m}@{d}" for m, d in sorted(asked.items())) if request not in queued]


@dg.sensor(
    name=RETRAIN_SENSOR,
    job=weekly_retrain_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Queues a weekly_retrain run when governance's decay detector alarms on a model (the retrain "
    "decisions of marts.governance_decisions): one run for the alarms new at a tick, each alarm once.",
)
def decay_retrain_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    cursor = json.loads(context.cursor) if context.cursor else {"event": None, "queued": []}
    instance = context.instance
    if cursor["event"] is None:
        # first tick (the sensor just turned on, or its cursor was reset): the latest decisions only, not
        # every alarm of the instance's history, most of them long over
        records = instance.fetch_materializations(DECISIONS, limit=1).records
    else:
        # every materialization since the last tick, oldest first: a daily refresh names only the alarms
        # that started in it, so one left unread would be lost
        after = dg.AssetRecordsFilter(asset_key=DECISIONS, after_storage_id=cursor["event"])
        records = instance.fetch_materializations(after, limit=EVENTS_PER_TICK, ascending=True).records
    if not records:
        return dg.SkipReason("no new governance decisions")
    queued, fresh = set(cursor["queued"]), []
    for record in records:
        materialization = record.asset_materialization
        asked = new_requests(dict(materialization.metadata) if materialization is not None else {}, queued)
        queued.update(asked)
        fresh.extend(asked)
    cursor = {"event": records[-1].storage_id, "queued": sorted(queued)}
    if not fresh:
        return dg.SensorResult(skip_reason="no new decay alarm", cursor=json.dumps(cursor))
    answered = ",".join(sorted(fresh))
    request = dg.RunRequest(
        run_key=f"{RETRAIN_SENSOR}:{answered}",
        tags={"pmx/trigger": "decay", "pmx/decayed_models": answered},
    )
    context.log.info(f"decay alarms on {answered}: retrain queued")
    return dg.SensorResult(run_requests=[request], cursor=json.dumps(cursor))
