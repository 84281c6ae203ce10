"""Turn a Great Expectations validation into a Dagster asset check result."""

import dagster as dg

from expectations.runner import Validation


def check_result(validation: Validation, rows: int) -> dg.AssetCheckResult:
    """ERROR-severity result carrying the failed expectations; blocking checks stop downstream steps."""
    return dg.AssetCheckResult(
        passed=validation.success,
        severity=dg.AssetCheckSeverity.ERROR,
        description=validation.summary(),
        metadata={"rows": rows, "expectations": validation.evaluated, "failures": str(validation.failures)},
    )
