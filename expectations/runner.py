"""Run a GX 1.x expectation suite on a pandas DataFrame in an ephemeral context."""

from __future__ import annotations

from dataclasses import dataclass

import great_expectations as gx
import pandas as pd
from great_expectations.data_context.types.base import ProgressBarsConfig


@dataclass(frozen=True)
class Validation:
    """Outcome of one suite: overall success and the failed expectations with counts."""

    success: bool
    evaluated: int
    failures: list[dict]

    def summary(self) -> str:
        if self.success:
            return f"all {self.evaluated} expectations passed"
        return "; ".join(
            f"{f['expectation']}({f['column']}): {f['unexpected_count']} unexpected" for f in self.failures
        )


def validate(frame: pd.DataFrame, suite_name: str, expectations: list) -> Validation:
    """Validate ``frame`` against ``expectations`` (GX expectation objects)."""
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = context.data_sources.add_pandas(name=f"{suite_name}_source").add_dataframe_asset(name=suite_name)
    batch = asset.add_batch_definition_whole_dataframe(f"{suite_name}_batch").get_batch(
        batch_parameters={"dataframe": frame}
    )
    suite = gx.ExpectationSuite(name=suite_name, expectations=expectations)
    result = batch.validate(suite)
    failures = []
    for r in result.results:
        if not r.success:
            cfg = r.expectation_config
            assert cfg is not None  # a suite's results carry the expectation they ran
            kwargs = cfg.kwargs
            failures.append(
                {
                    "expectation": cfg.type,
                    "column": kwargs.get("column")
                    or kwargs.get("column_list")
                    or f"{kwargs.get('column_A')},{kwargs.get('column_B')}",
                    "unexpected_count": (r.result or {}).get("unexpected_count"),
                }
            )
    return Validation(success=bool(result.success), evaluated=len(result.results), failures=failures)
