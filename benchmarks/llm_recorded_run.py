"""What the LLM source produces on the default build against the recorded Ollama server, read-only.

Asks the recorded server (``tests/python_models/llm/ollama_server.py``) for the latest ``--history`` sessions of
every ticker of a built warehouse (``make run``), with the models ``missing`` (the server lacks it: every call
fails over) and ``mixed`` (each prompt answered with one recording of ``good``, ``good_down``, ``malformed``,
``refusal`` and ``empty``, picked by its hash). It writes nothing: the pairs, prompts and outcomes are read with the
asset's own reads (``dagster_pmx.defs.llm.reads``), the calls made by the asset's ``ask``, and the answers kept in
memory. Prints the rows, the verdicts by rejection reason, the failovers and timings; the scores of the realised
signals beside every forecaster on the same rows (``marts.llm_scores``' computation); and what fallback routing
would do with them (``llm_fallback`` ``always`` with backfill admitted, and ``all_stopped``) against the active
models stored in ``marts.model_risk``.

Usage: ``PYTHONPATH=. .venv/bin/python benchmarks/llm_recorded_run.py [--warehouse W] [--history 42]``
"""

from __future__ import annotations

import argparse
import logging
import time

import pandas as pd

from dagster_pmx.defs.llm import reads
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.governance.fallback import eligible_signals, route, source_stops
from python_models.governance.policy import GovernancePolicy
from python_models.llm.client import OllamaClient
from python_models.llm.scores import comparison_table, llm_scores
from python_models.llm.source import ask
from tests.python_models.llm.ollama_server import RecordedOllama

MODELS = ["missing", "mixed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default="warehouse/pmx.ducklake")
    parser.add_argument("--history", type=int, default=42)
    args = parser.parse_args()
    logging.getLogger("python_models.llm.client").setLevel(logging.ERROR)  # a failover line per call: counted below
    settings = PmxSettings()
    warehouse = Warehouse(path=args.warehouse)
    horizon = settings.signal_horizon
    pairs = reads.pending_pairs(warehouse, settings.benchmark, args.history, horizon, budget=100_000)
    requests = reads.signal_requests(warehouse, pairs, settings.benchmark, horizon)
    with RecordedOllama() as server:
        client = OllamaClient(server.url, MODELS, read_timeout=5.0, min_token_rate=0.0)
        start = time.perf_counter()
        rows = ask(client, requests, {}, give_up_after=3)
        seconds = time.perf_counter() - start
    answered = rows[rows["model"] != ""]
    took, first = answered["seconds"].median(), answered["first_token_s"].median()
    print(f"{len(rows)} calls ({pairs['ticker'].nunique()} tickers x {pairs['date'].nunique()} sessions) in "
          f"{seconds:.1f} s; {int(rows['valid'].sum())} valid; failovers {int(rows['failovers'].sum())}; "
          f"median {took:.3f} s a call, first token {first:.3f} s")  # fmt: skip
    print("\nverdicts:")
    print(rows["rejection"].fillna("valid").value_counts().rename("rows").to_markdown())

    valid = rows[rows["valid"]]
    outcomes = warehouse.query(
        "select ticker, date, fwd_return as y_true from intermediate.int_forward_returns where horizon = ?", [horizon]
    )
    realised = valid.merge(outcomes, on=["ticker", "date"], how="left")
    forecasts = warehouse.query(
        "select model, ticker, asof_date as date, horizon, y_pred from marts.forecasts where horizon = ? "
        "and asof_date >= ?",
        [horizon, pd.Timestamp(valid["date"].min())],
    )
    scores = llm_scores(realised.dropna(subset=["y_true"]), models=forecasts)
    print(
        f"\nscores of the {int(realised['y_true'].notna().sum())} realised valid signals, every forecaster on the "
        "same rows:"
    )
    panel = comparison_table(scores, pd.DataFrame(columns=["strategy", "date", "net_return"]))
    print(panel.drop(columns="book_sharpe").round(3).to_markdown(index=False))

    status = warehouse.query("select date, model from marts.model_risk where active")
    calendar = pd.DatetimeIndex(warehouse.query("select distinct date from marts.model_risk order by date")["date"])
    active = status.set_index("date")["model"].reindex(calendar, fill_value="")
    policy = GovernancePolicy(horizon=horizon)
    for mode, backfill in (("always", True), ("all_stopped", True), ("always", False)):
        eligible = eligible_signals(realised, backfill=backfill)
        accuracy, stopped = source_stops(eligible, calendar, horizon, policy)
        routing = route(active, eligible, accuracy, stopped, mode, policy, backfill)
        print(f"\nllm_fallback={mode}, backfill {'admitted' if backfill else 'refused'}: "
              f"{int(routing.routed.sum())} sessions routed, {len(routing.signals)} signals would drive the book; "
              f"decisions {routing.decisions['action'].value_counts().to_dict()}")  # fmt: skip


if __name__ == "__main__":
    main()
