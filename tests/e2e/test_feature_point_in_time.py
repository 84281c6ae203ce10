"""Point-in-time: the feature and target build truncated at several dates agrees with the full build."""

import numpy as np
import pandas as pd
import pytest

from dagster_pmx.resources import PmxSettings
from tests.e2e.helpers import SLICE, build_features, read, without_stamps

CUTS = ["2007-03-15", "2009-10-30", "2012-06-29"]
HORIZONS = (1, 5, 21, 63)


@pytest.mark.parametrize("cut", [pytest.param(c, marks=pytest.mark.slow) if c != "2009-10-30" else c for c in CUTS])
def test_features_and_targets_up_to_the_cut_are_identical(full, tmp_path, cut):
    path = tmp_path / "cut.ducklake"
    assert build_features(path, PmxSettings(**{**SLICE, "end_date": cut})).success
    a = without_stamps(read(full, f"select * from marts.features where date <= '{cut}' order by ticker, date"))
    b = without_stamps(read(path, "select * from marts.features order by ticker, date"))
    assert len(a) == len(b) > 0
    # Cross-sectional ranks compare stocks on the same date, so they too may use only that date.
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-10, atol=1e-12)
    ta = without_stamps(read(full, f"select * from marts.targets where date <= '{cut}' order by ticker, date"))
    tb = without_stamps(read(path, "select * from marts.targets order by ticker, date"))
    dates = np.sort(tb["date"].unique())
    for h in HORIZONS:
        # A target dated <= T - h spans sessions up to T: the truncated build must compute it, identically.
        last = dates[-h - 1]
        cols = [c for c in tb.columns if c.endswith(f"_{h}d")]
        known = tb["date"] <= last
        assert tb.loc[known, f"fwd_return_{h}d"].notna().all()
        pd.testing.assert_frame_equal(
            ta.loc[known, cols].reset_index(drop=True),
            tb.loc[known, cols].reset_index(drop=True),
            rtol=1e-12,
            check_dtype=False,  # nullable ints where a column holds NULLs
        )
        assert tb.loc[~known, f"fwd_return_{h}d"].isna().all()
