"""The README's first command: `python -m dagster_pmx.cli` builds the graph and prints the summary."""

import dagster as dg

from dagster_pmx import cli
from dagster_pmx.lake import Lake
from python_models.forecasters.ensemble import VARIANTS
from tests.e2e.helpers import CLI_SLICE

#: A single-series model, a GARCH and the pooled XGBoost (feature importances) keep the build short.
MODELS = ("random_walk", "garch", "xgboost")


def test_cli_builds_the_warehouse_and_prints_the_summary(tmp_path, monkeypatch, capsys):
    home = tmp_path / "dagster_home"
    home.mkdir()
    warehouse = tmp_path / "pmx.ducklake"
    env = {
        "DAGSTER_HOME": str(home),
        "PMX_WAREHOUSE": str(warehouse),
        **CLI_SLICE,
        "PMX_MODELS": ",".join(MODELS),  # the command is under test; the slice's fixtures fit every model
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert "start    base_forecasts" in out and "progress:" in out
    assert "raw/prices:raw_prices_expectations: passed" in out
    for strategy in (*MODELS, *VARIANTS.values(), "governed", "barbell", "risk_parity", "benchmark"):
        assert strategy in out
    assert "sharpe" in out and "profit_factor" in out and "make sql" in out
    with Lake.at(warehouse).open(read_only=True) as con:
        assert (
            con.execute("select count(*) from marts.backtest_summary").fetchone()[0] == len(MODELS) + len(VARIANTS) + 4
        )
    # The run is recorded in the instance the UI reads.
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert len(runs) == 1 and runs[0].job_name == "full_build"
    assert (home / "pmx-last-run.log").stat().st_size > 0

    # --full-refresh rebuilds the incremental models: every feature row is rewritten; the daily refresh
    # (its own forecasting mode kept by the CLI) forecasts nothing new from the stored fits
    # set (to "no") through monkeypatch, so the "1" the CLI sets is removed after this test
    monkeypatch.setenv("PMX_FULL_REFRESH", "0")
    with Lake.at(warehouse).open(read_only=True) as con:
        first = con.execute("select max(refreshed_at) from marts.features").fetchone()[0]
        forecasts = con.execute("select count(*) from ml.base_forecasts").fetchone()[0]
    capsys.readouterr()
    assert cli.main(["--full-refresh", "--job", "daily_refresh"]) == 0
    assert "success  base_forecasts" in capsys.readouterr().out
    with Lake.at(warehouse).open(read_only=True) as con:
        assert con.execute("select min(refreshed_at) from marts.features").fetchone()[0] > first
        assert con.execute("select count(*) from ml.base_forecasts").fetchone()[0] == forecasts
