"""The runs of the command test (tests/e2e/test_cli.py), as a process of its own:
``python -m tests.e2e.cli_scenario WORK``.

The README's first command, ``python -m dagster_pmx.cli``, builds a new warehouse (``WORK/pmx.ducklake``,
the slice ``CLI_SLICE`` with three models) against a new ``$DAGSTER_HOME`` (``WORK/dagster_home``); then
``python -m dagster_pmx.cli --full-refresh --job daily_refresh`` runs on it with nothing new. Each command's
output is kept (``build.out``, ``refresh.out``), and ``scenario.json`` records each exit code and what
the second run is checked against (the features' last write and the forecasts' count after the build, the
size of the build's log).

Its runs are processes the test only waits for, so the session starts it as it starts
(``tests/e2e/background.py``), and it runs on the machine's second core while the tests before the
command test run on the first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: A single-series model, a GARCH and the pooled XGBoost (feature importances) keep the build short.
MODELS = ("random_walk", "garch", "xgboost")


def main(work: Path) -> None:
    from dagster_pmx.lake import Lake
    from tests.e2e.helpers import CLI_SLICE

    home = work / "dagster_home"
    home.mkdir()
    warehouse = work / "pmx.ducklake"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PMX_WAREHOUSE": str(warehouse),
        **CLI_SLICE,
        "PMX_MODELS": ",".join(MODELS),  # the command is under test; the slice's fixtures fit every model
        "PYTHONPATH": str(REPO),
    }

    def pmx(*args: str, output: str) -> int:
        with (work / output).open("w") as out:
            command = [sys.executable, "-m", "dagster_pmx.cli", *args]
            return subprocess.run(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT).returncode

    facts: dict = {"build_exit": pmx(output="build.out")}
    if facts["build_exit"] == 0:
        facts["last_run_log_bytes"] = (home / "pmx-last-run.log").stat().st_size
        with Lake.at(warehouse).open(read_only=True) as con:
            facts["features_written"] = str(con.execute("select max(refreshed_at) from marts.features").fetchone()[0])
            facts["forecasts"] = con.execute("select count(*) from ml.base_forecasts").fetchone()[0]
        facts["refresh_exit"] = pmx("--full-refresh", "--job", "daily_refresh", output="refresh.out")
    (work / "scenario.json").write_text(json.dumps(facts))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
