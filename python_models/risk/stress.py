"""Scenario stress of a strategy's books: hypothetical shocks applied to the positions held at each
decision, and a block-bootstrap Monte Carlo of the current book's next sessions.

Conventions as :mod:`.var`: a book is weights by asset, decided at a close (the rest is cash, which
neither gains nor loses in a shock, as does an asset the returns have no column for); returns are
simple daily returns; a **loss** is a positive fraction of the book (a 3 % fall is 0.03, a gain is
negative). Every shock of a decision is valued with what was known at its close: the ``window``
sessions of returns up to and including it, and a replayed episode only once it has happened
(earlier decisions get no replay: it would be a look ahead).

Shocks (:data:`SHOCKS`):

* ``equity_down_20``: the benchmark falls 20 % at once and every asset moves by its expected return
  given that move under the window's covariance (a joint normal's conditional mean, means left out):
  ``beta_i * (-20 %)`` with ``beta_i = cov(r_i, r_m) / var(r_m)``, the bond sleeve by its own beta. An
  asset with fewer than :data:`MIN_BETA_SESSIONS` returns in the window gets a beta of 1 (the market's).
* ``volatility_doubled``: the one-session ES at 97.5 % of the book revalued on the window's returns
  with every session's deviation from the window's mean doubled (twice the volatility, the same
  correlations and tails); beside it, the same ES at today's volatility (``es_now``), so that the two
  read as a pair.
* ``rates_up_200bp`` and ``rates_down_200bp``: the bond sleeve's yield moves 2 percentage points at
  once, ``-D dy + C dy^2 / 2`` with the bond proxy's duration ``D`` and convexity ``C = D^2``
  (:func:`python_models.portfolio.safe_sleeve.bond_price_change`, the proxy's own); the stocks do not move.
* replays (:data:`REPLAYS`): each asset's returns over a historical episode, compounded, applied to
  the book held through it: 19 October 1987; 15 October 2008, the S&P 500's worst session of 2008;
  and the 20 sessions from Lehman's filing, 15 September to 10 October 2008. An asset without a
  return on one of the episode's sessions (not listed yet) gets ``beta_i`` times the benchmark's
  return over the episode, and the weight so estimated is reported (``estimated_weight``). Where the
  returns do not cover the episode at all (the default data starts in 1990), an episode with a
  published benchmark move (1987: the S&P 500's -20.47 %) moves every asset by its beta times it, all
  of the invested weight estimated; others get no replay.

The Monte Carlo (:func:`block_bootstrap`) resamples whole sessions of the assets' returns (every asset
on the same session, so their correlation is kept) in blocks of consecutive sessions (the volatility
clusters within a block), from the sessions on which every asset of the book has a return, up to the
book's close; the book is held at its weights (rebalanced daily) for 21 and 252 sessions: quantiles of
its return, VaR and ES, and the probability that its drawdown from the running peak reaches 15 %.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from python_models.backtest.performance import drawdown_path
from python_models.portfolio.risk_limits import EsLimit, book_scenarios
from python_models.portfolio.safe_sleeve import bond_price_change
from python_models.resampling import circular_block_indices
from python_models.risk.var import tail_risk

#: Returns a window needs for an asset's own beta; fewer: a beta of 1.
MIN_BETA_SESSIONS = 60
#: The ES level of ``volatility_doubled``: the ES limit's default (the stress marts do not follow PMX_ES_LEVEL).
ES_LEVEL = EsLimit.level
#: The hypothetical moves.
EQUITY_MOVE = -0.20
RATE_MOVE = 0.02


@dataclass(frozen=True)
class Replay:
    """A historical episode: its sessions ``first`` to ``last`` (dates), inclusive. ``market_move``, where
    given, is the benchmark's published return over the episode, used when the returns do not cover it."""

    name: str
    first: str
    last: str
    market_move: float | None = None


REPLAYS: tuple[Replay, ...] = (
    # the S&P 500 closed at 224.84 on 19 October 1987, from 282.70 (-20.47 %): the default data starts in 1990
    Replay("replay_1987_10_19", "1987-10-19", "1987-10-19", market_move=224.84 / 282.70 - 1.0),
    Replay("replay_2008_10_15", "2008-10-15", "2008-10-15"),
    Replay("replay_lehman_2008", "2008-09-15", "2008-10-10"),
)
#: The hypothetical shocks; then the replays.
HYPOTHETICAL: tuple[str, ...] = ("equity_down_20", "volatility_doubled", "rates_up_200bp", "rates_down_200bp")
#: Every shock of the default build, in the order the marts list them.
SHOCKS: tuple[str, ...] = (*HYPOTHETICAL, *(r.name for r in REPLAYS))
#: Columns of :func:`stress_books`'s rows.
STRESS_COLUMNS = ["date", "scenario", "loss", "es_now", "estimated_weight"]


def rolling_betas(returns: pd.DataFrame, market: str, window: int) -> pd.DataFrame:
    """Each asset's beta to ``market`` over the ``window`` sessions up to each session (pairs where both
    have a return; 1 where fewer than :data:`MIN_BETA_SESSIONS` pairs)."""
    if market not in returns.columns:
        raise ValueError(f"the returns have no column for the benchmark {market!r}")
    m = returns[market]
    both = returns.notna() & m.notna().to_numpy()[:, None]
    x = returns.where(both)
    mm = pd.DataFrame({c: m for c in returns.columns}, index=returns.index).where(both)
    n = both.astype(float).rolling(window, min_periods=1).sum()
    sx, sm = x.rolling(window, min_periods=1).sum(), mm.rolling(window, min_periods=1).sum()
    sxm, smm = (x * mm).rolling(window, min_periods=1).sum(), (mm * mm).rolling(window, min_periods=1).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxm - sx * sm / n
        var = smm - sm * sm / n
        beta = cov / var
    return beta.where((n >= MIN_BETA_SESSIONS) & (var > 0), 1.0)


def stress_books(
    books: pd.DataFrame,
    returns: pd.DataFrame,
    market: str,
    bond: str | None,
    duration: float,
    window: int = 252,
    replays: Sequence[Replay] = REPLAYS,
) -> pd.DataFrame:
    """Every shock of :data:`SHOCKS` applied to every book (see the module docstring).

    Parameters
    ----------
    books : DataFrame
        Decisions of one strategy: dates (closes) by assets, weights (NaN: not held).
    returns : DataFrame
        Daily simple returns by session and asset, the benchmark ``market`` among them, from at least
        ``window`` sessions before the first decision (and the replayed episodes, for the replays).
    market : str
        The benchmark's column.
    bond : str or None
        The bond sleeve's column (None: no rate shocks, a loss of 0).
    duration : float
        The bond proxy's modified duration.
    window : int
        Sessions of returns behind a decision's betas and its ``volatility_doubled``.

    Returns
    -------
    DataFrame
        :data:`STRESS_COLUMNS`, one row per decision and shock, in date order, then the hypothetical
        shocks' and the replays'.
        ``loss`` is NaN where a shock cannot be valued: a decision with fewer than ``window`` sessions
        behind it (``volatility_doubled``), or before a replayed episode ended, or an episode the
        returns do not cover.
    """
    if books.empty:
        return pd.DataFrame(columns=STRESS_COLUMNS)
    if window < MIN_BETA_SESSIONS:
        raise ValueError(f"window must be at least {MIN_BETA_SESSIONS} sessions (a beta's), got {window}")
    if market not in returns.columns:
        raise ValueError(f"the returns have no column for the benchmark {market!r}")
    assets = list(books.columns)
    cash = [a for a in assets if a not in returns.columns]
    r = returns.reindex(columns=sorted({*assets, market}))
    r[cash] = 0.0  # cash: no return, and a beta of 0 (below)
    ends = r.index.get_indexer(books.index, method="pad")  # the decision's close, or the session before
    if (ends < 0).any():
        raise ValueError(f"decisions before the first session of returns: {list(books.index[ends < 0])[:3]}")
    w = books.fillna(0.0).to_numpy(dtype=float)
    betas = rolling_betas(r, market, window).reindex(columns=assets)
    betas[cash] = 0.0
    betas = betas.to_numpy(dtype=float)[ends]
    shocks: dict[str, np.ndarray] = {"equity_down_20": -np.einsum("dk,dk->d", w, betas) * EQUITY_MOVE}
    # the doubled volatility: every decision's book revalued on its window, deviations from the mean doubled
    full = ends + 1 >= window
    doubled, now = np.full(len(w), np.nan), np.full(len(w), np.nan)
    if full.any():
        values = r.reindex(columns=assets).fillna(0.0).to_numpy(dtype=float)
        pnl = book_scenarios(values, ends[full], w[full], window)
        mean = pnl.mean(axis=1, keepdims=True)
        now[full] = tail_risk(pnl, ES_LEVEL)[1]
        doubled[full] = tail_risk(mean + 2.0 * (pnl - mean), ES_LEVEL)[1]
    shocks["volatility_doubled"] = doubled
    held_bond = w[:, assets.index(bond)] if bond is not None and bond in assets else np.zeros(len(w))
    shocks["rates_up_200bp"] = -held_bond * bond_price_change(RATE_MOVE, duration) + 0.0  # + 0.0: no loss of -0
    shocks["rates_down_200bp"] = -held_bond * bond_price_change(-RATE_MOVE, duration) + 0.0
    estimated: dict[str, np.ndarray] = {}
    for replay in replays:
        shocks[replay.name], estimated[replay.name] = _replay(replay, books.index, w, betas, r, assets, market, cash)
    order = [*HYPOTHETICAL, *(r.name for r in replays)]
    frames = []
    for scenario in order:
        frames.append(
            pd.DataFrame(
                {
                    "date": books.index,
                    "scenario": scenario,
                    "loss": shocks[scenario],
                    "es_now": now if scenario == "volatility_doubled" else np.nan,
                    "estimated_weight": estimated.get(scenario, np.zeros(len(w))),
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    rank = pd.Categorical(out["scenario"], categories=order, ordered=True)
    return out.assign(_o=rank).sort_values(["date", "_o"], kind="stable").drop(columns="_o").reset_index(drop=True)


def _replay(
    replay: Replay,
    dates: pd.DatetimeIndex,
    w: np.ndarray,
    betas: np.ndarray,
    r: pd.DataFrame,
    assets: list[str],
    market: str,
    cash: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    """One episode's loss per decision and the weight whose return was estimated from its beta."""
    first, last = pd.Timestamp(replay.first), pd.Timestamp(replay.last)
    episode = r.loc[(r.index >= first) & (r.index <= last)]
    loss, estimated = np.full(len(w), np.nan), np.zeros(len(w))
    covers = not episode.empty and r.index[0] <= first and episode.index.max() >= last  # the whole episode
    if covers and episode[market].notna().all():
        own = episode[assets]
        covered = own.notna().all().to_numpy()
        compounded = np.expm1(np.log1p(own.fillna(0.0)).sum()).to_numpy(dtype=float)
        benchmark = float(np.expm1(np.log1p(episode[market]).sum()))
    elif replay.market_move is not None:  # the returns do not cover the episode: every asset by its beta
        covered, compounded, benchmark = np.zeros(len(assets), dtype=bool), np.zeros(len(assets)), replay.market_move
    else:
        return loss, estimated  # the returns do not cover the episode, and it has no published move
    covered = covered | np.isin(assets, cash)  # cash earns nothing in any episode
    moves = np.where(covered[None, :], compounded[None, :], betas * benchmark)
    after = np.asarray(dates >= last)
    loss[after] = -np.einsum("dk,dk->d", w[after], moves[after]) + 0.0  # + 0.0: no loss of -0
    estimated[after] = np.abs(w[after][:, ~covered]).sum(axis=1)
    return loss, estimated


#: Columns of :func:`block_bootstrap`'s rows.
MONTE_CARLO_COLUMNS = [
    "horizon",
    "paths",
    "block",
    "history_sessions",
    "mean_return",
    "p01",
    "p05",
    "p50",
    "p95",
    "var_99",
    "es_99",
    "prob_drawdown_15",
]


def block_bootstrap(
    book: pd.Series,
    returns: pd.DataFrame,
    horizons: Sequence[int] = (21, 252),
    paths: int = 5000,
    block: int = 10,
    drawdown: float = 0.15,
    seed: int = 0,
) -> pd.DataFrame:
    """A block-bootstrap Monte Carlo of ``book`` (weights by asset) held for each horizon (see the module
    docstring): one row of :data:`MONTE_CARLO_COLUMNS` per horizon.

    The history is the sessions of ``returns`` on which every asset the book holds has a return. Each
    path joins blocks of ``block`` consecutive sessions starting at uniformly drawn sessions (circularly,
    as Politis and Romano's circular block bootstrap), seeded: a rerun gives the same numbers.
    """
    if paths < 100 or block < 1 or not 0 < drawdown < 1 or not horizons or min(horizons) < 1:
        raise ValueError(
            f"need paths >= 100, block >= 1, 0 < drawdown < 1 and horizons >= 1, got {paths}, {block}, {drawdown}, "
            f"{list(horizons)}"
        )
    held = book[book.fillna(0.0) != 0].astype(float)
    held = held[held.index.isin(returns.columns)]  # an asset without returns is cash: it earns 0
    history = returns[list(held.index)].dropna()
    daily = history.to_numpy(dtype=float) @ held.to_numpy() if len(held) else np.zeros(len(history))
    if len(daily) < 2 * block:
        raise ValueError(f"{len(daily)} sessions of common history are too few for blocks of {block}")
    rng = np.random.default_rng(seed)
    longest = max(horizons)
    idx = circular_block_indices(rng, len(daily), longest, block, paths)
    simulated = daily[idx]  # (paths, sessions)
    equity = np.cumprod(1.0 + simulated, axis=1)
    deepest = -drawdown_path(simulated)
    rows = []
    for h in horizons:
        total = equity[:, h - 1] - 1.0
        var, es = tail_risk(total[None, :], 0.99)
        q = np.quantile(total, [0.01, 0.05, 0.5, 0.95])
        rows.append(
            (h, paths, block, len(daily), float(total.mean()), *map(float, q), float(var[0]), float(es[0]),
             float((deepest[:, :h].max(axis=1) >= drawdown).mean()))
        )  # fmt: skip
    return pd.DataFrame(rows, columns=MONTE_CARLO_COLUMNS)
