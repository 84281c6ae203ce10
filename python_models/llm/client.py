"""A client for an Ollama server's chat API with structured output, timing and model failover.

:class:`OllamaClient` posts to ``/api/chat`` (``stream: true``, a JSON schema in ``format``, temperature 0
and a fixed seed, so an answer can be reproduced) and reads the answer as it streams. Every call is timed:
the latency to the first token, the whole call, and the token rate (the server's own ``eval_count /
eval_duration`` when its last chunk reports them, else the chunks counted against the time since the first
one). A model is abandoned, and the next one in ``models`` asked, when

* the call fails (connection refused, an HTTP error, a chunk that is not JSON, a stream that ends without
  ``done``),
* no byte comes for ``read_timeout`` seconds or the whole call passes ``call_timeout`` seconds,
* the stream runs below ``min_token_rate`` tokens per second once ``rate_grace`` seconds have passed since
  its first token (a slow model or an overloaded server: the latency guard), or the answer's own rate is
  below it at the end.

Each attempt is a :class:`Attempt` in :attr:`ChatResult.attempts` (model, outcome, timings, the reason),
so a switch is recorded where the answer is. The host is never in a record nor in a log line: it may hold
credentials (``https://user:key@host``), and a deployment's address is not the research record's business.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3

log = logging.getLogger(__name__)

#: Outcomes of one attempt: an answer, or why the client moved on.
OUTCOMES = ("ok", "error", "timeout", "slow")


@dataclass(frozen=True)
class Attempt:
    """One model's try at a call: ``outcome`` (:data:`OUTCOMES`), ``reason`` in words when not ok, the
    seconds to the first token and in all, the tokens generated and their rate (NaN when unknown)."""

    model: str
    outcome: str
    reason: str
    first_token_s: float
    seconds: float
    tokens: int
    token_rate: float


@dataclass(frozen=True)
class ChatResult:
    """A call's answer: ``content`` (the answer's text, "" when every model failed), the ``model`` that gave
    it ("" when none did) and every :class:`Attempt` in order."""

    content: str
    model: str
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def answered(self) -> bool:
        return bool(self.model)

    @property
    def failovers(self) -> int:
        """Models abandoned on the way (the attempts that were not the answer)."""
        return sum(a.outcome != "ok" for a in self.attempts)


class _Abandon(Exception):
    """Raised inside a stream to give up on a model: ``outcome`` and ``reason`` say why."""

    def __init__(self, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.outcome, self.reason = outcome, reason


@dataclass
class OllamaClient:
    """Chat with the first of ``models`` on ``host`` that answers in time and fast enough.

    Parameters
    ----------
    host : str
        Base URL of the Ollama server (``http://127.0.0.1:11434``). Never logged.
    models : sequence of str
        Models in order of preference: the next is tried when one fails (see the module docstring).
    call_timeout : float
        Seconds a whole call to one model may take.
    read_timeout : float
        Seconds without a byte before a model is abandoned (the connection's read timeout).
    min_token_rate : float
        Tokens per second below which a model is abandoned (0: never for its speed).
    rate_grace : float
        Seconds after the first token before the stream's rate is judged (a short answer's rate is noise).
    seed : int
        Sampling seed sent with every call (with temperature 0: the same prompt, the same answer).
    """

    host: str
    models: Sequence[str]
    call_timeout: float = 30.0
    read_timeout: float = 10.0
    min_token_rate: float = 5.0
    rate_grace: float = 1.0
    seed: int = 0
    session: requests.Session = field(default_factory=requests.Session, repr=False)

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("name at least one model to chat with")
        if not self.host.startswith(("http://", "https://")):
            raise ValueError("the Ollama host must be an http(s) URL")
        if min(self.call_timeout, self.read_timeout) <= 0 or self.min_token_rate < 0 or self.rate_grace < 0:
            raise ValueError("need positive timeouts and a non-negative token rate and grace")

    def __repr__(self) -> str:  # the dataclass's would show the host
        return f"OllamaClient(models={list(self.models)!r}, min_token_rate={self.min_token_rate})"

    def chat(self, messages: list[dict[str, str]], schema: dict[str, Any] | None = None) -> ChatResult:
        """Ask the models in turn until one answers; the :class:`ChatResult` records every attempt."""
        attempts: list[Attempt] = []
        for model in self.models:
            attempt, content = self._attempt(model, messages, schema)
            attempts.append(attempt)
            if attempt.outcome == "ok":
                return ChatResult(content, model, attempts)
            log.warning("LLM model %s abandoned (%s): %s", model, attempt.outcome, attempt.reason)
        return ChatResult("", "", attempts)

    def _attempt(
        self, model: str, messages: list[dict[str, str]], schema: dict[str, Any] | None
    ) -> tuple[Attempt, str]:
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "stream": True,
            "options": {"temperature": 0, "seed": self.seed},
        }
        if schema is not None:
            body["format"] = schema
        started = time.monotonic()
        timing = _Timing(started)
        try:
            with self.session.post(
                self.host.rstrip("/") + "/api/chat",
                json=body,
                stream=True,
                timeout=(self.read_timeout, self.read_timeout),
            ) as response:
                if response.status_code != 200:
                    raise _Abandon("error", f"HTTP {response.status_code}: {_error_text(response)}")
                # chunk_size None: each chunk as it arrives (a fixed size would wait for that many bytes)
                content = self._read(response.iter_lines(chunk_size=None), timing)  # type: ignore[call-overload]
        except _Abandon as stop:
            return timing.attempt(model, stop.outcome, stop.reason), ""
        except requests.Timeout:
            return timing.attempt(model, "timeout", f"no byte for {self.read_timeout:g} s"), ""
        except requests.ConnectionError as exc:
            # a stall mid-stream: requests raises urllib3's read timeout from the body as a ConnectionError
            if any(isinstance(arg, urllib3.exceptions.ReadTimeoutError) for arg in exc.args):
                return timing.attempt(model, "timeout", f"no byte for {self.read_timeout:g} s mid-answer"), ""
            return timing.attempt(model, "error", type(exc).__name__), ""  # the message can hold the host
        except requests.RequestException as exc:
            return timing.attempt(model, "error", type(exc).__name__), ""  # the message can hold the host
        rate = timing.rate()
        if self.min_token_rate and rate == rate and rate < self.min_token_rate:
            return timing.attempt(model, "slow", f"{rate:.1f} tokens/s < {self.min_token_rate:g}"), ""
        return timing.attempt(model, "ok", ""), content

    def _read(self, lines: Iterator[bytes], timing: _Timing) -> str:
        """The answer's text from the stream's chunks, judging the time and the rate as they come."""
        parts: list[str] = []
        for line in lines:
            now = time.monotonic()
            if now - timing.started > self.call_timeout:
                raise _Abandon("timeout", f"the call passed {self.call_timeout:g} s")
            if not line:
                continue
            try:
                chunk = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _Abandon("error", "a chunk of the stream is not JSON") from exc
            if "error" in chunk:
                raise _Abandon("error", f"the server says: {str(chunk['error'])[:200]}")
            piece = chunk.get("message", {}).get("content", "")
            if piece:
                timing.token(now)
                parts.append(piece)
            if chunk.get("done"):
                timing.finish(now, chunk)
                return "".join(parts)
            rate = timing.rate(now)
            if self.min_token_rate and now - timing.first >= self.rate_grace and rate < self.min_token_rate:
                raise _Abandon(
                    "slow", f"{rate:.1f} tokens/s < {self.min_token_rate:g} after {now - timing.first:.1f} s"
                )
        raise _Abandon("error", "the stream ended before the answer was done")


class _Timing:
    """When a stream's tokens came, and what the server reported at its end."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.first = float("nan")
        self.last = started
        self.chunks = 0
        self.eval_count: int | None = None
        self.eval_seconds: float | None = None

    def token(self, now: float) -> None:
        if self.chunks == 0:
            self.first = now
        self.chunks += 1
        self.last = now

    def finish(self, now: float, chunk: dict[str, Any]) -> None:
        self.last = now
        if isinstance(chunk.get("eval_count"), int) and chunk.get("eval_duration"):
            self.eval_count, self.eval_seconds = chunk["eval_count"], chunk["eval_duration"] / 1e9

    def rate(self, now: float | None = None) -> float:
        """Tokens per second: the server's own figure when it gave one, else the chunks since the first."""
        if self.eval_count is not None and self.eval_seconds:
            return self.eval_count / self.eval_seconds
        if self.chunks == 0:
            return float("nan")
        span = (now if now is not None else self.last) - self.first
        # the chunks after the first over the time since it (one chunk alone has no rate)
        return (self.chunks - 1) / span if span > 0 else float("nan")

    def attempt(self, model: str, outcome: str, reason: str) -> Attempt:
        return Attempt(
            model=model,
            outcome=outcome,
            reason=reason,
            first_token_s=self.first - self.started if self.chunks else float("nan"),
            seconds=time.monotonic() - self.started,
            tokens=self.eval_count if self.eval_count is not None else self.chunks,
            token_rate=self.rate(),
        )


def _error_text(response: requests.Response) -> str:
    try:
        return str(response.json().get("error", ""))[:200]
    except ValueError:
        return response.text[:200]
