"""The Dagster UI as a user meets it: `dagster dev` on a temporary warehouse, an asset group's graph in
headless Chromium (driven by Playwright), its "Materialize all" button clicked, and the run seen to succeed
(its status read through the UI's GraphQL API, then on the run's page).

Screenshots land in the test's output folder (PMX_UI_SCREENSHOTS, else pytest's tmp_path).
Without Debian's ``chromium`` the test is skipped, unless PMX_REQUIRE_BROWSER=1 (CI sets it).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.e2e.helpers import read

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("PMX_REQUIRE_BROWSER") != "1",
    reason="Debian's chromium is not installed (apt-get install chromium); CI installs it",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.load(response)
    assert "errors" not in payload, payload
    return payload["data"]


def wait_until(condition, timeout: float, what: str, proc: subprocess.Popen, log: Path):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"dagster dev exited ({proc.returncode}) while waiting for {what}:\n{log.read_text()[-3000:]}"
            )
        try:
            value = condition()
            if value:
                return value
        except OSError:
            pass
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


RUN = "query Run($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
RUNS = "{ runsOrError { ... on Runs { results { runId } } } }"
ASSETS = "{ assetNodes { assetKey { path } groupName description } }"


def dismiss_dialogs(page) -> None:
    """Close whatever dialog Dagster lays over the page, as a user would, whenever one appears.

    A new browser profile is greeted by Dagster's community pop-up, and it may open after the page has
    settled (CI once saw it cover "Materialize all" mid-click). Playwright calls this handler before any
    action or assertion while a Blueprint backdrop is visible, then waits for the backdrop to go.
    """

    def close(_backdrop) -> None:
        for name in ("Skip", "Dismiss", "Close", "Got it"):
            button = page.get_by_role("button", name=name)
            if button.count() and button.first.is_visible():
                button.first.click()
                return
        page.keyboard.press("Escape")

    page.add_locator_handler(page.locator(".dagster-backdrop, .bp5-overlay-backdrop").first, close)


def test_the_ui_shows_the_graph_and_runs_a_materialization(tmp_path):
    shots = Path(os.environ.get("PMX_UI_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_pmx" / "dagster.yaml", home / "dagster.yaml")
    warehouse = tmp_path / "pmx.ducklake"
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PMX_WAREHOUSE": str(warehouse),
        "PMX_TICKERS": "AAPL,JPM",
        "PYTHONPATH": str(REPO),
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }
    log = tmp_path / "dagster_dev.log"
    dagster = str(Path(sys.executable).with_name("dagster"))
    command = [dagster, "dev", "-m", "dagster_pmx.definitions", "-h", "127.0.0.1", "-p", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        nodes = wait_until(lambda: graphql(port, ASSETS)["assetNodes"], 240, "the code location to load", proc, log)
        by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
        assert {"raw/prices", "marts/signals", "marts/allocations", "marts/paper_nav"} <= set(by_key)
        assert all(n["description"] and n["groupName"] for n in nodes)

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            dismiss_dialogs(page)
            page.goto(f"{base}/locations/dagster_pmx.definitions/asset-groups/ingest", wait_until="networkidle")
            for name in ("prices", "macro", "quarantine"):
                expect(page.get_by_text(name, exact=True).first).to_be_visible(timeout=60_000)
            page.screenshot(path=shots / "ingest_graph.png")
            # what a user does: "Materialize all" on the group's graph
            page.get_by_role("button", name="Materialize all").click()
            run_id = wait_until(lambda: graphql(port, RUNS)["runsOrError"]["results"], 120, "the run", proc, log)
            run_id = run_id[0]["runId"]

            def finished():
                status = graphql(port, RUN, {"id": run_id})["runOrError"]["status"]
                return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None

            assert wait_until(finished, 420, "the run to finish", proc, log) == "SUCCESS"
            page.goto(f"{base}/runs/{run_id}", wait_until="networkidle")
            expect(page.get_by_text("Success", exact=False).first).to_be_visible(timeout=60_000)
            page.screenshot(path=shots / "run.png")
            page.goto(f"{base}/locations/dagster_pmx.definitions/asset-groups/trading", wait_until="networkidle")
            expect(page.get_by_text("paper_nav", exact=True).first).to_be_visible(timeout=60_000)
            page.screenshot(path=shots / "trading_graph.png")
            browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    stored = read(warehouse, "select ticker, count(*) as n from raw.prices group by 1 order by 1")
    assert stored["ticker"].tolist() == ["AAPL", "JPM", "SP500"] and (stored["n"] > 1000).all()
    for name in ("ingest_graph.png", "run.png", "trading_graph.png"):
        assert (shots / name).stat().st_size > 10_000
