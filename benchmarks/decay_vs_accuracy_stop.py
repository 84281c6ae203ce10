"""Which models governance stops in a sell-off, under the old rule and under the two rules that replaced it,
on the default build.

Reads a built warehouse (``make run``). The **old rule** is recomputed from the realised forecasts at the signal
horizon: the 0.45 floor (resume at 0.50) on the plain directional accuracy over 63 realisation dates, as governance
applied it before the decay detector; beside it, the same floor on the balanced accuracy over 63 dates (why the
floor's window is now 252). The **new rules** are read from ``marts.model_risk``: ``accuracy_stop`` (the
floor on the balanced accuracy over 252 dates), ``needs_retrain`` (the decay CUSUM's alarm on the loss relative to
the random walk) and ``stopped`` (either). For each: the share of model-dates stopped, the most models stopped on
one date and when, the dates with every model stopped, and the models stopped on the worst sessions of 2008 and
2020. The random walk is left out (its zero forecast has no direction).

Usage: ``PYTHONPATH=. .venv/bin/python benchmarks/decay_vs_accuracy_stop.py [--warehouse W]``
"""

from __future__ import annotations

import argparse

import pandas as pd

from dagster_pmx.lake import Lake
from python_models.governance.governor import stop_flags
from python_models.governance.policy import GovernancePolicy, balanced_accuracy, daily_evidence, rolling_accuracy

SELL_OFFS = ("2008-10-15", "2008-11-20", "2020-03-16", "2020-03-23")
#: The rule governance applied before: the floor on the plain accuracy over 63 realisation dates.
OLD_WINDOW = 63
RULES = {
    "old_floor": "old rule: plain accuracy (63 dates) < 0.45",
    "balanced_63": "balanced accuracy (63 dates) < 0.45",
    "accuracy_stop": "floor: balanced accuracy (252 dates) < 0.45",
    "needs_retrain": "decay CUSUM alarm",
    "stopped": "new stop (floor or decay)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default="warehouse/pmx.ducklake")
    args = parser.parse_args()
    policy = GovernancePolicy()
    with Lake.at(args.warehouse).open(read_only=True) as con:
        forecasts = con.execute(
            "select model, ticker, asof_date, target_date, y_pred, y_true from marts.forecasts "
            "where horizon = ? and y_true is not null",
            [policy.horizon],
        ).df()
        status = con.execute("select model, date, accuracy_stop, needs_retrain, stopped from marts.model_risk").df()
    status["date"] = pd.to_datetime(status["date"])
    evidence = daily_evidence(forecasts, policy.baseline)
    recomputed = []
    for rule, accuracy in (
        ("old_floor", rolling_accuracy(evidence.hits, OLD_WINDOW)),
        ("balanced_63", balanced_accuracy(evidence, OLD_WINDOW)),
    ):
        flags = pd.concat(
            {m: stop_flags(accuracy[m], policy.stop_accuracy, policy.resume_accuracy) for m in accuracy.columns}, axis=1
        )
        recomputed.append(flags.rename_axis(index="date", columns="model").stack().rename(rule))
    old = pd.concat(recomputed, axis=1).reset_index()
    both = status.merge(old, on=["model", "date"], how="inner")
    both = both[both["model"] != policy.decay_baseline]
    n = both["model"].nunique()
    print(f"{len(both):,} model-dates of {n} models, {both['date'].min().date()} to {both['date'].max().date()}, "
          f"h = {policy.horizon}")  # fmt: skip
    print(
        f"| rule | model-dates stopped | most models on one date | dates with all {n} stopped | "
        + " | ".join(SELL_OFFS)
        + " |"
    )
    print("|---|---|---|---|" + "---|" * len(SELL_OFFS))
    for rule, label in RULES.items():
        per_date = both.groupby("date")[rule].sum()
        days = [int(per_date.get(pd.Timestamp(d), -1)) for d in SELL_OFFS]
        print(
            f"| {label} | {both[rule].mean():.1%} | {int(per_date.max())} ({per_date.idxmax().date()}) | "
            f"{int((per_date == n).sum())} | " + " | ".join(map(str, days)) + " |"
        )


if __name__ == "__main__":
    main()
