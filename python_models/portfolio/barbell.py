"""The barbell: how much of the book is risky, given the market regime and its volatility.

A :class:`BarbellPolicy` sets the risky sleeve's size per regime (the regime's "leverage";
calm regimes get more) and a volatility target. On each decision date the risky share is::

    share = clip(sum_k p_k * regime_share_k * min(1, target_vol / market_vol), min_risky, max_risky)

with ``p_k`` the filtered regime probabilities known at that close. An uncertain regime
(probabilities spread out) lands between the regimes' shares, so the ratio moves with the
regime's confidence as well as with its identity; a market more volatile than the target
shrinks the sleeve in proportion. The rest of the book is the safe sleeve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class BarbellPolicy:
    """Risky-sleeve size by regime (calmest first), volatility target and bounds."""

    regime_share: tuple[float, ...] = (0.9, 0.67, 0.43, 0.2)
    target_vol: float = 0.15
    min_risky: float = 0.1
    max_risky: float = 0.9

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_risky <= self.max_risky <= 1.0:
            raise ValueError(f"need 0 <= min_risky <= max_risky <= 1, got {self.min_risky}, {self.max_risky}")
        if not self.regime_share or any(not 0.0 <= s <= 1.0 for s in self.regime_share):
            raise ValueError(f"regime shares must lie in [0, 1], got {self.regime_share}")
        if self.target_vol <= 0:
            raise ValueError(f"target_vol must be positive, got {self.target_vol}")

    @classmethod
    def linear(cls, regimes: int, calm: float = 0.9, stressed: float = 0.2, **kwargs) -> BarbellPolicy:
        """Shares falling linearly from ``calm`` (regime 0) to ``stressed`` (the last regime)."""
        if regimes < 1:
            raise ValueError(f"need at least one regime, got {regimes}")
        shares = np.linspace(calm, stressed, regimes) if regimes > 1 else np.array([calm])
        return cls(regime_share=tuple(float(s) for s in shares), **kwargs)


def risky_share(probabilities: pd.DataFrame, market_vol: pd.Series, policy: BarbellPolicy) -> pd.Series:
    """Risky share per date.

    Parameters
    ----------
    probabilities : pandas.DataFrame
        Dates by regime (0 calmest); each row sums to one.
    market_vol : pandas.Series
        Annualised market volatility known at each date's close.
    policy : BarbellPolicy

    Returns
    -------
    pandas.Series
        On the dates of ``probabilities``; ``min_risky`` where the volatility is unknown.
    """
    k = probabilities.shape[1]
    if k != len(policy.regime_share):
        raise ValueError(f"policy has {len(policy.regime_share)} regime shares, probabilities {k} regimes")
    p = probabilities.to_numpy(dtype=float)
    if not np.all(np.isfinite(p)) or np.any(p < -1e-9) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("regime probabilities must be finite, non-negative and sum to one per date")
    base = p @ np.asarray(policy.regime_share, dtype=float)
    vol = market_vol.reindex(probabilities.index).to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.minimum(1.0, policy.target_vol / vol)
    share = np.where(np.isfinite(scale) & (vol > 0), base * scale, policy.min_risky)
    return pd.Series(np.clip(share, policy.min_risky, policy.max_risky), index=probabilities.index, name="risky_share")
