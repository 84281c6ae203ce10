"""Run config shared by the assets the daily refresh extends instead of rebuilding."""

import dagster as dg
import pandas as pd

#: Before any date: the lower bound of a full (not incremental) read.
NEVER = pd.Timestamp("1900-01-01")


class IncrementalRun(dg.Config):
    """``incremental: true`` (the daily refresh) decides only the sessions after the last stored one, resuming
    from the state the warehouse holds; the rows are the ones a rebuild of the whole history gives them.
    Off (the default, the full build and the weekly retrain): rebuild the whole history."""

    incremental: bool = False


#: Materialization metadata of an incremental write: the date after which the rows were replaced.
APPENDED_AFTER = "appended_after"


def appended_after(context: dg.AssetCheckExecutionContext, key: dg.AssetKey) -> pd.Timestamp | None:
    """The date after which the latest materialization of ``key`` wrote its rows, or None when it
    rewrote the whole table. A check validates what that materialization wrote: the rows before were
    validated (and could block) when they were written."""
    event = context.instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get(APPENDED_AFTER)
    return None if value is None else pd.Timestamp(value.value)
