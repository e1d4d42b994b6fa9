"""One real stack and one real browser per module: ``python -m web``, a dramatiq worker, the
scheduler and the emulator, all on a namespace and SQLite database of the module's own, and
the system Chromium driven by Playwright's sync API.

Playwright's own browser download does not work here, so the browser is Debian's
``chromium`` (``devtools/ensure_browser.sh`` installs it for ``make test``). Without it these
tests fail when ``RENDERQ_REQUIRE_BROWSER`` is set (``make test`` sets it) and are skipped,
loudly, otherwise.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from devtools.devstack import drop_namespace, free_port
from devtools.migrate import upgrade_head
from devtools.process import reset_caches
from shared import operators
from tests.conftest import ROOT
from tests.support import WorkerGroup

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PASSWORD = "console browser test password"


@dataclass
class ConsoleStack:
    base_url: str
    emulator_url: str
    workers: WorkerGroup


def _browser_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = (
            "NO BROWSER: the console's browser tests need the system Chromium "
            "(apt-get install chromium, or `make test`, which runs devtools/ensure_browser.sh)"
        )
        if os.environ.get("RENDERQ_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def console_stack(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConsoleStack]:
    from devtools.emulator import EmulatorServer

    namespace = f"renderq-test-{uuid.uuid4().hex[:10]}"
    database = tmp_path_factory.mktemp("console") / "renderq.db"
    emulator = EmulatorServer(port=0, speed=3000)
    emulator.start()
    port = free_port()
    env = {
        "REDIS_URL": redis_url,
        "REDIS_NAMESPACE": namespace,
        "DATABASE_URL": f"sqlite:///{database}",
        "AWS_ENDPOINT_URL_LAMBDA": emulator.url,
        "AWS_ENDPOINT_URL_S3": emulator.url,
        "REMOTION_AWS_ACCESS_KEY_ID": "AKIAEMULATORTEST0001",
        "REMOTION_AWS_SECRET_ACCESS_KEY": "emulator-secret-key-not-real-0000000000",
        "REMOTION_SERVE_URL": "https://example.invalid/sites/test/index.html",
        "POLL_INTERVAL_S": "0.25",
        "LOG_FORMAT": "json",
        "BROKER_HEARTBEAT_TIMEOUT_MS": "3000",
        "RENDER_RATE_LIMIT": "1000/1s",
        "METRICS_PORT": "0",
        "CONSOLE_REFRESH_MS": "300",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        reset_caches()
        upgrade_head(env["DATABASE_URL"])
        operators.create("ada", PASSWORD)
        workers = WorkerGroup(ROOT, env)
        try:
            workers.start_web(port)
            workers.start_worker(processes=1, threads=4)
            workers.start_scheduler()
            yield ConsoleStack(f"http://127.0.0.1:{port}", emulator.url, workers)
        finally:
            workers.stop_all()
            emulator.stop()
            drop_namespace(redis_url, namespace)
            reset_caches()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    path = _browser_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=path, args=["--no-sandbox"] if os.geteuid() == 0 else []
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def page(browser: Browser, console_stack: ConsoleStack) -> Iterator[Page]:
    """One logged-in page for the module (logging in is the first test's subject too)."""
    context = browser.new_context(base_url=console_stack.base_url)
    context.set_default_timeout(20_000)
    logged_in = context.new_page()
    logged_in.goto("/console")
    assert logged_in.url.startswith(f"{console_stack.base_url}/console/login")
    logged_in.fill("input[name=name]", "ada")
    logged_in.fill("input[name=password]", PASSWORD)
    logged_in.click("button[type=submit]")
    logged_in.wait_for_url(f"{console_stack.base_url}/console")
    yield logged_in
    context.close()


def screenshot_dir() -> Path:
    return ROOT / "docs" / "img"
