"""The decay_retrain sensor: one weekly_retrain run per decay alarm, read from the governance decisions'
materializations in a real (ephemeral) Dagster instance."""

import json

import dagster as dg

from dagster_pmx.defs.governance.assets import RETRAIN_REQUESTS
from dagster_pmx.defs.governance.sensors import DECISIONS, decay_retrain_sensor


def _materialize(instance: dg.DagsterInstance, requests: dict[str, str] | None) -> None:
    metadata = {} if requests is None else {RETRAIN_REQUESTS: dg.MetadataValue.json(requests)}
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=DECISIONS, metadata=metadata))


def _tick(instance: dg.DagsterInstance, cursor: str | None):
    result = decay_retrain_sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
    if isinstance(result, dg.SkipReason):
        return [], cursor
    return list(result.run_requests or []), result.cursor


def test_each_decay_alarm_queues_one_retrain_run():
    with dg.instance_for_test() as instance:
        requests, cursor = _tick(instance, None)
        assert requests == [] and cursor is None  # nothing materialized yet
        _materialize(instance, {"garch": "2020-03-16"})
        requests, cursor = _tick(instance, cursor)
        assert len(requests) == 1 and requests[0].tags["pmx/decayed_models"] == "garch@2020-03-16"
        assert requests[0].run_key == "decay_retrain:garch@2020-03-16" and requests[0].tags["pmx/trigger"] == "decay"
        assert _tick(instance, cursor)[0] == []  # the same materialization: nothing new
        # the next refresh finds the alarm still open, and the retrain's rebuild too: asked once only
        _materialize(instance, {"garch": "2020-03-16"})
        requests, cursor = _tick(instance, cursor)
        assert requests == []
        # a second model's alarm: one run for it alone; a later alarm of the first model is a new request
        _materialize(instance, {"garch": "2020-03-16", "hmm": "2020-03-20"})
        requests, cursor = _tick(instance, cursor)
        assert [r.tags["pmx/decayed_models"] for r in requests] == ["hmm@2020-03-20"]
        _materialize(instance, {"garch": "2021-01-04"})
        requests, cursor = _tick(instance, cursor)
        assert [r.run_key for r in requests] == ["decay_retrain:garch@2021-01-04"]
        assert json.loads(cursor)["queued"] == ["garch@2020-03-16", "garch@2021-01-04", "hmm@2020-03-20"]
        _materialize(instance, {"garch": "2020-03-16"})  # a rebuild naming an older alarm again: asked already
        assert _tick(instance, cursor)[0] == []
        _materialize(instance, None)  # a run that left no request (or an earlier version's metadata)
        assert _tick(instance, cursor)[0] == []
        # two refreshes between ticks, each naming the alarm that started in it: both are answered
        _materialize(instance, {"sarimax": "2021-02-01"})
        _materialize(instance, {"tcn": "2021-02-02"})
        requests, cursor = _tick(instance, cursor)
        assert [r.tags["pmx/decayed_models"] for r in requests] == ["sarimax@2021-02-01,tcn@2021-02-02"]


def test_a_sensor_turned_on_reads_the_latest_decisions_only():
    with dg.instance_for_test() as instance:
        _materialize(instance, {"garch": "2009-01-05"})  # an alarm of long ago
        _materialize(instance, {"hmm": "2020-03-20"})
        requests, cursor = _tick(instance, None)
        assert [r.tags["pmx/decayed_models"] for r in requests] == ["hmm@2020-03-20"]
        assert _tick(instance, cursor)[0] == []


def test_the_sensor_runs_the_weekly_retrain_job_and_is_on_by_default():
    from dagster_pmx.definitions import defs

    sensor = defs.get_sensor_def("decay_retrain")
    assert sensor.job_name == "weekly_retrain"
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
