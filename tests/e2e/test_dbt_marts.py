"""The dbt side of the end-to-end warehouse: a mart dbt builds on tables Python writes, and the documentation
site of every table."""

import json
import math

import numpy as np
import pandas as pd
import yaml
from numpy.testing import assert_allclose

from dagster_pmx.defs.transform.docs import build_docs
from dagster_pmx.lake import Lake
from tests.e2e.helpers import DBT_DIR, read

KEY = ["strategy", "breakdown", "period"]
#: The schemas the pipeline writes: every table in them is a dbt model or source.
SCHEMAS = ("raw", "staging", "intermediate", "ml", "marts")


def _period(returns: list[float]) -> dict:
    """Sessions, compounded return, annualised volatility and Sharpe (ddof 1, zero rate) and the max drawdown
    from the period's own start (the starting capital a peak), by hand."""
    n = len(returns)
    equity, peak, worst = 1.0, 1.0, 0.0
    for r in returns:
        equity *= 1.0 + r
        peak = max(peak, equity)
        worst = min(worst, equity / peak - 1.0)
    volatility = sharpe = math.nan
    if n > 1:
        mean = sum(returns) / n
        sd = math.sqrt(sum((r - mean) ** 2 for r in returns) / (n - 1))
        volatility = sd * math.sqrt(252)
        sharpe = mean / sd * math.sqrt(252) if sd > 0 else math.nan
    return {
        "sessions": n,
        "total_return": equity - 1.0,
        "volatility": volatility,
        "sharpe": sharpe,
        "max_drawdown": worst,
    }


def test_backtest_periods_break_the_daily_returns_down_by_year_regime_and_stress_window(full):
    daily = read(full, "select strategy, date, net_return from marts.backtest_daily order by strategy, date")
    probabilities = read(full, "select date, regime, probability from ml.regime_probabilities")
    best = probabilities.loc[probabilities.groupby("date")["probability"].idxmax()]
    regime = dict(zip(pd.DatetimeIndex(best["date"]), best["regime"], strict=True))
    windows = yaml.safe_load((DBT_DIR / "dbt_project.yml").read_text())["vars"]["stress_windows"]
    rows = []
    for strategy, g in daily.groupby("strategy"):
        dates, returns = pd.DatetimeIndex(g["date"]), g["net_return"].tolist()
        labels = {
            "year": [str(d.year) for d in dates],
            "regime": [f"regime {regime[d]}" if d in regime else None for d in dates],
            "stress": [
                next((w["name"] for w in windows if pd.Timestamp(w["start"]) <= d <= pd.Timestamp(w["end"])), None)
                for d in dates
            ],
        }
        for breakdown, label in labels.items():
            for period in sorted({x for x in label if x is not None}):
                x = [r for r, lab in zip(returns, label, strict=True) if lab == period]
                rows.append({"strategy": strategy, "breakdown": breakdown, "period": period, **_period(x)})
    expected = pd.DataFrame(rows).set_index(KEY).sort_index()
    actual = read(full, "select * from marts.backtest_periods").set_index(KEY).sort_index()
    assert list(actual.columns) == ["sessions", "total_return", "volatility", "sharpe", "max_drawdown"]
    assert actual.index.equals(expected.index)
    assert set(actual.index.get_level_values("breakdown")) == {"year", "regime", "stress"}
    assert (actual["sessions"] == expected["sessions"]).all()
    for column in ("total_return", "volatility", "sharpe", "max_drawdown"):
        assert_allclose(
            actual[column].astype(float), expected[column], rtol=0, atol=1e-12, equal_nan=True, err_msg=column
        )
    assert np.isfinite(actual["sharpe"]).mean() > 0.9


def test_the_docs_site_after_a_run_shows_every_table_with_the_columns_it_has(full, tmp_path):
    warehouse = full  # a DuckLake: dbt reads it beside any other reader
    page = build_docs(tmp_path / "docs", lake=Lake.at(warehouse), quiet=True)
    manifest = json.loads((page.parent / "manifest.json").read_text())
    catalog = json.loads((page.parent / "catalog.json").read_text())
    described = {**catalog["nodes"], **catalog["sources"]}
    tables = read(
        warehouse,
        f"select table_schema || '.' || table_name as t from information_schema.tables where table_schema in {SCHEMAS}",
    )["t"]
    in_catalog = {f"{e['metadata']['schema']}.{e['metadata']['name']}" for e in described.values()}
    assert set(tables) <= in_catalog, f"tables dbt's docs do not know: {sorted(set(tables) - in_catalog)}"
    assert len({t for t in in_catalog if t.startswith("marts.")}) >= 24
    documented = {**manifest["nodes"], **manifest["sources"]}
    for unique_id, entry in described.items():
        has = {c.lower() for c in entry["columns"]}
        says = {c.lower() for c in documented[unique_id]["columns"]}
        assert has == says, f"{unique_id}: undocumented {sorted(has - says)}, not there {sorted(says - has)}"
