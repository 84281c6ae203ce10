"""Known-answer series: the statistical features on seeded synthetic prices."""

import numpy as np
import pandas as pd
import pytest

from dagster_pmx.resources import PmxSettings
from tests.e2e.helpers import build_features, read

N = 1500


def _prices(returns: np.ndarray) -> pd.DataFrame:
    dates = pd.bdate_range("2010-01-04", periods=len(returns))
    return pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "close": 100 * np.exp(np.cumsum(returns))})


def _ar1(phi: float, rng) -> np.ndarray:
    e = rng.normal(0, 0.01, N)
    r = np.zeros(N)
    for t in range(1, N):
        r[t] = phi * r[t - 1] + e[t]
    return r


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("known")
    folder = tmp / "csv"
    folder.mkdir()
    rng = np.random.default_rng(42)
    series = {f"RW{i}": rng.normal(0, 0.01, N) for i in range(4)}
    series["TREND"] = _ar1(0.3, rng)
    series["REVERT"] = _ar1(-0.3, rng)
    for name, r in series.items():
        _prices(r).to_csv(folder / f"{name}.csv", index=False)
    path = tmp / "pmx.ducklake"
    settings = PmxSettings(source="csv", csv_dir=str(folder), benchmark="RW0", start_date="2010-01-01")
    assert build_features(path, settings).success
    return read(path, "select * from marts.features")


def test_random_walk_has_hurst_one_half_and_unit_variance_ratio(synthetic):
    rw = synthetic[synthetic.ticker.str.startswith("RW")]
    assert abs(rw["hurst_100"].mean() - 0.5) < 0.03
    assert abs(rw["variance_ratio_10"].mean() - 1) < 0.05
    # About standard normal under the null; overlapping windows make the sample mean noisy.
    z = rw["variance_ratio_z_2"].dropna()
    assert abs(z.mean()) < 0.75 and 0.6 < z.std() < 1.5 and (z.abs() > 1.96).mean() < 0.15


def test_persistent_and_mean_reverting_series_are_told_apart(synthetic):
    by = synthetic.groupby("ticker")[["hurst_100", "variance_ratio_2", "variance_ratio_z_2", "autocorr_1_63"]].mean()
    assert by.loc["TREND", "hurst_100"] > 0.55 and by.loc["REVERT", "hurst_100"] < 0.45
    # VR(2) is 1 + the lag-1 autocorrelation: about 1.3 and 0.7 here.
    assert (
        abs(by.loc["TREND", "variance_ratio_2"] - 1.3) < 0.07 and abs(by.loc["REVERT", "variance_ratio_2"] - 0.7) < 0.07
    )
    assert by.loc["TREND", "variance_ratio_z_2"] > 3 and by.loc["REVERT", "variance_ratio_z_2"] < -3
    assert abs(by.loc["TREND", "autocorr_1_63"] - 0.3) < 0.05
