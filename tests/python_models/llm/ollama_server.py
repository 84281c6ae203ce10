"""A local HTTP server that speaks Ollama's chat API with recorded answers (tests/fixtures/ollama).

``POST /api/chat`` answers with the recording named by the request's ``model``: its HTTP status, and for
200 its chunks one JSON line at a time, each after its ``delay`` (a ``hang`` first waits before the
headers: a server that accepted the call and went quiet); a recording with a ``cycle`` of names answers each
prompt with one of them, picked by the SHA-256 of the request's messages. ``GET /api/tags`` lists the
recordings as models.
Every request body is kept in :attr:`RecordedOllama.requests`. Nothing reaches the network: it binds
127.0.0.1 on a free port.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RECORDINGS = Path(__file__).parents[2] / "fixtures" / "ollama" / "recorded_chat.json"


class RecordedOllama:
    """Serve the recordings on 127.0.0.1 while in a ``with`` block; :attr:`url` is the base URL."""

    def __init__(self, recordings: Path = RECORDINGS) -> None:
        self.recordings = {k: v for k, v in json.loads(recordings.read_text()).items() if not k.startswith("_")}
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # Ollama streams with chunked transfer encoding, a chunk a line

            def log_message(self, *args) -> None:  # quiet
                pass

            def handle(self) -> None:
                try:
                    super().handle()
                except (ConnectionResetError, BrokenPipeError):  # a client that closed its kept-alive connection
                    self.close_connection = True

            def do_GET(self) -> None:  # noqa: N802 (the handler's API)
                if self.path != "/api/tags":
                    self.send_error(404)
                    return
                body = json.dumps({"models": [{"name": name} for name in server.recordings]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(request)
                recording = server.recordings.get(request.get("model"), {"status": 404, "body": {"error": "no such"}})
                if "cycle" in recording:  # one of several recordings, the same for the same prompt
                    key = hashlib.sha256(json.dumps(request.get("messages"), sort_keys=True).encode()).digest()
                    recording = server.recordings[recording["cycle"][int.from_bytes(key[:4]) % len(recording["cycle"])]]
                time.sleep(recording.get("hang", 0.0))
                if recording["status"] != 200:
                    body = json.dumps(recording["body"]).encode()
                    self.send_response(recording["status"])
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for part in recording["stream"]:
                        time.sleep(part["delay"])
                        line = (part["raw"] if "raw" in part else json.dumps(part["chunk"])).encode() + b"\n"
                        self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):  # the client gave up on a slow stream
                    self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> RecordedOllama:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
