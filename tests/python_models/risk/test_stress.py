"""Scenario stress: each shock against a hand computation on seeded books, and the block bootstrap against a
loop that draws the same blocks."""

import numpy as np
import pandas as pd
import pytest

from python_models.portfolio.safe_sleeve import bond_price_change
from python_models.risk.stress import (
    MIN_BETA_SESSIONS,
    SHOCKS,
    Replay,
    block_bootstrap,
    rolling_betas,
    stress_books,
)

WINDOW = 100


def _market(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2007-01-01", periods=n)
    m = rng.standard_t(5, n) * 0.01
    stocks = np.column_stack([0.5 * m, 1.5 * m]) + rng.normal(0, 0.01, (n, 2))
    bond = -0.2 * m + rng.normal(0, 0.003, n)
    frame = pd.DataFrame(np.column_stack([stocks, bond, m]), index=dates, columns=["A", "B", "BOND", "SP"])
    frame.loc[: dates[150], "B"] = np.nan  # B lists later: no returns in the first windows
    return frame


def _hand_beta(returns: pd.DataFrame, asset: str, end: int, window: int = WINDOW) -> float:
    chunk = returns.iloc[end + 1 - window : end + 1][[asset, "SP"]].dropna()
    if len(chunk) < MIN_BETA_SESSIONS:
        return 1.0
    c = np.cov(chunk[asset], chunk["SP"], ddof=1)
    return float(c[0, 1] / c[1, 1])


def _hand_es(pnl: np.ndarray, level: float = 0.975) -> float:
    ordered = np.sort(pnl)
    position = (1 - level) * (len(pnl) - 1)
    lower = int(np.floor(position))
    q = ordered[lower] + (position - lower) * (ordered[lower + 1] - ordered[lower])
    return -float(np.mean([x for x in pnl if x <= q]))


def test_the_bond_shock_is_duration_and_convexity_in_closed_form():
    assert bond_price_change(0.02, 10.0) == pytest.approx(-0.2 + 0.02)
    assert bond_price_change(-0.02, 10.0) == pytest.approx(0.2 + 0.02)
    with pytest.raises(ValueError, match="duration"):
        bond_price_change(0.02, 0.0)


def test_rolling_betas_are_the_windows_covariance_ratios_by_a_hand_loop():
    market = _market()
    betas = rolling_betas(market, "SP", WINDOW)
    for end in (120, 180, 250, 599):
        for asset in ("A", "B", "BOND"):
            assert betas[asset].iloc[end] == pytest.approx(_hand_beta(market, asset, end), rel=1e-9), (asset, end)
    assert betas["B"].iloc[120] == 1.0  # fewer than MIN_BETA_SESSIONS returns: the market's beta
    assert betas["A"].iloc[599] == pytest.approx(0.5, abs=0.15) and betas["B"].iloc[599] == pytest.approx(1.5, abs=0.2)
    with pytest.raises(ValueError, match="benchmark"):
        rolling_betas(market, "NOPE", WINDOW)


def test_every_shock_of_a_book_against_a_hand_computation():
    market = _market()
    dates = market.index[[50, 200, 420, 599]]
    books = pd.DataFrame(
        {"A": [0.3, 0.2, 0.25, 0.1], "B": [np.nan, 0.3, 0.25, 0.4], "BOND": [0.4, 0.4, 0.3, 0.2], "CASH": 0.1},
        index=dates,
    )
    episode = Replay("planted", str(market.index[300].date()), str(market.index[304].date()))
    rows = stress_books(books, market, "SP", "BOND", duration=8.0, window=WINDOW, replays=[episode])
    assert list(rows["scenario"].unique()) == [s for s in SHOCKS if not s.startswith("replay")] + ["planted"]
    got = rows.set_index(["date", "scenario"])
    for i, date in enumerate(dates):
        end = market.index.get_loc(date)
        w = books.iloc[i].fillna(0.0)
        beta = {a: _hand_beta(market, a, end) for a in ("A", "B", "BOND")} | {"CASH": 0.0}
        assert got.loc[(date, "equity_down_20"), "loss"] == pytest.approx(0.2 * sum(w[a] * beta[a] for a in beta))
        assert got.loc[(date, "rates_up_200bp"), "loss"] == pytest.approx(-w["BOND"] * (-8 * 0.02 + 32 * 0.02**2))
        assert got.loc[(date, "rates_down_200bp"), "loss"] == pytest.approx(-w["BOND"] * (8 * 0.02 + 32 * 0.02**2))
        if end + 1 < WINDOW:
            assert np.isnan(got.loc[(date, "volatility_doubled"), "loss"])
        else:
            pnl = market.iloc[end + 1 - WINDOW : end + 1][["A", "B", "BOND"]].fillna(0.0).to_numpy() @ w[
                ["A", "B", "BOND"]
            ].to_numpy(dtype=float)
            doubled = pnl.mean() + 2 * (pnl - pnl.mean())
            assert got.loc[(date, "volatility_doubled"), "loss"] == pytest.approx(_hand_es(doubled), rel=1e-12)
            assert got.loc[(date, "volatility_doubled"), "es_now"] == pytest.approx(_hand_es(pnl), rel=1e-12)
        # the replay: only decisions at or after the episode's last session; every asset covered it
        replay = got.loc[(date, "planted")]
        if date < market.index[304]:
            assert np.isnan(replay["loss"])
        else:
            moves = (1 + market.iloc[300:305]).prod() - 1
            assert replay["loss"] == pytest.approx(-sum(w[a] * moves[a] for a in ("A", "B", "BOND")), rel=1e-12)
            assert replay["estimated_weight"] == 0.0


def test_an_asset_without_returns_in_a_replay_moves_by_its_beta_and_is_reported():
    market = _market()
    before_b = Replay("early", str(market.index[140].date()), str(market.index[141].date()))  # B not listed yet
    not_covered = Replay("1987", "1987-10-19", "1987-10-19")
    published = Replay("1987 published", "1987-10-19", "1987-10-19", market_move=-0.2)
    date = market.index[[599]]
    books = pd.DataFrame({"A": [0.3], "B": [0.5], "CASH": [0.2]}, index=date)
    replays = [before_b, not_covered, published]
    rows = stress_books(books, market, "SP", None, duration=8.0, window=WINDOW, replays=replays)
    early = rows.set_index("scenario").loc["early"]
    bench = (1 + market["SP"].iloc[140:142]).prod() - 1
    a = (1 + market["A"].iloc[140:142]).prod() - 1
    expected = -(0.3 * a + 0.5 * _hand_beta(market, "B", 599) * bench)
    assert early["loss"] == pytest.approx(expected, rel=1e-12) and early["estimated_weight"] == pytest.approx(0.5)
    assert np.isnan(rows.set_index("scenario").loc["1987", "loss"])  # the returns do not reach back to 1987
    # with the benchmark's published move, every invested asset moves by its beta (cash by nothing)
    moved = rows.set_index("scenario").loc["1987 published"]
    beta_a, beta_b = _hand_beta(market, "A", 599), _hand_beta(market, "B", 599)
    assert moved["loss"] == pytest.approx(0.2 * (0.3 * beta_a + 0.5 * beta_b), rel=1e-12)
    assert moved["estimated_weight"] == pytest.approx(0.8)
    assert (rows.set_index("scenario").loc[["rates_up_200bp", "rates_down_200bp"], "loss"] == 0).all()  # no bond


def test_the_block_bootstrap_draws_the_blocks_a_loop_draws():
    market = _market()
    book = pd.Series({"A": 0.4, "BOND": 0.3, "CASH": 0.2})
    out = block_bootstrap(book, market, horizons=(5, 40), paths=300, block=7, seed=3).set_index("horizon")
    daily = market[["A", "BOND"]].dropna().to_numpy() @ np.array([0.4, 0.3])
    rng = np.random.default_rng(3)
    starts = rng.integers(0, len(daily), size=(300, 6))  # ceil(40 / 7) blocks a path
    totals, deepest = {5: [], 40: []}, {5: [], 40: []}
    for p in range(300):
        path = [daily[(s + k) % len(daily)] for s in starts[p] for k in range(7)][:40]
        equity, peak, worst = 1.0, 1.0, 0.0
        for t, x in enumerate(path, start=1):
            equity *= 1 + x
            peak = max(peak, equity)
            worst = max(worst, 1 - equity / peak)
            if t in totals:
                totals[t].append(equity - 1)
                deepest[t].append(worst)
    for h in (5, 40):
        row = out.loc[h]
        assert row["mean_return"] == pytest.approx(np.mean(totals[h]), rel=1e-10)
        assert row["p05"] == pytest.approx(np.quantile(totals[h], 0.05), rel=1e-10)
        assert row["es_99"] == pytest.approx(_hand_es(np.array(totals[h]), 0.99), rel=1e-10)
        assert row["prob_drawdown_15"] == pytest.approx(np.mean(np.array(deepest[h]) >= 0.15))
        assert row["history_sessions"] == len(daily) and row["paths"] == 300


def test_the_block_bootstrap_of_a_steady_loss_is_certain():
    dates = pd.bdate_range("2010-01-01", periods=300)
    falling = pd.DataFrame({"X": -0.01}, index=dates)
    out = block_bootstrap(pd.Series({"X": 1.0}), falling, horizons=(10, 21), paths=200).set_index("horizon")
    assert out.loc[21, "p50"] == pytest.approx(0.99**21 - 1) and out.loc[21, "prob_drawdown_15"] == 1.0
    assert out.loc[10, "prob_drawdown_15"] == 0.0  # 1 - 0.99^10 = 9.6 %
    with pytest.raises(ValueError, match="paths"):
        block_bootstrap(pd.Series({"X": 1.0}), falling, paths=10)


def test_an_episode_the_returns_cover_only_in_part_is_not_replayed_and_the_benchmark_is_required():
    market = _market()
    books = pd.DataFrame({"A": [0.5]}, index=market.index[[599]])
    partial = Replay("partial", "2006-12-01", str(market.index[5].date()))  # the data starts on 2007-01-01
    rows = stress_books(books, market, "SP", None, duration=8.0, window=WINDOW, replays=[partial])
    assert np.isnan(rows.set_index("scenario").loc["partial", "loss"])
    with pytest.raises(ValueError, match="benchmark"):
        stress_books(books, market.drop(columns="SP"), "SP", None, duration=8.0, window=WINDOW)
    with pytest.raises(ValueError, match="window"):
        stress_books(books, market, "SP", None, duration=8.0, window=30)
