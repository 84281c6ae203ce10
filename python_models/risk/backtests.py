"""Tests of a VaR's exceedances: Kupiec's unconditional coverage and Christoffersen's independence
and conditional coverage.

An exceedance is a session whose loss is larger than the VaR estimated at the close before it.
Under a correct one-session VaR at tail probability ``p`` the exceedances are independent Bernoulli(p)
draws. The tests are likelihood ratios:

* **Kupiec (1995), proportion of failures**: ``x`` exceedances in ``n`` sessions against ``p``,
  ``LR_uc = -2 ln[(1 - p)^(n - x) p^x] + 2 ln[(1 - x/n)^(n - x) (x/n)^x]``, chi-squared with 1
  degree of freedom;
* **Christoffersen (1998), independence**: the first-order Markov chain of the exceedances against
  independence, ``LR_ind = -2 ln[(1 - pi)^(n00 + n10) pi^(n01 + n11)]
  + 2 ln[(1 - pi01)^n00 pi01^n01 (1 - pi11)^n10 pi11^n11]`` with ``n_ij`` the transitions from state
  ``i`` to ``j``, ``pi01 = n01 / (n00 + n01)``, ``pi11 = n11 / (n10 + n11)`` and
  ``pi = (n01 + n11) / (n00 + n01 + n10 + n11)``; chi-squared with 1 degree of freedom;
* **conditional coverage**: ``LR_cc = LR_uc + LR_ind`` on the same sessions (the first session has
  no predecessor, so both use sessions 2..n, as Christoffersen does), chi-squared with 2.

``0 ln 0`` is taken as 0. Multi-session VaRs overlap, and their exceedances are dependent by
construction: these tests are for one-session VaRs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats


def _xlogy(x: float, y: float) -> float:
    """x ln y with 0 ln 0 = 0."""
    return 0.0 if x == 0 else float(x * np.log(y))


def _check(hits, p: float) -> np.ndarray:
    h = np.asarray(hits)
    if h.ndim != 1 or h.size < 2:
        raise ValueError(f"need a one-dimensional sequence of at least 2 sessions, got shape {h.shape}")
    if not np.isin(h, (0, 1, True, False)).all():
        raise ValueError("exceedances must be 0/1 or booleans")
    if not 0.0 < p < 1.0:
        raise ValueError(f"the tail probability p must lie in (0, 1), got {p}")
    return h.astype(int)


@dataclass(frozen=True)
class CoverageTest:
    """A likelihood-ratio statistic and its chi-squared p-value."""

    statistic: float
    pvalue: float


def kupiec(hits, p: float) -> CoverageTest:
    """Kupiec's proportion-of-failures test of exceedances ``hits`` against tail probability ``p``."""
    h = _check(hits, p)
    n, x = h.size, int(h.sum())
    rate = x / n
    lr = -2 * (_xlogy(n - x, 1 - p) + _xlogy(x, p)) + 2 * (_xlogy(n - x, 1 - rate) + _xlogy(x, rate))
    lr = max(lr, 0.0)
    return CoverageTest(lr, float(stats.chi2.sf(lr, 1)))


def transitions(hits) -> tuple[int, int, int, int]:
    """``(n00, n01, n10, n11)``: sessions in state ``j`` after a session in state ``i``."""
    h = np.asarray(hits).astype(int)
    before, after = h[:-1], h[1:]
    return (
        int(np.sum((before == 0) & (after == 0))),
        int(np.sum((before == 0) & (after == 1))),
        int(np.sum((before == 1) & (after == 0))),
        int(np.sum((before == 1) & (after == 1))),
    )


def christoffersen(hits, p: float) -> tuple[CoverageTest, CoverageTest]:
    """Christoffersen's independence and conditional-coverage tests: ``(independence, conditional)``."""
    h = _check(hits, p)
    n00, n01, n10, n11 = transitions(h)
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    restricted = _xlogy(n00 + n10, 1 - pi) + _xlogy(n01 + n11, pi)
    markov = _xlogy(n00, 1 - pi01) + _xlogy(n01, pi01) + _xlogy(n10, 1 - pi11) + _xlogy(n11, pi11)
    lr_ind = max(-2 * (restricted - markov), 0.0)
    lr_cc = kupiec(h[1:], p).statistic + lr_ind
    return (
        CoverageTest(lr_ind, float(stats.chi2.sf(lr_ind, 1))),
        CoverageTest(lr_cc, float(stats.chi2.sf(lr_cc, 2))),
    )


#: Columns of :func:`exceedance_table`.
EXCEEDANCE_COLUMNS = [
    "method",
    "level",
    "sessions",
    "exceedances",
    "expected_rate",
    "observed_rate",
    "kupiec_lr",
    "kupiec_pvalue",
    "independence_lr",
    "independence_pvalue",
    "conditional_lr",
    "conditional_pvalue",
]


def exceedances(returns: pd.Series, estimates: pd.DataFrame) -> pd.DataFrame:
    """The one-session estimates of ``estimates`` (``rolling_var_es``'s rows) beside the return of the
    session after each: ``date, method, level, var, es, next_return, exceeded`` (the loss
    ``-next_return`` above the VaR); the last date, whose next session is unknown, is left out."""
    one = estimates[estimates["horizon"] == 1]
    following = returns.shift(-1).rename("next_return")
    out = one.join(following, on="date").dropna(subset=["next_return"])
    # no VaR (a window the method could not estimate): no verdict either
    exceeded = (-out["next_return"] > out["var"]).astype("boolean").where(out["var"].notna())
    return out.assign(exceeded=exceeded)[["date", "method", "level", "var", "es", "next_return", "exceeded"]]


def exceedance_table(returns: pd.Series, estimates: pd.DataFrame) -> pd.DataFrame:
    """Per method and level: the one-session VaR's exceedances over the sessions after the estimates,
    with Kupiec's and Christoffersen's tests (:data:`EXCEEDANCE_COLUMNS`)."""
    rows = []
    for (method, level), group in exceedances(returns, estimates).groupby(["method", "level"], sort=True):
        group = group.dropna(subset=["var"]).sort_values("date")
        if len(group) < 2:
            continue
        hits = group["exceeded"].astype(bool).to_numpy()
        p = 1.0 - float(level)
        uc = kupiec(hits, p)
        ind, cc = christoffersen(hits, p)
        rows.append(
            (method, level, len(hits), int(hits.sum()), p, float(hits.mean()), uc.statistic, uc.pvalue)
            + (ind.statistic, ind.pvalue, cc.statistic, cc.pvalue)
        )
    return pd.DataFrame(rows, columns=EXCEEDANCE_COLUMNS)
