"""The README's first command: `python -m dagster_pmx.cli` builds the graph and prints the summary.

The commands run as a user runs them, each a process (``tests/e2e/cli_scenario.py``), which the session
starts as it starts (tests/e2e/background.py): the test checks what they printed and left.
"""

import json

import dagster as dg
import pandas as pd

from dagster_pmx.lake import Lake
from python_models.forecasters.ensemble import VARIANTS
from tests.e2e.cli_scenario import MODELS


def test_cli_builds_the_warehouse_and_prints_the_summary(cli_runs, monkeypatch):
    home, warehouse = cli_runs / "dagster_home", cli_runs / "pmx.ducklake"
    facts = json.loads((cli_runs / "scenario.json").read_text())
    out = (cli_runs / "build.out").read_text()
    assert facts["build_exit"] == 0, out[-3000:]
    assert "start    base_forecasts" in out and "progress:" in out
    assert "raw/prices:raw_prices_expectations: passed" in out
    for strategy in (*MODELS, *VARIANTS.values(), "governed", "barbell", "risk_parity", "benchmark"):
        assert strategy in out
    assert "sharpe" in out and "profit_factor" in out and "make sql" in out
    # each model's walk-forward fitting time (issue 21: the run prints it)
    fits = out[out.index("Walk-forward fits") : out.index("marts.backtest_summary")]
    assert "ms_per_refit" in fits
    for model in MODELS:
        assert f"\n{model} " in fits
    with Lake.at(warehouse).open(read_only=True) as con:
        assert (
            con.execute("select count(*) from marts.backtest_summary").fetchone()[0] == len(MODELS) + len(VARIANTS) + 4
        )
    # The runs are recorded in the instance the UI reads: the build, then the refresh below.
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert [run.job_name for run in instance.get_runs()] == ["daily_refresh", "full_build"]
    assert facts["last_run_log_bytes"] > 0  # the build's own log (pmx-last-run.log)

    # --full-refresh rebuilds the incremental models: every feature row is rewritten; the daily refresh
    # (its own forecasting mode kept by the CLI) forecasts nothing new from the stored fits
    refreshed = (cli_runs / "refresh.out").read_text()
    assert facts["refresh_exit"] == 0, refreshed[-3000:]
    assert "success  base_forecasts" in refreshed
    with Lake.at(warehouse).open(read_only=True) as con:
        assert con.execute("select min(refreshed_at) from marts.features").fetchone()[0] > pd.Timestamp(
            facts["features_written"]
        )
        assert con.execute("select count(*) from ml.base_forecasts").fetchone()[0] == facts["forecasts"]
