"""Classifiers of the binary targets: walk-forward probabilities, and their scores against the base rate."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from dagster_pmx.defs import schemas
from dagster_pmx.defs.classification import reads
from dagster_pmx.defs.forecasting.assets import ForecastRun
from dagster_pmx.defs.forecasting.modes import walk_forward_config
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.classification.base import label_columns
from python_models.classification.logistic import PooledLogistic
from python_models.classification.scores import classifier_scores as score_classifiers
from python_models.classification.walk_forward import (
    WALK_FORWARD_COLUMNS,
    FoldTally,
    first_training_session,
    fold_probabilities,
)

#: The table of the classifiers' probabilities.
TABLE = "ml.class_probabilities"
#: Bootstrap draws of the scores' intervals.
SCORE_DRAWS = 1000


#: Columns of ``ml.class_probabilities``: the classifier's name, then its walk-forward's.
STORED_COLUMNS = ["model", *WALK_FORWARD_COLUMNS]


def stored_batches(folds: FoldTally, model: str, table: str) -> Iterator[dict[str, pd.DataFrame]]:
    """``{table: rows}`` of each fold whose fit succeeded, as ``table`` stores them; one without rows when
    none did (the table keeps its columns)."""
    for probabilities in folds.probabilities():
        yield {table: probabilities.assign(model=model)[STORED_COLUMNS]}
    if not folds.fits:
        yield {table: pd.DataFrame(columns=STORED_COLUMNS)}


def default_classifier() -> PooledLogistic:
    """The classifier the build runs: every target at the forecasters' horizons."""
    return PooledLogistic()


@dg.asset(
    key=["ml", "class_probabilities"],
    group_name="forecasting",
    pool="warehouse",
    kinds={"python", "duckdb"},
    deps=[dg.AssetKey(["marts", "features"]), dg.AssetKey(["marts", "targets"])],
    metadata={"dagster/column_schema": schemas.CLASS_PROBABILITIES},
    description="Probabilities of the binary targets of marts.targets (direction: the forward return is "
    "positive; significant_move: |fwd return| > k daily vol sqrt(h)) at horizons 1/5/21/63: an L2 logistic "
    "regression pooled across tickers on the ticker-agnostic marts.features columns (the penalty chosen per fit "
    "from 1e-4, 1e-3, 1e-2 by a held-out block's log loss, then refitted on every label of its window), refitted "
    "every 126 sessions walk-forward with the forecasters' window, purge and embargo. Each row has the base rate"
    " of its fit's training labels, the forecast it is scored against.",
)
def class_probabilities(
    context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings, config: ForecastRun
) -> dg.MaterializeResult:
    classifier, wf = default_classifier(), walk_forward_config(settings)
    calendar = reads.feature_sessions(warehouse, settings.benchmark, settings.ticker_list)
    extend = config.mode == "incremental" and warehouse.has(TABLE)
    since = reads.last_probability_date(warehouse) if extend else None
    first = None
    if since is not None:
        first = first_training_session(classifier, calendar, wf, since, settings.forecast_start)
        if first is None:  # no fold holds a session after the stored ones
            return dg.MaterializeResult(metadata={"dagster/row_count": 0, "new_rows": 0})
    panel = reads.classifier_panel(
        warehouse, settings.benchmark, settings.ticker_list, label_columns(classifier.horizons), first
    )
    folds = FoldTally(
        fold_probabilities(classifier, panel, wf, start=settings.forecast_start, since=since, calendar=calendar)
    )
    batches = stored_batches(folds, classifier.name, TABLE)
    if since is None:  # each fold's rows written as they come: the whole history's are gigabytes at 500 tickers
        rows = warehouse.replace_tables_in_batches(batches)[TABLE]
    else:  # only the folds that hold the new sessions were fitted: their rows are the full run's
        new = pd.concat([batch[TABLE] for batch in batches])
        rows = warehouse.append_after(TABLE, new, since)
        context.log.info(f"incremental: {len(new)} probabilities after {since.date()}")
    diagnostics = folds.diagnostics()
    skill = diagnostics[diagnostics["diagnostic"].str.startswith("held_out_skill_")]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "new_rows": folds.rows,
            "fits": int(diagnostics["train_end"].nunique()) if len(diagnostics) else 0,
            "failed_fits": folds.failed,
            # log-loss skill over the base rate on the fits' held-out blocks, averaged over fits and targets
            "mean_held_out_skill": round(float(skill["value"].mean()), 5) if len(skill) else 0.0,
        }
    )


@dg.asset(
    key=["marts", "classifier_scores"],
    group_name="validation",
    pool="warehouse",
    kinds={"python", "duckdb"},
    deps=[dg.AssetKey(["marts", "class_probabilities"])],
    metadata={"dagster/column_schema": schemas.CLASSIFIER_SCORES},
    description="Out-of-sample scores of every classifier per target and horizon, every ticker pooled, against the "
    "base rate of each fit's training window: hit rate, Brier score, log loss and calibration error, with 95 % "
    "circular-block-bootstrap intervals of the differences (blocks of max(h, 21) sessions) and a verdict.",
)
def classifier_scores(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    groups = reads.scored_groups(warehouse)
    if not groups:
        raise ValueError("marts.class_probabilities has no realised probability to score")
    # a group at a time (each is scored on its own rows alone): the same scores as of every row at once
    scores = pd.concat(
        [score_classifiers(reads.realised_probabilities(warehouse, *group), draws=SCORE_DRAWS) for group in groups],
        ignore_index=True,
    )
    rows = warehouse.replace_table("marts.classifier_scores", scores)
    board = scores[["model", "target", "horizon", "hit_rate", "base_hit_rate", "log_loss", "base_log_loss", "verdict"]]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "scores": dg.MetadataValue.md(board.round(4).to_markdown(index=False)),
            "beats_base_rate": int((scores["verdict"] == "beats the base rate").sum()),
        }
    )
