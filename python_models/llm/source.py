"""Ask the LLM for a batch of signals and judge each answer: the rows of ``ml.llm_signals``.

Every call is kept, valid or not (an LLM's answer cannot be reproduced at will, so nothing it said is thrown
away): the prompt and its hash, the raw answer and its hash, the verdict of
:func:`~python_models.llm.signals.validate` and the client's attempts (the models tried, why each was
abandoned, the timings).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from python_models.llm.client import ChatResult, OllamaClient
from python_models.llm.signals import SIGNAL_SCHEMA, PromptInputs, ValidationRules, build_prompt, digest, validate

#: The columns of ``ml.llm_signals``, in order.
COLUMNS = [
    "ticker",
    "date",
    "horizon",
    "model",
    "direction",
    "expected_return",
    "confidence",
    "reason",
    "valid",
    "rejection",
    "rejection_detail",
    "prompt",
    "prompt_hash",
    "answer",
    "answer_hash",
    "attempts",
    "failovers",
    "seconds",
    "first_token_s",
    "token_rate",
    "attempt_log",
    "called_at",
]


@dataclass(frozen=True)
class SignalRequest:
    """One signal to ask for: the prompt's inputs and the ticker's daily volatility at the date (NaN: unknown)."""

    inputs: PromptInputs
    daily_volatility: float


def ask(
    client: OllamaClient,
    requests: Iterable[SignalRequest],
    previous: Mapping[str, Sequence[str]] | None = None,
    rules: ValidationRules | None = None,
    give_up_after: int | None = None,
) -> pd.DataFrame:
    """Ask for each request in turn (oldest first for a ticker: its flips count in order) and judge each answer.

    ``previous`` holds each ticker's earlier valid directions, oldest first; the valid signals of this batch
    join them as they come. With ``give_up_after``, the batch stops once that many calls in a row got no answer
    from any model (a server down: each further call would wait out its timeouts). Returns one row per request
    asked (:data:`COLUMNS`).
    """
    rules = rules or ValidationRules()
    history = {ticker: list(directions) for ticker, directions in (previous or {}).items()}
    rows: list[dict] = []
    unanswered = 0
    for request in requests:
        if give_up_after is not None and unanswered >= give_up_after:
            break
        inputs = request.inputs
        messages = build_prompt(inputs)
        result = client.chat(messages, SIGNAL_SCHEMA)
        unanswered = 0 if result.answered else unanswered + 1
        verdict = validate(
            result.content, request.daily_volatility, inputs.horizon, history.get(inputs.ticker, ()), rules
        )
        if verdict.valid:
            history.setdefault(inputs.ticker, []).append(verdict.signal["direction"])
        rows.append(_row(inputs, messages, result, verdict.rejection, verdict.detail, verdict.signal))
    return pd.DataFrame(rows, columns=COLUMNS)


def _row(
    inputs: PromptInputs,
    messages: list[dict[str, str]],
    result: ChatResult,
    rejection: str | None,
    detail: str,
    signal: dict,
) -> dict:
    answered = next((a for a in result.attempts if a.outcome == "ok"), None)
    return {
        "ticker": inputs.ticker,
        "date": pd.Timestamp(inputs.date),
        "horizon": inputs.horizon,
        "model": result.model,
        "direction": signal.get("direction"),
        "expected_return": signal.get("expected_return", np.nan),
        "confidence": signal.get("confidence", np.nan),
        "reason": signal.get("reason"),
        "valid": rejection is None,
        "rejection": rejection,
        "rejection_detail": detail or None,
        "prompt": messages[-1]["content"],
        "prompt_hash": digest(messages),
        "answer": result.content,
        "answer_hash": digest(result.content),
        "attempts": len(result.attempts),
        "failovers": result.failovers,
        "seconds": answered.seconds if answered else np.nan,
        "first_token_s": answered.first_token_s if answered else np.nan,
        "token_rate": answered.token_rate if answered else np.nan,
        "attempt_log": json.dumps([asdict(a) for a in result.attempts], allow_nan=True),
        "called_at": pd.Timestamp.now(tz="UTC").tz_localize(None),
    }
