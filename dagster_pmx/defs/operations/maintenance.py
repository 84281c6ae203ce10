"""Warehouse upkeep on a schedule: old snapshots expired, unread files deleted, a restore point copied.

Every run leaves snapshots (one per transaction) and Parquet files that later runs replace. Without
upkeep the lake only grows. Nightly, after the refresh: keep the run points retention names
(``keep_daily`` / ``keep_weekly``, pmx.toml ``[storage]``), expire every other snapshot, delete the
files only expired snapshots read (a day after they were dropped, so a reader still attached keeps
working), delete the dbt folders failed builds left, copy a restore point to ``backup_dir`` and prune
old points by the same rule.
"""

import dagster as dg

from dagster_pmx import backup, run_points
from dagster_pmx.config import load_config
from dagster_pmx.defs.transform.project import prune_invocation_folders
from dagster_pmx.resources import Warehouse


@dg.op(pool="warehouse")
def maintain_warehouse(context: dg.OpExecutionContext, warehouse: Warehouse) -> dg.Output:
    """Expire snapshots and files retention does not keep, then back up and prune the restore points."""
    config = load_config()
    keep_daily, keep_weekly = config.values["keep_daily"], config.values["keep_weekly"]
    with warehouse.connect() as con:
        expired = run_points.expire(con, keep_daily, keep_weekly)
        removed = run_points.clean_files(con)
    # the dbt folders of failed builds (a successful step deletes its own), kept as long as the daily points
    dbt_folders = prune_invocation_folders(older_than_days=keep_daily)
    metadata: dict[str, dg.RawMetadataValue] = {
        "snapshots_expired": len(expired),
        "files_deleted": removed,
        "dbt_folders_deleted": len(dbt_folders),
    }
    if warehouse.lake.kind == "sqlite":
        point = backup.backup(warehouse.lake, config.backup_dir)
        pruned = backup.prune(config.backup_dir, keep_daily, keep_weekly)
        metadata |= {"restore_point": str(point), "restore_points_pruned": len(pruned)}
    else:
        context.log.info("a PostgreSQL catalog is backed up with pg_dump (docs/warehouse.md): no restore point here")
    context.log.info(", ".join(f"{k}: {v}" for k, v in metadata.items()))
    return dg.Output(None, metadata=metadata)


@dg.job(
    name="warehouse_maintenance",
    description="Expire the snapshots and delete the files retention does not keep, copy a restore point "
    "to backup_dir and prune old points (pmx.toml [storage]).",
)
def warehouse_maintenance_job():
    maintain_warehouse()


warehouse_maintenance_schedule = dg.ScheduleDefinition(
    name="warehouse_maintenance_nightly",
    job=warehouse_maintenance_job,
    cron_schedule="0 21 * * *",
    execution_timezone="America/New_York",
    description="Every day 21:00 New York: after the weekday refresh and the Saturday retrain.",
)
