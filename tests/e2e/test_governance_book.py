"""Governance judges each model on the book it would trade: its evidence strategies are the models' own
books as ``marts.backtest_daily`` values them (execution, costs, cash, sizing), session for session."""

import numpy as np
import pandas as pd

from dagster_pmx.defs.governance.assets import _Forecasts, evidence_strategies, governance_policy
from dagster_pmx.lake import Lake
from dagster_pmx.resources import PmxSettings, Warehouse
from tests.e2e.helpers import SLICE, read


def test_the_evidence_of_every_model_is_its_book_in_the_backtest_marts(full, tmp_path):
    path = tmp_path / "pmx.ducklake"
    Lake.at(full).copy_to(path)  # the shared build is only read; the reads here go through a run's resource
    settings = PmxSettings(**SLICE)
    policy = governance_policy(settings)
    forecasts = _Forecasts.streamed(Warehouse(path=str(path)), policy, since=None)
    evidence = evidence_strategies(Warehouse(path=str(path)), settings, forecasts, since=None)
    daily = read(full, "select strategy, date, net_return from marts.backtest_daily")
    daily["date"] = pd.to_datetime(daily["date"])
    assert len(evidence.columns) >= 8 and set(evidence.columns) <= set(daily["strategy"])
    for model in evidence.columns:
        own = evidence[model].dropna()
        traded = daily[daily["strategy"] == model].set_index("date")["net_return"]
        assert len(own) > 500 and own.index.isin(traded.index).all(), model
        # the same net return every session: a different execution, cost or sizing would move it
        np.testing.assert_array_equal(own.to_numpy(), traded.loc[own.index].to_numpy(), err_msg=model)
        assert (traded.loc[own.index] != 0).mean() > 0.5, model  # books that trade, not two empty ones
