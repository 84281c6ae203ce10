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
    FoldProbabilities,
    first_training_session,
    fold_probabilities,
)
from python_models.evaluation.walk_forward import diagnostics_frame

#: Bootstrap draws of the scores' intervals.
SCORE_DRAWS = 1000


class FoldTally:
    """A classifier's folds (:func:`fold_probabilities`) as batches of ``ml.class_probabilities`` rows, counting
    as they pass the rows, the fits that failed and every fit's diagnostics."""

    def __init__(self, folds: Iterator[FoldProbabilities], model: str) -> None:
        self.folds, self.model = folds, model
        self.rows, self.failed = 0, 0
        self.diagnostics: list[tuple[pd.Timestamp, pd.Timestamp, dict[str, float]]] = []

    def batches(self, table: str) -> Iterator[dict[str, pd.DataFrame]]:
        """``{table: rows}`` of each fold whose fit succeeded; one without rows when none did (the
        table keeps its columns)."""
        for fold in self.folds:
            if fold.probabilities is None:
                self.failed += 1
                continue
            self.diagnostics.append((fold.train_start, fold.train_end, fold.diagnostics))
            self.rows += len(fold.probabilities)
            yield {table: fold.probabilities.assign(model=self.model)[["model", *WALK_FORWARD_COLUMNS]]}
        if not self.diagnostics:
            yield {table: pd.DataFrame(columns=["model", *WALK_FORWARD_COLUMNS])}


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
    extend = config.mode == "incremental" and warehouse.has("ml.class_probabilities")
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
        fold_probabilities(classifier, panel, wf, start=settings.forecast_start, since=since, calendar=calendar),
        classifier.name,
    )
    if since is None:  # each fold's rows written as they come: the whole history's are gigabytes at 500 tickers
        rows = warehouse.replace_tables_in_batches(folds.batches("ml.class_probabilities"))["ml.class_probabilities"]
    else:  # only the folds that hold the new sessions were fitted: their rows are the full run's
        new = pd.concat([batch["ml.class_probabilities"] for batch in folds.batches("ml.class_probabilities")])
        rows = warehouse.append_after("ml.class_probabilities", new, since)
        context.log.info(f"incremental: {len(new)} probabilities after {since.date()}")
    diagnostics = diagnostics_frame(folds.diagnostics)
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
