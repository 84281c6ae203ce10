"""Checkpoints of the full build's walk-forward, so that a run cut short resumes where it stopped.

The walk-forward of a large universe runs for hours (docs/scaling.md). Each ticker batch and each pooled
model is kept on disk as it ends: its rows as the Parquet files the step replaces its tables from, and
what the step sums up from it (its last fits, its work, its importances) in a pickle beside them. A run
that dies half-way (a crash, a killed process, a machine taken back) leaves those batches behind, and the
next walk-forward of the *same* work reads them instead of fitting them again; the step's tables are
replaced only once every batch is there, in one transaction, as before, and the checkpoint is then
removed.

"The same work" is a fingerprint of what the rows depend on: the code of the models and of the
walk-forward, the libraries' versions, each model's settings, the walk-forward's configuration, the
first forecast date, the batch size, and the returns and features themselves (their values, not their
dates). A checkpoint whose fingerprint differs is never read; a change of code or data starts afresh.
"""

import hashlib
import importlib.metadata
import os
import pickle
import platform
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

import python_models
from dagster_pmx.staging import stage
from python_models.evaluation.panel import ModelStats, PanelRun
from python_models.evaluation.walk_forward import FoldFit

if TYPE_CHECKING:  # this module is imported by Dask workers, which need no Dagster
    from dagster_pmx.resources import Warehouse

_DEFS = Path(__file__).resolve().parents[1]
#: the source the rows depend on: the models and the walk-forward, this step's own code, the ticker batches'
#: layout (``ticker_batches``), the tables' columns and the way staged rows are written
_SOURCES = (
    Path(python_models.__file__).resolve().parent,
    Path(__file__).resolve().parent,
    _DEFS / "reads.py",
    _DEFS / "schemas.py",
    _DEFS.parent / "staging.py",
)
#: the libraries whose versions the rows depend on
_LIBRARIES = (
    "numpy",
    "pandas",
    "scipy",
    "statsmodels",
    "arch",
    "scikit-learn",
    "xgboost",
    "torch",
    "hmmlearn",
    "numba",
    "duckdb",
    "pyarrow",
)
_PART = "part.pkl"


def checkpoint_root(warehouse: "Warehouse") -> Path:
    """Where the walk-forward keeps its checkpoints: beside the warehouse's catalog file."""
    return warehouse.folder / "checkpoints" / "walk_forward"


def fingerprint(
    models: Sequence[Any],
    config: Any,
    start: Any,
    ticker_batch: int,
    returns: pd.DataFrame,
    features: pd.DataFrame | None,
) -> str:
    """The digest of what a walk-forward's rows depend on (see the module's docstring)."""
    digest = hashlib.sha256()
    for source in _SOURCES:
        for path in sorted(source.rglob("*.py")) if source.is_dir() else [source]:
            digest.update(str(path.relative_to(source.parent)).encode())
            digest.update(path.read_bytes())
    digest.update(f"{sys.version} {platform.machine()} {_devices()}".encode())
    for library in _LIBRARIES:
        try:
            digest.update(f"{library}={importlib.metadata.version(library)}".encode())
        except importlib.metadata.PackageNotFoundError:
            digest.update(f"{library}=none".encode())
    for model in models:
        digest.update(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    digest.update(repr((config, str(start), ticker_batch)).encode())
    for frame in (returns, features):
        if frame is None:
            digest.update(b"no frame")
            continue
        digest.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _devices() -> str:
    """Where the models compute: the SSA family on CuPy or NumPy, the nets on CUDA or the CPU."""
    from python_models.forecasters.array_module import gpu_module

    try:
        import torch

        nets = "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        nets = "no torch"
    return f"{gpu_module().__name__} {nets}"


class Checkpoint:
    """The batches of one walk-forward (one fingerprint) kept in ``root/<fingerprint>/<batch>/``.

    A batch's folder is written under another name and renamed when complete, so a folder that exists
    is whole: a run killed while writing one leaves only a partial folder, which is never read (and is
    removed with the checkpoint). The files are not synced to disk before the rename: after a power
    cut (not a killed process) a batch may be unreadable, and the run fails until the checkpoint is
    removed. Two runs of the same work at once write the same rows, and the second one to finish a batch
    keeps the first one's folder; but the first to finish the step removes the checkpoint, and the
    other then fails: run it again."""

    def __init__(self, root: Path, digest: str) -> None:
        self.folder = Path(root) / digest[:32]

    def done(self) -> list[str]:
        """The batches kept, by name."""
        if not self.folder.is_dir():
            return []
        return sorted(p.name for p in self.folder.iterdir() if (p / _PART).is_file() and ".partial-" not in p.name)

    def save(
        self, name: str, frames: Mapping[str, pd.DataFrame], part: Any, columns: Mapping[str, str] | None = None
    ) -> tuple[Any, dict[str, str | None], dict[str, pd.DataFrame]]:
        """Keep batch ``name``: its rows (``schema.table -> frame``, written as :func:`~dagster_pmx.staging.stage`
        writes them with ``columns``) and ``part``, what the step sums up from it; returns what :meth:`load`
        returns."""
        partial = self.folder / f"{name}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        paths, empty = stage(frames, partial, "rows", columns)
        with open(partial / _PART, "wb") as file:
            pickle.dump((part, {t: Path(p).name if p else None for t, p in paths.items()}, empty), file)
        try:
            partial.rename(self.folder / name)
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
            if not (self.folder / name / _PART).is_file():
                raise
            # another run of the same work kept it first (or a worker that died after keeping it): the same rows
        return self.load(name)

    def load(self, name: str) -> tuple[Any, dict[str, str | None], dict[str, pd.DataFrame]]:
        """Batch ``name``'s part, its files by table (None where it had no rows) and its tables' empty frames."""
        folder = self.folder / name
        with open(folder / _PART, "rb") as file:
            part, names, empty = pickle.load(file)  # noqa: S301 - written by this module, beside the warehouse
        return part, {t: str(folder / n) if n else None for t, n in names.items()}, empty

    def remove(self) -> None:
        """Drop the checkpoint (its tables are written)."""
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class BatchPart:
    """What one batch (a :class:`~python_models.evaluation.panel.PanelRun`) adds to the walk-forward's summary:
    all of it but its rows, kept with them in the checkpoint."""

    fits: dict[tuple[str, str], FoldFit]
    stats: dict[str, ModelStats]
    importances: pd.DataFrame | None
    place: int  # a pooled model's among the pooled models given (its importances are kept in that order)
    first_asof: pd.Timestamp | None
    last_asof: pd.Timestamp | None
    not_converged: int
    runs: int

    @classmethod
    def of(cls, run: PanelRun, place: int = 0) -> "BatchPart":
        frame = run.forecasts
        dated = len(frame) > 0
        return cls(
            fits=run.fits,
            stats=run.stats,
            importances=run.importances,
            place=place,
            first_asof=frame["asof_date"].min() if dated else None,
            last_asof=frame["asof_date"].max() if dated else None,
            not_converged=int((~frame.drop_duplicates(["model", "ticker", "train_end"])["converged"]).sum())
            if dated
            else 0,
            runs=run.runs,
        )


def keep_batch(
    checkpoint: Checkpoint, columns: Mapping[str, str], name: str, place: int, run: PanelRun
) -> tuple[BatchPart, dict[str, str | None], dict[str, pd.DataFrame]]:
    """Batch ``name``'s rows (``ml.base_forecasts``, ``ml.fit_diagnostics``) kept in ``checkpoint``, written with
    ``columns`` (:func:`~dagster_pmx.staging.stage`); what :meth:`Checkpoint.load` returns.

    Runs where the rows are: in the run's process for a ticker batch, and in the Dask worker that made them
    for a pooled model on a local cluster (it shares the disk), so that the run's process never holds them."""
    frames = {"ml.base_forecasts": run.forecasts, "ml.fit_diagnostics": run.diagnostics}
    return checkpoint.save(name, frames, BatchPart.of(run, place), columns)


def keep_pooled(
    checkpoint: Checkpoint, columns: Mapping[str, str], batches: Sequence[tuple[str, int]], j: int, run: PanelRun
) -> tuple[BatchPart, dict[str, str | None], dict[str, pd.DataFrame]]:
    """The ``j``-th pooled model's run kept as its batch, ``batches[j]`` (its name and its place among the
    pooled models), by :func:`keep_batch`: the ``then`` of :class:`~python_models.evaluation.panel.PooledRuns`."""
    name, place = batches[j]
    return keep_batch(checkpoint, columns, name, place, run)
