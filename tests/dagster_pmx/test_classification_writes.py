"""The classifier's probabilities written a fold at a time: the rows of the whole walk-forward, none lost or
repeated, the failed fits counted and every fit's diagnostics kept."""

import numpy as np
import pandas as pd
import pytest

from dagster_pmx.defs.classification.assets import STORED_COLUMNS, stored_batches
from dagster_pmx.resources import Warehouse
from python_models.classification.logistic import PooledLogistic
from python_models.classification.walk_forward import FoldTally, classifier_folds, fold_probabilities, run_classifier
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
    with pytest.warns(RuntimeWarning, match="planted failure"):
        whole, diagnostics = run_classifier(model, panel, config())
    assert whole.attrs["failed_fits"] == 1 and second_fit_end not in set(diagnostics["train_end"])

    folds = FoldTally(fold_probabilities(model, panel, config()))
    warehouse = Warehouse(path=str(tmp_path / "pmx.ducklake"))
    with pytest.warns(RuntimeWarning, match="planted failure"):
        rows = warehouse.replace_tables_in_batches(stored_batches(folds, "logistic", TABLE))[TABLE]

    assert rows == folds.rows == len(whole) and folds.failed == 1
    stored = warehouse.query(ORDER)
    pd.testing.assert_frame_equal(stored, whole.assign(model="logistic")[STORED_COLUMNS], check_dtype=False)
    assert not stored.duplicated(["ticker", "date", "target", "horizon"]).any()
    # independently of the tally: every origin of the folds' test blocks but the failed fold's, for every
    # ticker, target and horizon
    calendar = pd.DatetimeIndex(panel["date"].unique())
    layout = classifier_folds(model, calendar, config())
    failed = next(f for f in layout if calendar[f.train_end - 1] == second_fit_end)
    origins = calendar[layout[0].test_start :].difference(calendar[failed.test_start : failed.test_end])
    assert set(stored["date"]) == set(origins)
    assert len(stored) == len(origins) * panel["ticker"].nunique() * 2 * len(HORIZONS)
    pd.testing.assert_frame_equal(folds.diagnostics(), diagnostics)
    with pytest.raises(RuntimeError, match="read once"):  # a second read would find the folds spent
        next(folds.probabilities())


def test_a_walk_forward_whose_every_fit_fails_leaves_the_table_with_its_columns_and_no_rows(tmp_path):
    panel = labelled_panel(sessions=700)
    model = FailingFits(set(pd.DatetimeIndex(panel["date"].unique())), horizons=HORIZONS)
    folds = FoldTally(fold_probabilities(model, panel, config()))
    warehouse = Warehouse(path=str(tmp_path / "pmx.ducklake"))
    with pytest.warns(RuntimeWarning, match="planted failure"):
        assert warehouse.replace_tables_in_batches(stored_batches(folds, "logistic", TABLE))[TABLE] == 0
    assert folds.failed > 0 and folds.rows == 0 and not folds.fits
    assert list(warehouse.query(ORDER).columns) == STORED_COLUMNS
    assert np.isnan(folds.diagnostics()["value"].mean())
