"""Alerts: a sensor that reports every failed run.

Each failure is appended as one JSON line to ``$DAGSTER_HOME/alerts/run_failures.jsonl``
(the ``alert_file`` setting overrides the path) and, when ``alert_webhook`` is set, posted there as JSON
(a Slack or Teams incoming webhook accepts the ``text`` field), with three tries and backoff.
The sensor runs in the Dagster daemon: `make ui` starts one; turn the sensor on in the UI
(Automation) or leave it on by default as shipped.
"""

import json
import time
import urllib.request
from pathlib import Path

import dagster as dg

from dagster_pmx.config import load_config


def alert_file() -> Path:
    """Where failures are recorded: the ``alert_file`` setting (pmx.toml, PMX_ALERT_FILE), else
    ``$DAGSTER_HOME/alerts/run_failures.jsonl``."""
    return load_config().alert_file()


def failure_record(context: dg.RunFailureSensorContext) -> dict:
    run = context.dagster_run
    steps = [e.step_key for e in context.get_step_failure_events()]
    return {
        "run_id": run.run_id,
        "job": run.job_name,
        "failed_steps": steps,
        "message": context.failure_event.message,
        "tags": dict(run.tags),
        "text": f"pmx: run {run.run_id[:8]} of {run.job_name} failed"
        + (f" at {', '.join(steps)}" if steps else "")
        + f": {context.failure_event.message}",
    }


def post(url: str, record: dict, tries: int = 3, delay: float = 2.0) -> None:
    body = json.dumps(record).encode()
    for attempt in range(tries):
        try:
            request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10):
                return
        except OSError:
            if attempt == tries - 1:
                raise
            time.sleep(delay * 2**attempt)


@dg.run_failure_sensor(
    name="alert_on_run_failure",
    description="Records every failed run (job, failed steps, error) in $DAGSTER_HOME/alerts/run_failures.jsonl "
    "and posts it to the alert_webhook setting (PMX_ALERT_WEBHOOK) when set.",
    default_status=dg.DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=False,
)
def alert_on_run_failure(context: dg.RunFailureSensorContext) -> None:
    record = failure_record(context)
    path = alert_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(record) + "\n")
    context.log.info(record["text"])
    url = load_config().alert_webhook
    if url:
        post(url, record)
