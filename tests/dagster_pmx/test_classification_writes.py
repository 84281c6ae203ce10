"""The classifier's probabilities written a fold at a time: the rows of the whole walk-forward, none lost or
repeated, the failed fits counted and every fit's diagnostics kept."""

import numpy as np
import pandas as pd

from dagster_pmx.defs.classification.assets import FoldTally
from dagster_pmx.resources import Warehouse
from python_models.classification.logistic import PooledLogistic
from python_models.classification.walk_forward import WALK_FORWARD_COLUMNS, fold_probabilities, run_classifier
from python_models.evaluation.walk_forward import diagnostics_frame
from tests.python_models.classification.test_classifiers import HORIZONS, config, labelled_panel

TABLE = "ml.class_probabilities"
ORDER = f"select * from {TABLE} order by ticker, date, target, horizon"


class FailingFits(PooledLogistic):
    """The pooled logistic regression whose fits of the training windows ending in ``failing`` raise."""

    def __init__(self, failing: set[pd.Timestamp], **kwargs) -> None:
        super().__init__(**kwargs)
        self.failing = failing

    def fit(self, panel: pd.DataFrame):
        if panel["date"].max() in self.failing:
            raise ValueError("planted failure")
        return super().fit(panel)


def test_the_folds_written_as_they_come_are_the_whole_walk_forwards_rows(tmp_path):
    panel = labelled_panel(sessions=700)
    whole, diagnostics = run_classifier(FailingFits(set(), horizons=HORIZONS), panel, config())
    second_fit_end = diagnostics["train_end"].drop_duplicates().iloc[1]
    model = FailingFits({second_fit_end}, horizons=HORIZONS)
    whole, diagnostics = run_classifier(model, panel, config())
    assert whole.attrs["failed_fits"] == 1 and second_fit_end not in set(diagnostics["train_end"])

    folds = FoldTally(fold_probabilities(model, panel, config()), "logistic")
    warehouse = Warehouse(path=str(tmp_path / "pmx.ducklake"))
    rows = warehouse.replace_tables_in_batches(folds.batches(TABLE))[TABLE]

    assert rows == folds.rows == len(whole) and folds.failed == 1
    stored = warehouse.query(ORDER)
    expected = whole.assign(model="logistic")[["model", *WALK_FORWARD_COLUMNS]]
    pd.testing.assert_frame_equal(stored, expected, check_dtype=False)
    assert not stored.duplicated(["ticker", "date", "target", "horizon"]).any()
    pd.testing.assert_frame_equal(diagnostics_frame(folds.diagnostics), diagnostics)


def test_a_walk_forward_whose_every_fit_fails_leaves_the_table_with_its_columns_and_no_rows(tmp_path):
    panel = labelled_panel(sessions=700)
    model = FailingFits(set(pd.DatetimeIndex(panel["date"].unique())), horizons=HORIZONS)
    folds = FoldTally(fold_probabilities(model, panel, config()), "logistic")
    warehouse = Warehouse(path=str(tmp_path / "pmx.ducklake"))
    assert warehouse.replace_tables_in_batches(folds.batches(TABLE))[TABLE] == 0
    assert folds.failed > 0 and folds.rows == 0 and not folds.diagnostics
    assert list(warehouse.query(ORDER).columns) == ["model", *WALK_FORWARD_COLUMNS]
    assert np.isnan(diagnostics_frame(folds.diagnostics)["value"].mean())
