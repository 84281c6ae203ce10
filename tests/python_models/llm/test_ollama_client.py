"""The Ollama client against a local server that speaks the chat API with recorded answers: good answers,
failover on errors, timeouts and slow token streams, and what each attempt records."""

import json
import logging
import math

import pytest

from python_models.llm.client import OllamaClient
from python_models.llm.signals import SIGNAL_SCHEMA, PromptInputs, build_prompt
from tests.python_models.llm.ollama_server import RecordedOllama

MESSAGES = build_prompt(PromptInputs("AAPL", "2020-03-16", 21, {"ret_21d": -0.18, "realized_vol_21": 0.9}))


@pytest.fixture(scope="module")
def server():
    with RecordedOllama() as running:
        yield running


def _client(server, *models, **settings) -> OllamaClient:
    return OllamaClient(server.url, models, **{"read_timeout": 1.0, "call_timeout": 5.0, **settings})


def test_a_good_answer_is_read_from_the_stream_with_its_timings(server):
    result = _client(server, "good").chat(MESSAGES, SIGNAL_SCHEMA)
    assert result.answered and result.model == "good" and result.failovers == 0
    assert json.loads(result.content)["direction"] == "up"
    (attempt,) = result.attempts
    assert attempt.outcome == "ok" and attempt.tokens == 28
    assert attempt.token_rate == pytest.approx(28 / 0.4)  # the server's eval_count / eval_duration
    assert 0 < attempt.first_token_s <= attempt.seconds < 2
    sent = server.requests[-1]
    assert sent["format"] == SIGNAL_SCHEMA and sent["stream"] is True and sent["messages"] == MESSAGES
    assert sent["options"] == {"temperature": 0, "seed": 0}


@pytest.mark.parametrize(
    ("first", "outcome", "reason"),
    [
        ("missing", "error", "HTTP 404: model 'missing' not found"),
        ("hang", "timeout", "no byte for 1 s"),
        ("stall", "timeout", "no byte for 1 s mid-answer"),
        ("slow", "slow", "tokens/s < 5"),  # abandoned mid-stream, after the grace second
        ("slow_reported", "slow", "2.0 tokens/s < 5"),  # fast chunks, but the server's own rate is 2/s
        ("broken", "error", "ended before the answer was done"),
        ("bad_chunk", "error", "not JSON"),
    ],
)
def test_the_client_fails_over_to_the_next_model_and_records_why(server, first, outcome, reason, caplog):
    with caplog.at_level(logging.WARNING, logger="python_models.llm.client"):
        result = _client(server, first, "good").chat(MESSAGES, SIGNAL_SCHEMA)
    assert result.model == "good" and result.failovers == 1
    failed, answered = result.attempts
    assert (failed.model, failed.outcome) == (first, outcome) and reason in failed.reason
    assert answered.outcome == "ok"
    assert server.url not in caplog.text and "127.0.0.1" not in caplog.text  # hosts are never logged
    assert first in caplog.text


def test_a_slow_stream_is_abandoned_soon_after_the_grace_not_at_its_end(server):
    result = _client(server, "slow").chat(MESSAGES)
    (attempt,) = result.attempts
    # ten chunks 0.45 s apart would take 4.5 s; the rate is judged from the first token + 1 s on
    assert attempt.outcome == "slow" and attempt.seconds < 2.5
    assert attempt.token_rate < 5 and attempt.tokens >= 2


def test_when_every_model_fails_there_is_no_answer(server):
    result = _client(server, "missing", "hang").chat(MESSAGES)
    assert not result.answered and result.content == "" and result.model == ""
    assert [a.outcome for a in result.attempts] == ["error", "timeout"]


def test_an_unreachable_host_is_an_error_that_does_not_name_it(caplog):
    client = OllamaClient("http://user:secret@127.0.0.1:9", ["good"], read_timeout=1.0)  # port 9: nothing listens
    with caplog.at_level(logging.WARNING, logger="python_models.llm.client"):
        result = client.chat(MESSAGES)
    (attempt,) = result.attempts
    assert attempt.outcome == "error" and attempt.reason == "ConnectionError" and math.isnan(attempt.token_rate)
    assert "secret" not in caplog.text and "secret" not in repr(client) and "secret" not in repr(result)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="at least one model"):
        OllamaClient("http://127.0.0.1:11434", [])
    with pytest.raises(ValueError, match="http"):
        OllamaClient("127.0.0.1:11434", ["m"])
    with pytest.raises(ValueError, match="positive timeouts"):
        OllamaClient("http://127.0.0.1:11434", ["m"], call_timeout=0)
