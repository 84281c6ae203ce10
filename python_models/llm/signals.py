"""LLM signals: the prompt (only what was known at the signal date's close), its hash, and the validation
layers an answer passes before it may trade.

:func:`build_prompt` writes the messages from a :class:`PromptInputs` (a ticker's features, the models'
forecasts and the regime probabilities at one close, all read point in time by the caller) and
:func:`digest` hashes them and the raw answer, so a stored signal can be audited and asked again.

:func:`validate` runs the layers in order and stops at the first that fails, whose name is the stored
``rejection``:

``empty``
    no answer, or only whitespace (every model failed, or the model said nothing);
``malformed_json``
    the answer is not one JSON object;
``refusal``
    the model declined: an answer that is not JSON and says so, or a ``reason`` that says so beside no forecast
    (no ``direction``, or flat with confidence 0); a forecast whose reason merely contains such words (a price
    "unable to break resistance") is judged as a forecast;
``schema``
    a field missing or of the wrong type, a ``direction`` not in :data:`DIRECTIONS`;
``range``
    ``confidence`` outside [0, 1], ``|expected_return|`` above :attr:`ValidationRules.max_abs_return`;
``inconsistent``
    the direction and the expected return's sign disagree, or the expected return is further than
    :attr:`ValidationRules.max_sigmas` standard deviations of the horizon's return from 0 at the ticker's
    volatility on that date (the price data of the signal date);
``low_confidence``
    ``confidence`` below :attr:`ValidationRules.min_confidence` (0.55, the governance's bar);
``flip_flopping``
    the direction changed more than :attr:`ValidationRules.max_flips` times over the ticker's last
    :attr:`ValidationRules.flip_window` valid signals, this one included.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Directions an answer may give.
DIRECTIONS = ("up", "down", "flat")
#: The validation layers, in the order they run (see the module docstring).
LAYERS = ("empty", "malformed_json", "refusal", "schema", "range", "inconsistent", "low_confidence", "flip_flopping")
#: The structured output asked of the model (Ollama's ``format``).
SIGNAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "direction": {"type": "string", "enum": list(DIRECTIONS)},
        "expected_return": {"type": "number"},
        "confidence": {"type": "number"},
        "reason": {"type": "string"},
    },
    "required": ["direction", "expected_return", "confidence", "reason"],
}
#: The marts.features columns a prompt shows (interpretable ones: returns, volatility, trend, the market).
PROMPT_FEATURES = (
    "ret_1d",
    "ret_5d",
    "ret_21d",
    "ret_63d",
    "ret_252d",
    "realized_vol_21",
    "volatility_ratio_10_63",
    "drawdown",
    "rsi_14",
    "bollinger_position",
    "dist_52w_high",
    "trend_regime",
    "beta_63",
    "market_return_1d",
    "market_vol_21",
    "xs_rank_ret_21d",
)
#: Words that make an answer a refusal rather than a forecast.
REFUSAL_MARKERS = ("i cannot", "i can't", "i can not", "unable to", "not able to", "financial advice", "i won't")

SYSTEM_PROMPT = (
    "You are a quantitative analyst. From the data given, all known at the close of the signal date, forecast "
    "the stock's total return over the horizon (a simple return, as the data's returns and model forecasts are). "
    "Answer with one JSON object: direction (up, down or flat), expected_return (a decimal simple return over the "
    "horizon, e.g. 0.012), confidence (0 to 1, the probability that the direction is right) and reason (one "
    "sentence). Use no information from after the signal date."
)


@dataclass(frozen=True)
class PromptInputs:
    """What the prompt may say about one ticker at one close: ``features`` (name -> value, from
    ``marts.features`` at the date), ``forecasts`` (model -> expected simple return over the horizon, made at
    the date), ``regimes`` (regime -> filtered probability at the date)."""

    ticker: str
    date: str
    horizon: int
    features: Mapping[str, float]
    forecasts: Mapping[str, float] = field(default_factory=dict)
    regimes: Mapping[str, float] = field(default_factory=dict)


def build_prompt(inputs: PromptInputs) -> list[dict[str, str]]:
    """The chat messages for one signal: the system prompt and the close's data as sorted JSON (NaN left out:
    a missing value is missing, not a number), the same bytes for the same inputs."""
    data = {
        "ticker": inputs.ticker,
        "signal_date": inputs.date,
        "horizon_sessions": inputs.horizon,
        "features": _finite(inputs.features),
        "model_forecasts": _finite(inputs.forecasts),
        "regime_probabilities": _finite(inputs.regimes),
    }
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": json.dumps(data, sort_keys=True, separators=(",", ":"))},
    ]


def digest(value: Any) -> str:
    """SHA-256 of ``value``: a string's UTF-8 bytes, anything else's sorted compact JSON."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ValidationRules:
    """The bounds the layers apply (see the module docstring)."""

    min_confidence: float = 0.55
    max_abs_return: float = 0.5
    max_sigmas: float = 5.0
    flat_band: float = 0.001
    flip_window: int = 21
    max_flips: int = 4


@dataclass(frozen=True)
class Verdict:
    """An answer judged: ``rejection`` (a layer of :data:`LAYERS`, None when it passed), the reason in words,
    and the parsed signal (``direction``, ``expected_return``, ``confidence``, ``reason``; empty when it did
    not parse)."""

    rejection: str | None
    detail: str
    signal: dict[str, Any]

    @property
    def valid(self) -> bool:
        return self.rejection is None


def validate(
    content: str,
    daily_volatility: float,
    horizon: int,
    previous_directions: Sequence[str] = (),
    rules: ValidationRules = ValidationRules(),
) -> Verdict:
    """Judge one answer (see the module docstring for the layers).

    Parameters
    ----------
    content : str
        The model's raw answer.
    daily_volatility : float
        The ticker's daily return volatility at the signal date (its 21-session realised volatility); NaN
        skips the magnitude check.
    horizon : int
        Sessions the expected return covers.
    previous_directions : sequence of str
        The directions of the ticker's earlier valid signals, oldest first.
    """
    if not content or not content.strip():
        return Verdict("empty", "no answer", {})
    try:
        answer = json.loads(content)
    except json.JSONDecodeError as exc:
        if _declines(content):
            return Verdict("refusal", f"the model declined: {content.strip()[:200]}", {})
        return Verdict("malformed_json", f"not JSON: {exc.msg} at {exc.pos}", {})
    if not isinstance(answer, dict):
        return Verdict("malformed_json", f"a JSON {type(answer).__name__}, not an object", {})
    reason = answer.get("reason")
    no_forecast = answer.get("direction") not in ("up", "down") and not answer.get("confidence")
    if isinstance(reason, str) and _declines(reason) and no_forecast:
        return Verdict("refusal", f"the model declined: {reason[:200]}", {})
    problem = _schema_problem(answer)
    if problem:
        return Verdict("schema", problem, {})
    signal = {k: answer[k] for k in ("direction", "expected_return", "confidence", "reason")}
    signal["expected_return"], signal["confidence"] = float(signal["expected_return"]), float(signal["confidence"])
    er, confidence = signal["expected_return"], signal["confidence"]
    if not (math.isfinite(confidence) and 0.0 <= confidence <= 1.0):
        return Verdict("range", f"confidence {confidence} outside [0, 1]", signal)
    if not (math.isfinite(er) and abs(er) <= rules.max_abs_return):
        return Verdict("range", f"|expected_return| {abs(er):.4g} > {rules.max_abs_return}", signal)
    expected_sign = {"up": 1, "down": -1, "flat": 0}[signal["direction"]]
    sign = 0 if abs(er) <= rules.flat_band else (1 if er > 0 else -1)
    if sign != expected_sign:
        return Verdict("inconsistent", f"direction {signal['direction']} with expected_return {er:.4g}", signal)
    if math.isfinite(daily_volatility) and daily_volatility > 0:
        scale = daily_volatility * math.sqrt(horizon)
        if abs(er) > rules.max_sigmas * scale:
            return Verdict(
                "inconsistent",
                f"expected_return {er:.4g} is {abs(er) / scale:.1f} sd of the {horizon}-session return at the date's "
                f"volatility (> {rules.max_sigmas})",
                signal,
            )
    if confidence < rules.min_confidence:
        return Verdict("low_confidence", f"confidence {confidence:.2f} < {rules.min_confidence}", signal)
    recent = [*previous_directions][-(rules.flip_window - 1) :] + [signal["direction"]]
    flips = sum(a != b for a, b in zip(recent, recent[1:], strict=False))
    if flips > rules.max_flips:
        return Verdict("flip_flopping", f"{flips} changes of direction in {len(recent)} signals", signal)
    return Verdict(None, "", signal)


def _declines(text: str) -> bool:
    return any(marker in text.lower() for marker in REFUSAL_MARKERS)


def _schema_problem(answer: dict[str, Any]) -> str:
    for name, kinds in (("direction", (str,)), ("expected_return", (int, float)), ("confidence", (int, float))):
        value = answer.get(name)
        if value is None:
            return f"{name} missing"
        if isinstance(value, bool) or not isinstance(value, kinds):
            return f"{name} is a {type(value).__name__}"
    if answer["direction"] not in DIRECTIONS:
        return f"direction {answer['direction']!r} not one of {DIRECTIONS}"
    if not isinstance(answer.get("reason"), str):
        return "reason missing or not text"
    return ""


def _finite(values: Mapping[str, float]) -> dict[str, float]:
    out = {}
    for k, v in values.items():
        x = float(v)
        if math.isfinite(x):
            out[str(k)] = round(x, 6)
    return out
