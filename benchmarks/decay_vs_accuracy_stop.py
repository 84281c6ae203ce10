"""Which models the accuracy floor stops in a sell-off, and which the decay detector would, on the default build.

Reads a built warehouse (``make run``): each model's realised forecasts at the signal horizon against the random
walk's on the same (ticker, origin) rows, the relative differential of their cross-sectional mean squared errors
by realisation date, and :func:`python_models.governance.decay.decay_cusum` on it; beside it,
``marts.model_risk.stopped`` (the 0.45 rolling-accuracy floor the governance applies today). Prints, per rule:
the share of model-dates stopped, the most models stopped on one date and when, and the models stopped on
the worst sessions of 2008 and 2020.

Usage: ``PYTHONPATH=. .venv/bin/python benchmarks/decay_vs_accuracy_stop.py [--warehouse W] [--horizon 21]``
"""

from __future__ import annotations

import argparse

import pandas as pd

from dagster_pmx.lake import Lake
from python_models.governance.decay import DecayPolicy, decay_cusum, relative_differential

SELL_OFFS = ("2008-10-15", "2008-11-20", "2020-03-16", "2020-03-23")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default="warehouse/pmx.ducklake")
    parser.add_argument("--horizon", type=int, default=21)
    args = parser.parse_args()
    with Lake.at(args.warehouse).open(read_only=True) as con:
        loss = con.execute(
            f"""
            with f as (
                select model, ticker, asof_date, target_date, (y_pred - y_true) ^ 2 as loss
                from marts.forecasts where horizon = {args.horizon} and y_true is not null
            )
            select m.model, m.target_date as date, avg(m.loss) as model_loss, avg(b.loss) as baseline_loss
            from f m join f b on b.model = 'random_walk' and b.ticker = m.ticker and b.asof_date = m.asof_date
            where m.model <> 'random_walk'
            group by all order by m.model, date
            """
        ).df()
        floor = con.execute("select model, date, stopped from marts.model_risk").df()
    loss["date"] = pd.to_datetime(loss["date"])
    floor["date"] = pd.to_datetime(floor["date"])
    flags = []
    for model, g in loss.groupby("model"):
        g = g.set_index("date")
        out = decay_cusum(relative_differential(g["model_loss"], g["baseline_loss"]), DecayPolicy())
        flags.append(out.assign(model=model).reset_index()[["model", "date", "decayed"]])
    decay = pd.concat(flags, ignore_index=True)
    both = floor.merge(decay, on=["model", "date"], how="inner")
    print(f"{len(both):,} model-dates of {both['model'].nunique()} models, {both['date'].min().date()} to "
          f"{both['date'].max().date()}, h = {args.horizon}")  # fmt: skip
    for rule in ("stopped", "decayed"):
        per_date = both.groupby("date")[rule].sum()
        print(
            f"{rule:>8}: {both[rule].mean():6.1%} of model-dates; at most {int(per_date.max())} of "
            f"{both['model'].nunique()} models on one date ({per_date.idxmax().date()}); "
            f"dates with every model stopped: {int((per_date == both.groupby('date')['model'].size()).sum())}"
        )
    for day in SELL_OFFS:
        at = both[both["date"] == pd.Timestamp(day)]
        if len(at):
            print(f"{day}: floor stops {int(at['stopped'].sum())}, decay stops {int(at['decayed'].sum())} of {len(at)}")


if __name__ == "__main__":
    main()
