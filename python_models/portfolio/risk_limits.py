"""Portfolio-level drawdown control: de-risk at a drawdown trigger, and an emergency stop.

The state at each close comes from the strategy's own equity up to and including that close:

* ``normal`` — full size;
* ``de_risked`` — entered when the drawdown from the peak reaches ``de_risk_at``; the risky
  positions are scaled by ``de_risk_scale``; left (back to normal) when the drawdown recovers
  above ``re_risk_at`` (hysteresis, so the book does not flap around the trigger);
* ``stopped`` — the emergency stop, entered from any state when the drawdown reaches
  ``stop_at``: no risky positions for ``stop_sessions`` sessions. A book in cash cannot climb
  back to its old peak, so on resuming the peak is reset to the equity of that close.

That is the default ``mode="de_risk"``. It acts after the line is crossed, so the drawdown can run
past it (docs/portfolio.md measures by how much). ``mode="hard_cap"`` instead holds the line
``de_risk_at``: a floor at ``1 - de_risk_at`` of the peak, and the risky positions scaled by
``cap_multiplier`` times the cushion above it, ``(equity - floor) / equity``, at most 1, rounded down
to tenths (so the book is re-issued only when the scale crosses a tenth) — time-invariant portfolio
protection (Estep and Kritzman 1988), which breaches the floor only if the risky positions lose more
than ``1 / cap_multiplier`` between two decisions (with a risky gross of 1; a decision takes effect at
the next close, so a fall over the session in between counts too). The floor follows the peak and is
never reset: a book whose scale fell to 0 (``stopped``) is in cash until the cushion regrows (its cash
earns the T-bill rate); a gap through ``stop_at`` stops it for ``stop_sessions`` sessions, after which
its scale is the cushion's again, the floor still at the old peak.

Because the scale changes the returns that decide later states, :func:`apply_drawdown_control`
solves for the path by fixed-point iteration: run the backtest with the current scales, derive
the states from its equity, repeat until they agree. The states before the first session that
changed are final after each pass (they depend only on earlier returns), so it ends in at most
one pass per session and in practice in a few.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from python_models.risk.var import tail_risk

STATES = ("normal", "de_risked", "stopped")
#: The drawdown control's modes (:class:`DrawdownPolicy`).
MODES = ("de_risk", "hard_cap")


@dataclass(frozen=True)
class DrawdownPolicy:
    """Drawdowns as positive fractions of the peak (0.15 = a 15 % fall)."""

    de_risk_at: float = 0.15
    re_risk_at: float = 0.10
    de_risk_scale: float = 0.5
    stop_at: float = 0.25
    stop_sessions: int = 21
    mode: str = "de_risk"
    cap_multiplier: float = 10.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not 0.0 < self.re_risk_at <= self.de_risk_at < self.stop_at < 1.0:
            raise ValueError(
                "need 0 < re_risk_at <= de_risk_at < stop_at < 1, got "
                f"{self.re_risk_at}, {self.de_risk_at}, {self.stop_at}"
            )
        if self.mode == "hard_cap" and self.cap_multiplier * self.de_risk_at < 1.0:
            raise ValueError(
                f"cap_multiplier must be at least 1 / de_risk_at ({1 / self.de_risk_at:.2f}) for a full book at the "
                f"peak, got {self.cap_multiplier}"
            )
        if not 0.0 <= self.de_risk_scale <= 1.0:
            raise ValueError(f"de_risk_scale must lie in [0, 1], got {self.de_risk_scale}")
        if self.stop_sessions < 1:
            raise ValueError(f"stop_sessions must be at least 1, got {self.stop_sessions}")


def drawdown_states(net_returns: Iterable[float], policy: DrawdownPolicy) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """State, risky-position scale and drawdown at each close, from the net returns of the
    sessions (the return of session ``t`` is known at its close and sets the state there).

    Returns ``(states, scales, drawdowns)``; ``states`` holds indices into :data:`STATES`.
    """
    r = np.asarray(list(net_returns) if not isinstance(net_returns, np.ndarray) else net_returns, dtype=float)
    if not np.all(np.isfinite(r)):
        raise ValueError("net returns must be finite")
    scale_of = (1.0, policy.de_risk_scale, 0.0)
    hard = policy.mode == "hard_cap"
    states = np.zeros(len(r), dtype=np.int64)
    scales = np.ones(len(r))
    drawdowns = np.zeros(len(r))
    equity, peak, state, cool = 1.0, 1.0, 0, 0
    for t, x in enumerate(r):
        equity *= 1.0 + x
        if cool > 0:  # the emergency stop's sessions in cash
            cool -= 1
            if cool > 0 or not hard:
                if cool == 0:  # de_risk: full size again, from a new peak (a book in cash cannot regain the old one)
                    state, peak = 0, equity
                states[t], scales[t], drawdowns[t] = state, 0.0 if cool > 0 else 1.0, equity / peak - 1.0
                continue
            # hard_cap: the stop ends into the cushion's scale below, the floor still at the old peak
        peak = max(peak, equity)
        dd = 1.0 - equity / peak
        if dd >= policy.stop_at:
            state, cool, scale = 2, policy.stop_sessions, 0.0
        elif hard:
            # the floor follows the peak and is never reset: a scale of 0 waits for the cushion to regrow
            cushion = 1.0 - (1.0 - policy.de_risk_at) * peak / equity
            # tenths, rounded down (the small offset keeps a product like 10 x 0.1 from landing below a tenth)
            scale = np.floor(10.0 * min(1.0, max(0.0, policy.cap_multiplier * cushion)) + 1e-9) / 10.0
            state = 0 if scale == 1.0 else 1 if scale > 0.0 else 2
        else:
            if state == 0 and dd >= policy.de_risk_at:
                state = 1
            elif state == 1 and dd < policy.re_risk_at:
                state = 0
            scale = scale_of[state]
        states[t] = state
        scales[t] = scale
        drawdowns[t] = equity / peak - 1.0
    return states, scales, drawdowns


def scale_book(weights: pd.DataFrame, scales: pd.Series, safe: Iterable[str] = ()) -> pd.DataFrame:
    """Decisions with the risky columns multiplied by the scale of their close.

    ``weights`` holds the decisions (dates by tickers; the book drifts between them). A session
    where the scale changes becomes a decision too, re-issuing the last decision's weights at
    the new scale. Columns in ``safe`` are not scaled; the freed weight is cash.
    """
    sessions = scales.index
    unknown = weights.index.difference(sessions)
    if len(unknown):
        raise ValueError(f"decisions on sessions without a scale: {list(unknown)[:3]}")
    s = scales.to_numpy(dtype=float)
    changed = sessions[np.r_[False, s[1:] != s[:-1]]]
    dates = weights.index.union(changed)
    full = weights.reindex(pd.DatetimeIndex(sessions)).ffill().loc[dates]
    first = weights.index.min()
    full = full.loc[full.index >= first]
    risky = [c for c in full.columns if c not in set(safe)]
    full[risky] = full[risky].mul(scales.reindex(full.index), axis=0)
    return full


def apply_drawdown_control(
    weights: pd.DataFrame,
    run: Callable[[pd.DataFrame], pd.DataFrame],
    sessions: pd.DatetimeIndex,
    policy: DrawdownPolicy,
    safe: Iterable[str] = (),
    max_passes: int = 200,
    initial: pd.Series | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The decisions with the drawdown control applied, and the per-session states.

    ``run`` backtests a decision frame and returns a frame indexed by ``sessions`` with a
    ``net_return`` column (the pipeline's :func:`python_models.backtest.engine.run_backtest` with its
    settings). Returns ``(controlled_weights, states)`` where ``states`` has ``state``,
    ``scale`` and ``drawdown`` per session.

    ``initial`` starts the iteration from known scales (the stored path of an earlier run;
    sessions it lacks start at 1). The path is causal (the scale at a close depends only on
    earlier scales), so the fixed point is unique and the start only changes how soon it is
    reached: extending a stored path by a session takes one or two passes.
    """
    safe = list(safe)
    scales = pd.Series(1.0, index=sessions)
    if initial is not None:
        scales = initial.reindex(sessions).fillna(1.0).astype(float)
    for _ in range(max_passes):
        controlled = scale_book(weights, scales, safe)
        daily = run(controlled)
        states, new, drawdowns = drawdown_states(daily["net_return"].reindex(sessions).fillna(0.0).to_numpy(), policy)
        if np.array_equal(new, scales.to_numpy()):
            frame = pd.DataFrame(
                {"state": [STATES[s] for s in states], "scale": new, "drawdown": drawdowns}, index=sessions
            )
            return controlled, frame
        scales = pd.Series(new, index=sessions)
    raise RuntimeError(f"drawdown control did not settle in {max_passes} passes")


@dataclass(frozen=True)
class EsLimit:
    """A cap on the expected shortfall of the positions decided at each close.

    ``limit`` is the one-session ES at ``level`` as a positive fraction of the book (0.03: a 3 %
    mean loss on the worst 2.5 % of sessions), of the positions revalued on the last ``window``
    sessions of their assets' returns, up to and including the decision's close (historical
    simulation of today's book: what the positions would have lost, not what the strategy lost with
    yesterday's). ``limit`` = 0 turns the cap off.
    """

    limit: float = 0.03
    level: float = 0.975
    window: int = 252

    def __post_init__(self) -> None:
        if self.limit < 0 or not 0.5 < self.level < 1 or self.window < 20:
            raise ValueError(
                f"need limit >= 0, 0.5 < level < 1 and window >= 20, got {self.limit}, {self.level}, {self.window}"
            )


#: Columns of :func:`apply_es_limit`'s per-decision rows.
ES_COLUMNS = ["date", "es_before", "scale", "es_after", "limit", "level"]


def position_es(pnl: np.ndarray, level: float) -> np.ndarray:
    """Historical ES of each column of scenario returns ``pnl`` (scenarios x books), as positive losses."""
    return tail_risk(np.asarray(pnl, dtype=float).T, level)[1]


def es_scale(risky: np.ndarray, safe: np.ndarray, level: float, limit: float, steps: int = 40) -> tuple[float, float]:
    """The largest ``s`` in [0, 1] whose book ``s * risky + safe`` (scenario returns of each part) has an
    ES at ``level`` within ``limit``, and that ES.

    ES is convex in the positions (it is sub-additive and positively homogeneous), so along ``s`` the
    books within the limit are an interval from 0 (when the safe part alone is within it): bisection.
    Where even the safe part alone exceeds the limit, ``s`` is 0: the risky positions go, and the
    breach left is the safe sleeve's.
    """

    def es(s: float) -> float:
        return float(position_es((s * risky + safe)[:, None], level)[0])

    full = es(1.0)
    if full <= limit:
        return 1.0, full
    if es(0.0) > limit:
        return 0.0, es(0.0)
    lo, hi = 0.0, 1.0  # es(lo) <= limit < es(hi)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if es(mid) <= limit else (lo, mid)
    return lo, es(lo)


def apply_es_limit(
    weights: pd.DataFrame,
    returns: pd.DataFrame,
    policy: EsLimit,
    safe: Iterable[str] = (),
    stored: pd.Series | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The decisions with the risky positions scaled so that each decision's ES is within ``policy``.

    Parameters
    ----------
    weights : DataFrame
        Decisions: dates (the closes they are decided at) by tickers; cash is what they leave.
    returns : DataFrame
        Daily simple returns of the tickers by session (missing: 0, a position that did not trade).
    policy : EsLimit
    safe : iterable of str
        Tickers kept whole (the safe sleeve, e.g. the bond proxy, and cash); only the others are scaled.
    stored : Series, optional
        Scales by date from an earlier run (the daily refresh's stored path): those decisions are
        scaled by them without being revalued, and get no row.

    Returns
    -------
    (DataFrame, DataFrame)
        The scaled decisions, and per decision revalued :data:`ES_COLUMNS`: its ES before and after
        and the scale put on its risky positions (1 where the limit did not bind). A decision with
        fewer than ``window`` sessions of returns behind it is left as it is, with NaN ES.
    """
    if policy.limit == 0 or weights.empty:
        return weights, _es_rows([])
    is_safe = weights.columns.isin(list(safe))
    r = returns.reindex(columns=weights.columns).fillna(0.0)
    ends = r.index.get_indexer(weights.index, method="pad")  # the decision's close, or the session before
    w = weights.fillna(0.0).to_numpy(dtype=float)
    scales = np.ones(len(w))
    known = {} if stored is None else stored.dropna().to_dict()
    reuse = np.array([date in known for date in weights.index], dtype=bool)
    scales[reuse] = [known[date] for date in weights.index[reuse]]
    priced = ~reuse & (ends + 1 >= policy.window)
    values = r.to_numpy(dtype=float)
    risky_pnl = book_scenarios(values, ends[priced], np.where(is_safe, 0.0, w[priced]), policy.window)
    safe_pnl = book_scenarios(values, ends[priced], np.where(is_safe, w[priced], 0.0), policy.window)
    before = tail_risk(risky_pnl + safe_pnl, policy.level)[1]
    after = before.copy()
    at = np.flatnonzero(priced)
    for j in np.flatnonzero(before > policy.limit):  # only the decisions the limit binds need the bisection
        scales[at[j]], after[j] = es_scale(risky_pnl[j], safe_pnl[j], policy.level, policy.limit)
    scaled = pd.DataFrame(np.where(is_safe, w, w * scales[:, None]), index=weights.index, columns=weights.columns)
    rows = pd.DataFrame(
        {
            "date": weights.index[~reuse],
            "es_before": np.nan,
            "scale": 1.0,
            "es_after": np.nan,
            "limit": policy.limit,
            "level": policy.level,
        }
    )
    rows.loc[priced[~reuse], ["es_before", "scale", "es_after"]] = np.column_stack([before, scales[priced], after])
    return scaled.where(weights.notna()), _es_rows(rows)


#: Values in one slice of :func:`book_scenarios` (32 MB of float64).
SCENARIO_SLICE = 4_000_000


def book_scenarios(values: np.ndarray, ends: np.ndarray, books: np.ndarray, window: int) -> np.ndarray:
    """Each book's returns revalued on the ``window`` sessions of ``values`` (sessions x assets) up to and
    including its row ``ends[i]``: books x window. ``books`` holds one row of weights per end.

    The books go a few at a time, so that their (books x window x assets) slice of scenarios stays within
    :data:`SCENARIO_SLICE` values whatever the history and the universe.
    """
    out = np.empty((len(ends), window))
    offsets = np.arange(1 - window, 1)
    chunk = max(1, SCENARIO_SLICE // (window * max(1, values.shape[1])))
    for start in range(0, len(ends), chunk):
        stop = start + chunk
        out[start:stop] = np.einsum("cwk,ck->cw", values[ends[start:stop, None] + offsets], books[start:stop])
    return out


def _es_rows(rows: pd.DataFrame | list[tuple]) -> pd.DataFrame:
    """:data:`ES_COLUMNS` rows, typed even when there are none."""
    frame = pd.DataFrame(rows, columns=ES_COLUMNS)
    return frame.astype({"date": "datetime64[ns]", **{c: "float64" for c in ES_COLUMNS[1:]}})


def es_limit_breaches(
    allocations: pd.DataFrame, returns: pd.DataFrame, decisions: pd.DataFrame, policy: EsLimit, tolerance: float = 1e-9
) -> pd.DataFrame:
    """The decisions whose stored positions break the ES limit: ``strategy, date, es, risky_gross``.

    ``allocations`` are the stored rows (``strategy, date, ticker, weight, sleeve``), after every risk
    limit; ``decisions`` the ES limit's rows (``strategy, date, es_before``: the decisions it priced).
    Each such decision's positions are revalued on the ``policy.window`` sessions of ``returns`` up to its
    close, as :func:`apply_es_limit` does; a decision breaks the limit where their ES is above it and
    risky positions remain (a safe sleeve alone above it is the one breach the limit cannot mend).
    """
    columns = ["strategy", "date", "es", "risky_gross"]
    priced = decisions.dropna(subset=["es_before"])
    wanted = allocations.merge(priced[["strategy", "date"]], on=["strategy", "date"])
    if wanted.empty:
        return pd.DataFrame(columns=columns)
    books = wanted.pivot_table(
        index=["strategy", "date"], columns="ticker", values="weight", aggfunc="sum", fill_value=0.0
    )
    risky = wanted[wanted["sleeve"] == "risky"].groupby(["strategy", "date"])["weight"].apply(lambda w: w.abs().sum())
    risky = risky.reindex(books.index, fill_value=0.0).to_numpy(dtype=float)
    r = returns.reindex(columns=books.columns).fillna(0.0)
    ends = r.index.get_indexer(books.index.get_level_values("date"), method="pad")
    full = ends + 1 >= policy.window
    es = np.full(len(books), np.nan)
    if full.any():
        pnl = book_scenarios(r.to_numpy(dtype=float), ends[full], books.to_numpy(dtype=float)[full], policy.window)
        es[full] = tail_risk(pnl, policy.level)[1]
    broken = full & (es > policy.limit + tolerance) & (risky > 0)
    index = books.index[broken]
    return pd.DataFrame(
        {
            "strategy": index.get_level_values("strategy"),
            "date": index.get_level_values("date"),
            "es": es[broken],
            "risky_gross": risky[broken],
        },
        columns=columns,
    ).reset_index(drop=True)
