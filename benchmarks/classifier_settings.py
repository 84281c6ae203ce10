"""How the classifier's penalty changes its scores against the base rate, on a built warehouse.

Usage: ``python benchmarks/classifier_settings.py --warehouse PATH [--c 0.01,0.001]``

Reads ``marts.features`` and ``marts.targets`` of the warehouse (the default build's universe), walks
the pooled logistic classifier forward with each inverse penalty ``c`` (the build's folds, window,
purge and embargo) and prints, per target and horizon, the log loss and Brier score against the base
rate with the block-bootstrap interval of the log-loss difference, as ``marts.classifier_scores``
computes them. The settings are compared on the data they were chosen on: in-sample.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

from dagster_pmx.defs.classification import reads  # noqa: E402
from dagster_pmx.defs.forecasting.modes import walk_forward_config  # noqa: E402
from dagster_pmx.resources import PmxSettings, Warehouse  # noqa: E402
from python_models.classification.base import TARGETS, events, label_columns  # noqa: E402
from python_models.classification.logistic import PooledLogistic  # noqa: E402
from python_models.classification.scores import classifier_scores  # noqa: E402
from python_models.classification.walk_forward import run_classifier  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", required=True, help="a built warehouse (pmx.ducklake)")
    parser.add_argument(
        "--c",
        default="0.01,0.0001/0.001/0.01r",
        help="comma-separated settings: an inverse penalty or a grid a/b/c to choose from; "
        "a trailing r: no Platt scaling (refit on every label)",
    )
    parser.add_argument("--draws", type=int, default=1000)
    args = parser.parse_args()
    settings = PmxSettings.from_env()
    warehouse = Warehouse(path=args.warehouse)
    calendar = reads.feature_sessions(warehouse, settings.benchmark, settings.ticker_list)
    panel = reads.classifier_panel(warehouse, settings.benchmark, settings.ticker_list, label_columns())
    print(f"panel: {panel['ticker'].nunique()} tickers, {len(calendar)} sessions, {len(panel):,} rows")
    realised = []
    for target in TARGETS:
        for h in (1, 5, 21, 63):
            realised.append(panel[["ticker", "date"]].assign(target=target, horizon=h, event=events(panel, target, h)))
    outcomes = pd.concat(realised, ignore_index=True)
    rows = []
    for setting in args.c.split(","):
        calibrate = not setting.endswith("r")
        c = [float(v) for v in setting.rstrip("r").split("/")]  # a/b/c: the grid the fits choose from
        started = time.perf_counter()
        probs, _ = run_classifier(
            PooledLogistic(c=c, calibrate=calibrate),
            panel,
            walk_forward_config(settings),
            settings.forecast_start,
            calendar=calendar,
        )
        seconds = time.perf_counter() - started
        scored = probs.merge(outcomes, on=["ticker", "date", "target", "horizon"]).assign(
            model=f"c={setting.rstrip('r')}{'' if calibrate else ' raw'}"
        )
        scores = classifier_scores(scored, draws=args.draws)
        scores["seconds"] = round(seconds, 1)
        rows.append(scores)
    table = pd.concat(rows, ignore_index=True)
    table["log_loss_diff"] = table["log_loss"] - table["base_log_loss"]
    table["brier_diff"] = table["brier"] - table["base_brier"]
    cols = [
        "model",
        "target",
        "horizon",
        "log_loss_diff",
        "log_loss_diff_lower",
        "log_loss_diff_upper",
        "brier_diff",
        "hit_rate",
        "base_hit_rate",
        "calibration_error",
        "verdict",
        "seconds",
    ]
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(table[cols].round(5).to_string(index=False))


if __name__ == "__main__":
    main()
