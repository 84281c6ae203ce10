"""A throwaway PostgreSQL server for the tests of a team's set-up (a DuckLake catalog in PostgreSQL).

The server comes from Debian's ``postgresql`` package (``apt-get install -y postgresql``): its programs
live in ``/usr/lib/postgresql/<version>/bin``, off PATH. Without them the tests that need a server are
skipped, unless PMX_REQUIRE_POSTGRES=1 (CI sets it), which makes the absence a failure.

PostgreSQL refuses to run as root, and CI runs the tests as root: the server then runs as the
``postgres`` account the package creates (else ``nobody``), from a folder handed to that account. It
listens on 127.0.0.1 only, on a port free when it starts, with ``trust`` authentication, and without
fsync (a test server: nothing is worth keeping after a crash). It is stopped, and its folder removed,
when the session ends.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: The role the tests connect as (created by initdb as the superuser; trusted, no password).
USER = "pmx"
#: Settings that make a throwaway server fast to start and to write to; none of them is for production.
FAST_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
}

_databases = itertools.count(1)


def postgres_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``postgres``: one on PATH, else the newest Debian install."""
    on_path = shutil.which("initdb")
    folders = [Path(on_path).resolve().parent] if on_path else []

    def version(folder: str) -> float:
        found = re.search(r"/postgresql/(\d+(?:\.\d+)?)/bin", folder)
        return float(found.group(1)) if found else 0.0

    folders += [Path(f) for f in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)]
    for folder in folders:
        if all((folder / program).is_file() for program in ("initdb", "postgres", "pg_isready", "createdb")):
            return folder
    return None


def server_account() -> str | None:
    """The account the server runs as: None (this one) unless this is root, which PostgreSQL refuses."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root, and neither a 'postgres' nor a 'nobody' account exists to run PostgreSQL")


def free_port() -> int:
    """A loopback port no one listens on now (the server may still lose it to a race: then it is retried)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PostgresServer:
    """A running server: its binaries, port and folder; :meth:`create_database` gives each test its own catalog."""

    binaries: Path
    port: int
    folder: Path
    process: subprocess.Popen

    def dsn(self, database: str) -> str:
        """The libpq connection string of ``database`` (what follows ``postgres:`` in pmx's ``catalog``)."""
        return f"dbname={database} host=127.0.0.1 port={self.port} user={USER}"

    def create_database(self, purpose: str) -> str:
        """Create an empty database named after ``purpose`` (and numbered: names never repeat in a session)
        and return its DSN."""
        name = f"pmx_{next(_databases)}_" + re.sub(r"[^a-z0-9]+", "_", purpose.lower())[:40].strip("_")
        subprocess.run(
            [self.binaries / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name],
            check=True,
            capture_output=True,
            text=True,
        )
        return self.dsn(name)

    def log(self) -> str:
        """The server's log so far (for a failure's message)."""
        file = self.folder / "server.log"
        return file.read_text(errors="replace") if file.exists() else ""

    def stop(self) -> None:
        """Fast shutdown (SIGINT: sessions are ended, nothing is kept waiting), then the folder goes."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_server(binaries: Path, attempts: int = 3) -> PostgresServer:
    """initdb a cluster in a new temporary folder and start ``postgres`` on it; waits until it accepts
    connections. A port taken between choosing and binding it is retried with another."""
    account = server_account()
    # the folder must be the server account's own (initdb insists), and reachable by it: not under
    # pytest's root-only basetemp when this is root
    folder = Path(tempfile.mkdtemp(prefix="pmx-postgres-"))
    as_account: dict = {}
    if account is not None:
        entry = pwd.getpwnam(account)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        as_account = dict(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
    data = folder / "data"
    environment = {**os.environ, "LC_ALL": "C", "HOME": str(folder)}
    subprocess.run(
        [binaries / "initdb", "-D", data, "-U", USER, "--auth=trust", "--no-sync", "-E", "UTF8", "--no-instructions"],
        check=True,
        capture_output=True,
        text=True,
        env=environment,
        cwd=folder,
        **as_account,
    )
    for _ in range(attempts):
        port = free_port()
        settings = {**FAST_SETTINGS, "port": str(port), "unix_socket_directories": str(folder)}
        command = [binaries / "postgres", "-D", data]
        for key, value in settings.items():
            command += ["-c", f"{key}={value}"]
        with open(folder / "server.log", "ab") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=folder, **as_account
            )
        server = PostgresServer(binaries=binaries, port=port, folder=folder, process=process)
        if wait_until_ready(server):
            return server
        if process.poll() is None:
            process.kill()
        process.wait()
    log = (folder / "server.log").read_text(errors="replace")
    shutil.rmtree(folder, ignore_errors=True)
    raise RuntimeError(f"PostgreSQL did not start ({attempts} attempts); its log:\n{log[-4000:]}")


def wait_until_ready(server: PostgresServer, timeout: float = 30.0) -> bool:
    """Whether the server accepts connections within ``timeout`` seconds (False as soon as it exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        ready = subprocess.run(
            [server.binaries / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(server.port), "-U", USER],
            capture_output=True,
        )
        if ready.returncode == 0:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session, stopped at its end."""
    binaries = postgres_binaries()
    if binaries is None:
        if os.environ.get("PMX_REQUIRE_POSTGRES") == "1":
            pytest.fail("PMX_REQUIRE_POSTGRES=1 but no PostgreSQL server binaries (apt-get install -y postgresql)")
        pytest.skip("Debian's postgresql is not installed (apt-get install -y postgresql); CI installs it")
    server = start_server(binaries)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_catalog(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """The libpq DSN of a new, empty database for this test: a lake's catalog of its own
    (``Lake(catalog="postgres:" + dsn, ...)``), so no test sees another's snapshots."""
    return postgres_server.create_database(request.node.name)
