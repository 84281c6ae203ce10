"""The LLM signal's prompt and hashes, and each validation layer on hand answers and on the recorded ones."""

import hashlib
import json
import math

import pytest

from python_models.llm.client import OllamaClient
from python_models.llm.signals import LAYERS, PromptInputs, ValidationRules, build_prompt, digest, validate
from tests.python_models.llm.ollama_server import RecordedOllama

INPUTS = PromptInputs(
    "AAPL",
    "2020-03-16",
    21,
    {"ret_21d": -0.1834567891, "realized_vol_21": 0.91, "rsi_14": float("nan")},
    {"garch": -0.004, "ensemble": 0.002},
    {"0": 0.1, "3": 0.9},
)
VOL = 0.02  # daily volatility: one sd of a 21-session return is 0.0917


def _answer(**fields) -> str:
    base = {"direction": "up", "expected_return": 0.02, "confidence": 0.7, "reason": "Trend and models agree."}
    return json.dumps({**base, **fields})


def test_the_prompt_holds_the_closes_data_only_and_hashes_the_same_every_time():
    messages = build_prompt(INPUTS)
    data = json.loads(messages[1]["content"])
    assert data == {
        "ticker": "AAPL",
        "signal_date": "2020-03-16",
        "horizon_sessions": 21,
        "features": {"realized_vol_21": 0.91, "ret_21d": -0.183457},  # NaN left out, six decimals
        "model_forecasts": {"ensemble": 0.002, "garch": -0.004},
        "regime_probabilities": {"0": 0.1, "3": 0.9},
    }
    assert messages[0]["role"] == "system" and "after the signal date" in messages[0]["content"]
    assert build_prompt(INPUTS) == messages
    canonical = json.dumps(messages, sort_keys=True, separators=(",", ":"))
    assert digest(messages) == hashlib.sha256(canonical.encode()).hexdigest()
    assert digest("raw answer") == hashlib.sha256(b"raw answer").hexdigest()
    other = PromptInputs("AAPL", "2020-03-16", 21, {"ret_21d": -0.18})
    assert digest(build_prompt(other)) != digest(messages)


@pytest.mark.parametrize(
    ("content", "rejection", "detail"),
    [
        ("", "empty", "no answer"),
        ("   \n", "empty", "no answer"),
        ('{"direction": "up", "expected_return": 0.01', "malformed_json", "not JSON"),
        ("[1, 2]", "malformed_json", "a JSON list"),
        (
            _answer(direction="flat", expected_return=0, confidence=0, reason="I can't give financial advice."),
            "refusal",
            "declined",
        ),
        ("I'm sorry, but I cannot predict stock prices.", "refusal", "declined"),
        (_answer(reason="The price was unable to break resistance; the models agree."), None, ""),  # a forecast
        (json.dumps({"reason": "I am unable to forecast stock prices."}), "refusal", "declined"),
        (_answer(direction=None), "schema", "direction missing"),
        (_answer(direction="sideways"), "schema", "not one of"),
        (_answer(confidence="high"), "schema", "confidence is a str"),
        (_answer(expected_return=True), "schema", "expected_return is a bool"),
        (_answer(reason=None), "schema", "reason"),
        (_answer(confidence=1.3), "range", "outside [0, 1]"),
        (_answer(expected_return=0.9), "range", "> 0.5"),
        (_answer(direction="down"), "inconsistent", "direction down with expected_return 0.02"),
        (_answer(direction="flat", expected_return=0.0005), None, ""),  # inside the flat band
        (_answer(expected_return=0.48), "inconsistent", "5.2 sd"),
        (_answer(confidence=0.5), "low_confidence", "0.50 < 0.55"),
        (_answer(), None, ""),
    ],
)
def test_each_layer_rejects_what_it_should_and_names_itself(content, rejection, detail):
    verdict = validate(content, VOL, 21)
    assert verdict.rejection == rejection and detail in verdict.detail
    assert verdict.valid == (rejection is None)
    if rejection is None:
        assert set(verdict.signal) == {"direction", "expected_return", "confidence", "reason"}
    assert rejection is None or rejection in LAYERS


def test_flip_flopping_counts_the_changes_over_the_window_this_signal_included():
    rules = ValidationRules(flip_window=6, max_flips=3)
    steady = ["up", "up", "down", "down", "up"]
    assert validate(_answer(), VOL, 21, steady, rules).valid  # up: 2 changes in the last 6
    zigzag = ["up", "down", "up", "down", "up"]
    verdict = validate(_answer(direction="down", expected_return=-0.02), VOL, 21, zigzag, rules)
    assert verdict.rejection == "flip_flopping" and "5 changes" in verdict.detail
    old_zigzag = ["down", "up", "down", "up", *["up"] * 5]  # the changes are older than the window
    assert validate(_answer(), VOL, 21, old_zigzag, rules).valid


def test_the_magnitude_check_waits_for_a_volatility():
    assert validate(_answer(expected_return=0.48), math.nan, 21).valid
    assert validate(_answer(expected_return=0.48), 0.2, 21).valid  # 0.48 is 0.5 sd at 20 % a day


def test_the_recorded_answers_through_the_client_and_the_layers():
    rejections = {}
    with RecordedOllama() as server:
        for model in ("good", "good_down", "malformed", "refusal", "empty"):
            result = OllamaClient(server.url, [model], read_timeout=2.0).chat(build_prompt(INPUTS))
            rejections[model] = validate(result.content, VOL, 21).rejection
    assert rejections == {
        "good": None,
        "good_down": None,
        "malformed": "malformed_json",
        "refusal": "refusal",
        "empty": "empty",
    }
