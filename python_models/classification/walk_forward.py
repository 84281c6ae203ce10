"""Walk-forward of a pooled classifier: the folds, purge and embargo of the forecasters.

The folds are laid on the panel's session calendar exactly as
:func:`python_models.evaluation.panel.run_pooled` lays a pooled forecaster's: each fit sees the
rows of its training window only, whose labels it may use where they are realised inside the
window (:func:`~python_models.classification.base.usable_labels`), and gives probabilities for the
origins of its test block from those origins' own features. A probability of origin ``t`` comes
from a fit that ended at least the gap (the longest horizon's purge plus the embargo) before ``t``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from python_models.classification.base import PROBABILITY_COLUMNS, PanelClassifier, validate_classifier_panel
from python_models.evaluation.walk_forward import Fold, WalkForwardConfig, diagnostics_frame, walk_forward_folds

#: Columns of :func:`run_classifier`'s probabilities.
WALK_FORWARD_COLUMNS = [*PROBABILITY_COLUMNS, "train_start", "train_end"]


@dataclass
class FoldProbabilities:
    """One fold of :func:`fold_probabilities`: its training window, and its fit's probabilities and
    diagnostics, or why the fit failed (``probabilities`` is then None)."""

    train_start: pd.Timestamp
    train_end: pd.Timestamp
    probabilities: pd.DataFrame | None
    diagnostics: dict[str, float]
    error: str | None = None


class FoldTally:
    """The probabilities of folds (:func:`fold_probabilities`) one at a time, counting as they pass the
    rows, the failed fits (each warned of) and every fit's diagnostics. Its folds are read once."""

    def __init__(self, folds: Iterator[FoldProbabilities]) -> None:
        self.folds = folds
        self.rows, self.failed = 0, 0
        self.fits: list[tuple[pd.Timestamp, pd.Timestamp, dict[str, float]]] = []
        self._read = False

    def probabilities(self) -> Iterator[pd.DataFrame]:
        """Each fold's probabilities whose fit succeeded, in fold order."""
        if self._read:
            raise RuntimeError("the folds were read already: a FoldTally is read once")
        self._read = True
        for fold in self.folds:
            if fold.probabilities is None:
                self.failed += 1
                warnings.warn(fold.error or "a fit failed", RuntimeWarning, stacklevel=2)
                continue
            self.fits.append((fold.train_start, fold.train_end, fold.diagnostics))
            self.rows += len(fold.probabilities)
            yield fold.probabilities

    def diagnostics(self) -> pd.DataFrame:
        """Every fit's diagnostics so far (:func:`~python_models.evaluation.walk_forward.diagnostics_frame`)."""
        return diagnostics_frame(self.fits)


def fold_probabilities(
    classifier: PanelClassifier,
    panel: pd.DataFrame,
    config: WalkForwardConfig,
    start: pd.Timestamp | str | None = None,
    since: pd.Timestamp | None = None,
    calendar: pd.DatetimeIndex | None = None,
) -> Iterator[FoldProbabilities]:
    """The folds of :func:`run_classifier` one at a time, each with its probabilities (the columns of
    :data:`WALK_FORWARD_COLUMNS`, ordered by ticker, date, target and horizon), so that a caller may
    store each fold's rows as they come instead of holding every fold's (gigabytes at 500 tickers).
    The parameters are :func:`run_classifier`'s; a fold whose fit fails has no probabilities and says
    why (:class:`FoldTally` warns of it)."""
    p = validate_classifier_panel(panel, classifier.horizons, classifier.targets)
    dates = pd.DatetimeIndex(p["date"].unique()) if calendar is None else pd.DatetimeIndex(calendar)
    first_new = 0 if since is None else int(dates.searchsorted(pd.Timestamp(since), side="right"))
    day = p["date"].to_numpy()
    for fold in classifier_folds(classifier, dates, config, start):
        if fold.test_end <= first_new:
            continue
        lo, hi = dates[fold.train_start], dates[fold.train_end - 1]
        if len(day) and day[0] > lo.to_datetime64():
            raise ValueError(
                f"the panel starts at {pd.Timestamp(day[0]).date()}, after the fold's window ({lo.date()})"
            )
        train = p.iloc[day.searchsorted(lo.to_datetime64(), "left") : day.searchsorted(hi.to_datetime64(), "right")]
        try:
            fit = classifier.fit(train)
        except (ValueError, np.linalg.LinAlgError) as exc:
            failure = f"{classifier.name}: fit on {lo.date()}..{hi.date()} failed ({exc})"
            yield FoldProbabilities(lo, hi, None, {}, failure)
            continue
        test_lo = dates[max(fold.test_start, first_new)]
        test_hi = dates[fold.test_end - 1]
        rows = p.iloc[
            day.searchsorted(test_lo.to_datetime64(), "left") : day.searchsorted(test_hi.to_datetime64(), "right")
        ]
        frame = fit.predict(rows)
        frame["train_start"], frame["train_end"] = lo, hi
        yield FoldProbabilities(lo, hi, frame, fit.diagnostics)


def run_classifier(
    classifier: PanelClassifier,
    panel: pd.DataFrame,
    config: WalkForwardConfig,
    start: pd.Timestamp | str | None = None,
    since: pd.Timestamp | None = None,
    calendar: pd.DatetimeIndex | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Out-of-sample probabilities of ``classifier`` on every ticker of ``panel``.

    Parameters
    ----------
    classifier : PanelClassifier
        Refitted every ``classifier.refit_every`` sessions (else ``config.refit_every``).
    panel : pandas.DataFrame
        ``ticker``, ``date``, the feature columns and the label columns of the classifier's targets
        and horizons (one row per ticker and session).
    config : WalkForwardConfig
        Training window, purge and embargo (its horizons are not used: the classifier's are).
    start : date-like, optional
        First origin wanted.
    since : date-like, optional
        Only the origins after it, from the folds that hold them (the rows a full run gives them):
        the daily refresh fits one fold, not the history.
    calendar : pandas.DatetimeIndex, optional
        Every session of the whole history, on which the folds are laid (default: the panel's own
        dates). With it, ``panel`` may begin later, at :func:`first_training_session`: the folds
        are the full history's, and only the rows they read need be passed.

    Returns
    -------
    probabilities : pandas.DataFrame
        :data:`WALK_FORWARD_COLUMNS`, ordered by ticker, date, target and horizon; ``attrs["failed_fits"]``
        counts the fits that failed.
    diagnostics : pandas.DataFrame
        Every fit's diagnostics (``train_start``, ``train_end``, ``diagnostic``, ``value``).

    See Also
    --------
    fold_probabilities : the same folds one at a time.
    """
    tally = FoldTally(fold_probabilities(classifier, panel, config, start, since, calendar))
    frames = list(tally.probabilities())
    out = (
        pd.concat(frames, ignore_index=True).sort_values(["ticker", "date", "target", "horizon"], ignore_index=True)
        if frames
        else pd.DataFrame(columns=WALK_FORWARD_COLUMNS)
    )
    out.attrs["failed_fits"] = tally.failed
    return out, tally.diagnostics()


def classifier_folds(
    classifier: PanelClassifier,
    calendar: pd.DatetimeIndex,
    config: WalkForwardConfig,
    start: pd.Timestamp | str | None = None,
) -> list[Fold]:
    """The folds of :func:`run_classifier` on ``calendar`` (the classifier's horizons and cadence)."""
    config = replace(config, horizons=classifier.horizons)
    if classifier.refit_every:
        config = replace(config, refit_every=classifier.refit_every)
    first = 0 if start is None else int(calendar.searchsorted(pd.Timestamp(start)))
    return list(walk_forward_folds(len(calendar), first, config))


def first_training_session(
    classifier: PanelClassifier,
    calendar: pd.DatetimeIndex,
    config: WalkForwardConfig,
    since: pd.Timestamp,
    start: pd.Timestamp | str | None = None,
) -> pd.Timestamp | None:
    """The first session :func:`run_classifier` reads with ``since``: the training window's start of
    the first fold that holds an origin after it (None when no fold does)."""
    first_new = int(calendar.searchsorted(pd.Timestamp(since), side="right"))
    for fold in classifier_folds(classifier, calendar, config, start):
        if fold.test_end > first_new:
            return calendar[fold.train_start]
    return None
