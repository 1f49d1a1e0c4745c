"""Flower in headless Chromium during a real run: login, the worker online, our tasks done.

The browser is Debian's ``chromium`` driven by Playwright (never a downloaded browser).
``make browser`` (and so ``make test`` and ``.ci/run``) installs it where apt-get can;
this test tries that too, and skips, saying why, only when no Chromium can be had.
Set SAVE_SCREENSHOTS=1 to refresh docs/img/flower.png from the tasks page.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import urllib3

from clonequeue.local import ManagedProcess, free_port
from clonequeue.local.stack import SIMULATOR_TOKEN
from tests.e2e.system import System, make_rows

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DOCS_SCREENSHOT = ROOT / "docs" / "img" / "flower.png"
# Headless, as root, on a machine without a network: no sandbox, no GPU, and none
# of Chromium's own connections (they would be refused, many at a time).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_TIMEOUT_MS = 30_000
NARROW_PX = 1400
# Where the task table ends, each header's right edge, and the cells of the first row
# that end past the window's right edge (Flower scrolls the table inside its card, so
# those are hidden), in CSS pixels.
TABLE_FIT_JS = """() => {
  const table = document.querySelector('#tasks-table');
  const headers = {};
  for (const th of table.querySelectorAll('thead th')) {
    headers[th.innerText.trim()] = Math.round(th.getBoundingClientRect().right);
  }
  const cellsCut = [];
  for (const td of table.querySelectorAll('tbody tr:first-child td')) {
    const box = td.getBoundingClientRect();
    if (box.right > document.documentElement.clientWidth) {
      cellsCut.push([td.innerText.slice(0, 40), Math.round(box.right)]);
    }
  }
  return {
    clientWidth: document.documentElement.clientWidth,
    scrollWidth: document.documentElement.scrollWidth,
    tableRight: Math.round(table.getBoundingClientRect().right),
    headers, cellsCut,
  };
}"""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium; installed with `make browser` if missing and possible."""
    path = find_chromium()
    if path is None and shutil.which("make"):
        subprocess.run(["make", "-s", "browser"], cwd=ROOT, timeout=900, check=False)
        path = find_chromium()
    if path is None:
        pytest.skip(
            "no Chromium: Debian's `chromium` package is not installed and `make browser` "
            "could not install it (it needs root and apt-get)"
        )
    return path


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.25)


class FlowerApi:
    def __init__(self, base_url: str, user: str, password: str) -> None:
        self.base_url = base_url
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}

    def get(self, path: str) -> Any:
        response = urllib3.request(
            "GET", self.base_url + path, headers=self._headers, timeout=10, retries=False
        )
        assert response.status == 200, (path, response.status)
        return json.loads(response.data)

    def healthy(self) -> bool:
        try:
            response = urllib3.request(
                "GET", self.base_url + "/healthcheck", timeout=5, retries=False
            )
        except urllib3.exceptions.HTTPError:
            return False
        return response.status == 200

    def succeeded(self, task_name: str) -> dict[str, Any]:
        tasks: dict[str, Any] = self.get(f"/api/tasks?taskname={task_name}&state=SUCCESS")
        return tasks


@pytest.mark.timeout(900)
def test_flower_shows_the_worker_online_and_the_run_succeeded(
    system: System, chromium: str, tmp_path: Path
) -> None:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect, sync_playwright

    user, password = "operator", secrets.token_hex(12)
    # A node name as long as a CI runner's (name@host): the task table must still fit.
    worker = system.start_worker(name="worker-" + "n" * 40)
    worker_node = f"{worker.name}@{socket.gethostname()}"
    port = free_port()
    flower = ManagedProcess(
        [sys.executable, "-m", "clonequeue", "flower", "--port", str(port)],
        log_path=tmp_path / "flower.log",
        env={**system.stack.env(), "CLONEQUEUE_FLOWER_BASIC_AUTH": f"{user}:{password}"},
        cwd=tmp_path,
        name="flower",
    )
    base = f"http://127.0.0.1:{port}"
    api = FlowerApi(base, user, password)
    pages: list[str] = []
    with flower:
        flower.wait_ready(api.healthy, timeout_s=60)
        # Flower sees only events sent after it started: run the batch once it
        # hears the worker's heartbeats.
        wait_until(
            lambda: api.get("/api/workers?status=1").get(worker_node) is True,
            60,
            f"Flower sees {worker_node} alive",
        )
        batch = system.submit(make_rows(3, audios=1, prefix="flower"))
        info = system.wait(batch, 90)
        assert info.counts.get("completed") == 3, info.counts
        for name in ("clonequeue.submit_clone", "clonequeue.poll_clone"):
            wait_until(lambda name=name: bool(api.succeeded(name)), 30, f"{name} in Flower")

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium,
                headless=True,
                chromium_sandbox=False,
                args=CHROMIUM_FLAGS,
            )
            try:
                # Without credentials the UI answers 401 (and headless Chromium, which
                # cannot ask for a login, gives up on the page).
                anonymous = browser.new_context()
                page = anonymous.new_page()
                with (
                    page.expect_response(base + "/workers") as denied,
                    pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"),
                ):
                    page.goto(base + "/workers")
                assert denied.value.status == 401
                assert denied.value.headers["www-authenticate"].startswith("Basic")
                anonymous.close()

                context = browser.new_context(
                    http_credentials={"username": user, "password": password},
                    viewport={"width": 1440, "height": 900},
                )
                page = context.new_page()

                # The worker, online.
                response = page.goto(base + "/workers")
                assert response is not None
                assert response.status == 200
                row = page.locator("#workers-table tbody tr", has_text=worker_node)
                expect(row).to_contain_text("Online", timeout=UI_TIMEOUT_MS)
                page.screenshot(path=str(tmp_path / "flower-workers.png"), full_page=True)
                pages += [page.content(), page.inner_text("body")]

                # The worker's own page (its configuration, stats, queues) and the
                # broker's: the text checked for secrets below.
                page.goto(base + f"/worker/{worker_node}")
                expect(page.locator("body")).to_contain_text(
                    f"{system.namespace}.poll", timeout=UI_TIMEOUT_MS
                )
                pages += [page.content(), page.inner_text("body")]
                page.goto(base + "/broker")
                expect(page.locator("body")).to_contain_text(
                    f"{system.namespace}.submit", timeout=UI_TIMEOUT_MS
                )
                pages += [page.content(), page.inner_text("body")]

                # The clones, each submitted once and succeeded, args naming the job.
                page.goto(base + "/tasks?name=clonequeue.submit_clone&state=SUCCESS")
                rows = page.locator("#tasks-table tbody tr", has_text="clonequeue.submit_clone")
                expect(rows).to_have_count(3, timeout=UI_TIMEOUT_MS)
                for i in range(3):
                    expect(rows.nth(i)).to_contain_text("SUCCESS")
                    expect(rows.nth(i)).to_contain_text("job=flower-0000")
                pages += [page.content(), page.inner_text("body")]

                # Their polls, args naming the job and the remote task.
                page.goto(base + "/tasks?name=clonequeue.poll_clone&state=SUCCESS")
                polls = page.locator("#tasks-table tbody tr", has_text="clonequeue.poll_clone")
                expect(polls.first).to_contain_text("SUCCESS", timeout=UI_TIMEOUT_MS)
                expect(polls.first).to_contain_text("job=flower-0000")
                expect(polls.first).to_contain_text("remote=")
                pages += [page.content(), page.inner_text("body")]

                # One task's own page.
                polls.first.locator("a").first.click()
                expect(page.locator("body")).to_contain_text("poll_clone", timeout=UI_TIMEOUT_MS)
                expect(page.locator("body")).to_contain_text("remote=")
                pages += [page.content(), page.inner_text("body")]

                # The whole run, for people (and the docs): a fresh context, as the
                # tasks page remembers its last search.
                context.close()
                context = browser.new_context(
                    http_credentials={"username": user, "password": password},
                    viewport={"width": 1440, "height": 900},
                )
                page = context.new_page()
                page.goto(base + "/tasks")
                expect(
                    page.locator("#tasks-table tbody tr", has_text="clonequeue.").first
                ).to_be_visible(timeout=UI_TIMEOUT_MS)
                screenshot = tmp_path / "flower-tasks.png"
                page.screenshot(path=str(screenshot), full_page=True)
                pages += [page.content(), page.inner_text("body")]

                # On a 1,400 px screen the task table fits: no column is cut at the
                # right, so each row's job (in args) and state can be read.
                context.close()
                context = browser.new_context(
                    http_credentials={"username": user, "password": password},
                    viewport={"width": NARROW_PX, "height": 900},
                )
                page = context.new_page()
                # The polls: the widest args (job, remote task, generation). Unfiltered,
                # the watchdog's and results pass's runs can fill the first page.
                page.goto(base + "/tasks?name=clonequeue.poll_clone")
                first = page.locator("#tasks-table tbody tr", has_text="job=flower-0000").first
                expect(first).to_be_visible(timeout=UI_TIMEOUT_MS)
                page.screenshot(path=str(tmp_path / "flower-tasks-1400.png"), full_page=True)
                fit = page.evaluate(TABLE_FIT_JS)
                assert fit["scrollWidth"] <= fit["clientWidth"] == NARROW_PX, fit
                assert fit["tableRight"] <= NARROW_PX, fit
                for column in ("STATE", "ARGS"):  # CSS upper-cases the headers
                    assert fit["headers"].get(column, NARROW_PX + 1) <= NARROW_PX, (column, fit)
                assert fit["cellsCut"] == [], fit
            finally:
                browser.close()

    assert screenshot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("SAVE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, DOCS_SCREENSHOT)
    # Nothing Flower shows carries the API token, nor the login.
    for text in pages:
        assert SIMULATOR_TOKEN not in text
        assert password not in text
    assert password not in flower.log_path.read_text()
