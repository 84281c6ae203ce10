"""hmmlearn's EM reports ("Model is not converging") reach the run's log, never the terminal."""

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from python_models.evaluation.panel import run_panel
from python_models.evaluation.walk_forward import WalkForwardConfig
from python_models.forecasters.hmm import GaussianHmm

REPO = Path(__file__).resolve().parents[3]


def not_converging(extra: int = 0) -> pd.Series:
    """300 Student-t(3) returns on which EM takes a step down in likelihood (hmmlearn then logs a
    warning), and ``extra`` more after them."""
    values = np.random.default_rng(16).standard_t(3, 300) * 0.01
    values = np.concatenate([values, np.random.default_rng(1).standard_t(3, extra) * 0.01])
    return pd.Series(values, index=pd.bdate_range("2020-01-01", periods=len(values)))


def test_a_fit_that_does_not_converge_logs_under_the_hmm_module_and_prints_nothing(capfd, caplog):
    caplog.set_level(logging.INFO, logger="python_models")
    GaussianHmm().fit(not_converging())
    ours = [r for r in caplog.records if r.name == "python_models.forecasters.hmm"]
    assert ours and all(r.levelno == logging.INFO for r in ours)
    assert "Model is not converging" in ours[0].getMessage() and "2020-01-01" in ours[0].getMessage()
    # hmmlearn's own record never reaches a handler (without one, Python's last resort prints it on stderr)
    assert not [r for r in caplog.records if r.name.startswith("hmmlearn")]
    assert capfd.readouterr().err == ""


def test_a_process_without_logging_set_up_prints_nothing():
    # as `make run`'s worker processes are: no handler anywhere, so a warning would go to the terminal
    code = (
        "from python_models.forecasters.hmm import GaussianHmm\n"
        "from tests.python_models.forecasters.test_hmm_logs import not_converging\n"
        "GaussianHmm().fit(not_converging())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert done.stderr == "" and done.stdout == ""


def test_worker_processes_hand_their_records_to_the_parent(caplog):
    caplog.set_level(logging.INFO, logger="python_models")
    returns = not_converging(extra=10)
    long = pd.concat(
        [pd.DataFrame({"ticker": t, "date": returns.index, "log_return": returns.to_numpy()}) for t in ("A", "B")]
    )
    # one fold per ticker, fitted on exactly the 300 returns above: each worker's EM logs once
    config = WalkForwardConfig(horizons=(1,), train_window=300, embargo=0)
    run = run_panel([GaussianHmm()], long, config, workers=2)
    assert set(run.forecasts["ticker"]) == {"A", "B"}
    relayed = [r for r in caplog.records if r.name == "python_models.forecasters.hmm"]
    assert len(relayed) >= 2 and all("Model is not converging" in r.getMessage() for r in relayed)
