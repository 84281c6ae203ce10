"""What MSSA-RL's policy learns on a built warehouse's returns, at every fold of the default walk-forward.

Usage: ``python benchmarks/mssa_rl_policy.py [WAREHOUSE]`` (about a minute, after ``make run``;
default ``warehouse/pmx.ducklake``). ``ml.model_fits`` keeps only each model's latest fit, so this
refits :class:`~python_models.forecasters.ssa_policy.SsaPolicy` on each fold's training window
(the default walk-forward's folds from 2005, ``walk_forward_folds``) and prints: how many fits have an
in-sample uplift above 0 over the best single action, the mean and largest uplift, the share of each
action taken at the origins, and per state its mean visits and the action the fits chose for it.
"""

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dagster_pmx.reader import connect  # noqa: E402
from python_models.evaluation.walk_forward import WalkForwardConfig, walk_forward_folds  # noqa: E402
from python_models.forecasters.ssa_policy import ACTIONS, STATES, SsaPolicy  # noqa: E402

con = connect(sys.argv[1] if len(sys.argv) > 1 else "warehouse/pmx.ducklake")
r = con.sql(
    "select ticker, date, log_return from intermediate.int_returns where log_return is not null order by date"
).df()
dates = pd.DatetimeIndex(sorted(r.date.unique()))
first = dates.searchsorted(pd.Timestamp("2005-01-01"))
rows, actions = [], []
for fold in walk_forward_folds(len(dates), first, WalkForwardConfig()):
    window = r[(r.date >= dates[fold.train_start]) & (r.date < dates[fold.train_end])]
    fit = SsaPolicy().fit(window)
    d = fit.diagnostics
    rows.append(
        {
            "train_end": dates[fold.train_end - 1],
            "uplift": d["policy_uplift"],
            **{f"policy_{s}": ACTIONS[int(d[f"policy_state_{s}"])] for s in range(len(STATES))},
            **{f"visits_{s}": d[f"visits_state_{s}"] for s in range(len(STATES))},
        }
    )
    actions += list(fit.actions.values())
df = pd.DataFrame(rows)
print(
    f"fits {len(df)}, uplift > 0 in {(df.uplift > 0).sum()}, mean uplift {df.uplift.mean():.5f}, "
    f"largest {df.uplift.max():.4f}"
)
print("actions taken at the origins:", pd.Series(actions).value_counts(normalize=True).round(3).to_dict())
for s in range(len(STATES)):
    print(
        f"state (break, skilful) = {STATES[s]}: visits per fit {df[f'visits_{s}'].mean():.1f}, "
        f"its action in the fits: {df[f'policy_{s}'].value_counts().to_dict()}"
    )
