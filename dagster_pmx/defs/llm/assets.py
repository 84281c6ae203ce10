"""The LLM signal source's asset: ask an Ollama server for the latest sessions' signals, judge and keep each one.

Off unless ``llm_models`` is set and ``PMX_LLM_HOST`` is in the environment (docs/llm.md): then the asset only
makes sure ``ml.llm_signals`` exists, so ``make run`` needs no LLM. On, it asks for the pairs of the latest
``llm_history`` sessions not asked before, at most ``llm_max_calls`` a run, and appends every answer with its
verdict: a log that keeps what each model said, valid or not.
"""

import os
from collections import Counter

import dagster as dg

from dagster_pmx.defs import schemas
from dagster_pmx.defs.llm import reads
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.llm.client import OllamaClient
from python_models.llm.scores import ALL, LLM
from python_models.llm.scores import llm_scores as score_signals
from python_models.llm.source import ask

#: The environment variable naming the Ollama server (never the file: it may carry credentials).
HOST_VARIABLE = "PMX_LLM_HOST"
#: Calls in a row that no model answers before a run stops asking (a server down or unreachable: each call
#: would wait out its timeouts); the pairs not answered are asked for again by the next run.
GIVE_UP_AFTER = 3


@dg.asset(
    key=["ml", "llm_signals"],
    group_name="llm",
    pool="warehouse",
    kinds={"python", "duckdb"},
    deps=[
        dg.AssetKey(["marts", "features"]),
        dg.AssetKey(["ml", "base_forecasts"]),
        dg.AssetKey(["ml", "ensemble_forecasts"]),
        dg.AssetKey(["ml", "regime_probabilities"]),
    ],
    metadata={"dagster/column_schema": schemas.LLM_SIGNALS},
    description="Signals from an LLM on an Ollama server (off unless llm_models and PMX_LLM_HOST are set): for the "
    "latest llm_history sessions' (ticker, session) pairs not asked before, at most llm_max_calls a run, a prompt of "
    "the close's features, the models' forecasts at the signal horizon and the market's regime probabilities; the "
    "answer (direction, expected return, confidence, reason) judged by eight validation layers, and kept with its "
    "verdict, the prompt's and answer's hashes and every model tried (failover on errors, timeouts and slow token "
    "streams). Appended, never replaced.",
)
def llm_signals(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings) -> dg.MaterializeResult:
    host, models = os.environ.get(HOST_VARIABLE, ""), settings.llm_model_list
    if not warehouse.has(reads.SIGNALS_TABLE):  # with its column types, whatever the first rows hold
        warehouse.replace_table(reads.SIGNALS_TABLE, schemas.empty_frame(schemas.LLM_SIGNALS))
    if not host or not models:
        missing = " and ".join(n for n, v in ((HOST_VARIABLE, host), ("llm_models", models)) if not v)
        context.log.info(f"the LLM source is off ({missing} not set)")
        return dg.MaterializeResult(metadata={"state": f"off: {missing} not set", "new_rows": 0})
    horizon = settings.signal_horizon
    pairs = reads.pending_pairs(warehouse, settings.benchmark, settings.llm_history, horizon, settings.llm_max_calls)
    requests = reads.signal_requests(warehouse, pairs, settings.benchmark, horizon)
    previous = reads.previous_directions(warehouse, sorted(set(pairs["ticker"])), horizon)
    client = OllamaClient(
        host,
        models,
        call_timeout=settings.llm_call_timeout,
        read_timeout=settings.llm_read_timeout,
        min_token_rate=settings.llm_failover_rate,
    )
    rows = ask(client, requests, previous, give_up_after=GIVE_UP_AFTER)
    total = warehouse.append(reads.SIGNALS_TABLE, schemas.typed(rows, schemas.LLM_SIGNALS))
    if len(rows) < len(requests):
        context.log.warning(
            f"stopped after {len(rows)} of {len(requests)} calls: no model answered {GIVE_UP_AFTER} calls in a row"
        )
    rejections = Counter(rows["rejection"].dropna())
    answered = rows[rows["model"] != ""]
    context.log.info(f"LLM signals: {len(rows)} asked, {int(rows['valid'].sum())} valid, rejected {dict(rejections)}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": total,
            "new_rows": len(rows),
            "valid": int(rows["valid"].sum()),
            "rejections": str(dict(rejections.most_common())),
            "failovers": int(rows["failovers"].sum()),
            "answered_by": str(answered["model"].value_counts().to_dict()),
            "median_seconds": float(answered["seconds"].median()) if len(answered) else 0.0,
        }
    )


@dg.asset(
    key=["marts", "llm_scores"],
    group_name="llm",
    pool="warehouse",
    kinds={"python", "duckdb"},
    deps=[
        dg.AssetKey(["ml", "llm_signals"]),
        dg.AssetKey(["intermediate", "int_forward_returns"]),
        dg.AssetKey(["marts", "forecasts"]),
    ],
    metadata={"dagster/column_schema": schemas.LLM_SCORES},
    description="How the LLM source's valid signals scored once their horizon passed, by answering model and for "
    "all, apart for the signals asked live (within 5 days of the close) and those backfilled (a model may know "
    "what followed a date before its training cutoff): directional accuracy (90 % bootstrap interval over dates, "
    "p-value against 0.5), what always forecasting 'up' scores on the same rows, the MSE over the random walk's, "
    "and the Diebold–Mariano test against the random walk; and every time-series forecaster scored the same way on "
    "the same (ticker, date) rows (source time_series), for the comparison. Empty until a valid signal is realised.",
)
def llm_scores(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    scores = score_signals(reads.realised_signals(warehouse), models=reads.forecasts_at_signals(warehouse))
    rows = warehouse.replace_table("marts.llm_scores", schemas.typed(scores, schemas.LLM_SCORES))
    overall = scores[
        (scores["source"] == LLM) & (scores["subject"] == ALL) & (scores["metric"] == "directional_accuracy")
    ]
    summary = {f"accuracy_{r.basis}_h{int(r.horizon)}": round(float(r.value), 4) for r in overall.itertuples()}
    return dg.MaterializeResult(metadata={"dagster/row_count": rows, **summary})
