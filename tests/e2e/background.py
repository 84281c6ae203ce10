"""The end-to-end tests' work that runs in processes of its own, started as the session starts.

* ``full`` and ``truncated``: the two warehouses of the slice (``truncated`` cut at ``CUT``), each built by
  ``python -m tests.e2e.background NAME PATH``, which runs :func:`tests.e2e.helpers.build` (the whole graph
  in that process, as the session fixtures used to build them in pytest's own);
* ``cli``: the command test's two ``python -m dagster_pmx.cli`` runs (``tests/e2e/cli_scenario.py``);
* ``reader``: the reader test's probe and three runs (``tests/e2e/reader_scenario.py``), which waits for
  the truncated build.

pytest only waits for these (the fixtures ``full``, ``truncated``, ``cli_runs`` and ``reader_runs`` in
``tests/e2e/conftest.py``), and end-to-end work runs on one core at a time: so :class:`Background` runs
what the selected tests need one after the other, in the order the tests need it, on the machine's second
core, while the tests before them run on the first (``tests/conftest.py`` starts it). A test that has to
wait for a piece also starts the next one, since its own core idles meanwhile. Each piece works in a folder
of its own, ``<session tmp>/background<N>/<name>/``, with its output in ``output.log``. This module imports
nothing heavy until a build runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: The fixture that hands tests each piece of work (a test that uses the fixture needs the piece).
FIXTURES = {"full": "full", "truncated": "truncated", "cli_runs": "cli", "reader_runs": "reader"}
#: The full build runs the LLM source against the recorded Ollama server: the first model is one it does
#: not have (every call fails over), and the 42 latest sessions of the three tickers are asked for, so the
#: signals of the first 21 are realised and scored.
#: No failover for speed (a loaded runner may stall a stream past the grace second). Fallback routing on
#: demand, backfilled signals allowed (the recorded answers are all asked long after their dates): the governed
#: book follows the LLM source on those 42 sessions.
LLM_ON = {
    "llm_models": "missing,good",
    "llm_history": 42,
    "llm_max_calls": 200,
    "llm_read_timeout": 5.0,
    "llm_failover_rate": 0.0,
    "llm_fallback": "always",
    "llm_fallback_backfill": True,
}
#: What a piece needs done first.
NEEDS = {"reader": "truncated"}
#: Seconds a test waits for a piece (and what it needs) before ending it and failing: far over what each
#: takes on a loaded 2-core machine, so a hung piece fails its tests instead of hanging the session.
WAIT_TIMEOUT = 3600


class Background:
    """One session's pieces of work, each a process working in ``folder/<name>/``."""

    def __init__(self, folder: Path):
        self.folder = folder
        # the environment as the session started: tests change os.environ as they run (monkeypatch, and
        # dbt's in-process runs swap it for theirs), and these processes start meanwhile
        # a developer's own LLM settings left out: no piece may call a real server (the full build sets its own)
        kept = {k: v for k, v in os.environ.items() if not k.startswith("PMX_LLM_")}
        self.env = {**kept, "PYTHONPATH": str(REPO)}
        self.queue: list[str] = []
        self.running: dict[str, subprocess.Popen] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run_queue, name="e2e-background", daemon=True)

    def work(self, name: str) -> Path:
        return self.folder / name

    def log(self, name: str) -> Path:
        return self.work(name) / "output.log"

    def run_in_order(self, names: list[str]) -> None:
        """Run ``names`` one after another from now on, each after what it needs."""
        for name in names:
            for piece in (NEEDS.get(name), name):
                if piece and piece not in self.queue:
                    self.queue.append(piece)
        self.thread.start()

    def _run_queue(self) -> None:
        for name in self.queue:
            proc = self.start(name)
            if proc is None:
                return
            proc.wait()

    def start(self, name: str) -> subprocess.Popen | None:
        """Start ``name`` unless it has started; its process (None once the session is over)."""
        with self.lock:
            if self.stopping.is_set():
                return None
            if name not in self.running:
                work = self.work(name)
                work.mkdir(parents=True, exist_ok=True)
                if name == "reader":
                    args = ["tests.e2e.reader_scenario", str(self.work("truncated") / "pmx.ducklake"), str(work)]
                elif name == "cli":
                    args = ["tests.e2e.cli_scenario", str(work)]
                else:
                    args = ["tests.e2e.background", name, str(work / "pmx.ducklake")]
                with self.log(name).open("w") as out:
                    self.running[name] = subprocess.Popen(
                        [sys.executable, "-m", *args],
                        cwd=REPO,
                        env=self.env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # a group of its own: stop() ends the processes it started too
                    )
            return self.running[name]

    def wait(self, name: str, timeout: float = WAIT_TIMEOUT) -> Path:
        """The folder ``name`` worked in, once it has succeeded (and what it needs first has); fails with
        the output of the piece that failed or ran past ``timeout`` seconds (then ended)."""
        need = NEEDS.get(name)
        if need:
            self.start(need)
        proc = self.start(name)
        assert proc is not None, "the session is over"
        if proc.poll() is None:  # this core would idle: the next piece in line may start on it
            waiting = [n for n in self.queue if n not in self.running]
            if waiting:
                self.start(waiting[0])
        deadline = time.time() + timeout
        if need:  # its failure is the one to report (``name`` would only wait on, or fail after, it)
            self._succeeded(need, deadline)
        self._succeeded(name, deadline)
        return self.work(name)

    def _succeeded(self, name: str, deadline: float) -> None:
        proc = self.start(name)
        assert proc is not None, "the session is over"
        try:
            code = proc.wait(timeout=max(deadline - time.time(), 0))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            raise AssertionError(f"{name} did not end in time: ended; its output:\n{self._tail(name)}") from None
        assert code == 0, f"{name} failed (exit {code}); its output:\n{self._tail(name)}"

    def _tail(self, name: str) -> str:
        return self.log(name).read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        """End what still runs (a session that ended, or was interrupted, before using it): SIGTERM to each
        piece's process group (a scenario then stops the runs it started), SIGKILL to what is left."""
        with self.lock:
            self.stopping.set()
            left = [proc for proc in self.running.values() if proc.poll() is None]
            for proc in left:
                os.killpg(proc.pid, signal.SIGTERM)
            for proc in left:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    pass
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self.thread.is_alive():
            self.thread.join(timeout=10)


def wait_for_build(warehouse: Path, timeout: float = 1800) -> None:
    """Wait until the build of ``warehouse`` (another process's) has ended; fail unless it succeeded."""
    marker = warehouse.parent / "exit"
    deadline = time.time() + timeout
    while not marker.exists():
        assert time.time() < deadline, f"no build of {warehouse} ended within {timeout:.0f} s"
        time.sleep(1.0)
    assert marker.read_text() == "0", f"the build of {warehouse} failed"


def build(name: str, path: str) -> int:
    """Build the warehouse ``name`` at ``path``; write its exit code beside it (``exit``) for those waiting."""
    code = 1
    try:  # the marker is written whatever happens here, an import's failure too
        from tests.e2e.helpers import CUT
        from tests.e2e.helpers import build as build_graph

        overrides = {"full": LLM_ON, "truncated": {"end_date": CUT}}[name]
        with ExitStack() as stack:
            if name == "full":  # the whole graph with the LLM source on, against the recorded Ollama server
                from tests.python_models.llm.ollama_server import RecordedOllama

                os.environ["PMX_LLM_HOST"] = stack.enter_context(RecordedOllama()).url
            result = build_graph(path, **overrides)
        for event in result.all_events:
            if event.event_type_value == "STEP_FAILURE":
                print(f"STEP_FAILURE {event.step_key}: {event.message}", flush=True)
        code = 0 if result.success else 1
    finally:
        (Path(path).parent / "exit").write_text(str(code))
    return code


if __name__ == "__main__":
    raise SystemExit(build(*sys.argv[1:3]))
