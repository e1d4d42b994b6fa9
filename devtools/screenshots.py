"""``python -m devtools.screenshots``: the README's pictures of the web console.

Starts a demo-like stack (the Lambda emulator, Redis, a SQLite database under
``var/screenshots``, ``python -m web``, a worker and the scheduler), sends a few dozen renders
of several users (some slow enough to be in flight, one that fails, a paused user), logs in
with the system Chromium through Playwright and saves ``docs/img/console-overview.png`` and
``docs/img/console-render.png``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from devtools.devstack import ROOT, Stack, drop_namespace, free_port, wait_for
from devtools.migrate import upgrade_head
from devtools.process import reset_caches

if TYPE_CHECKING:
    from shared.render_request import RenderRequest

PASSWORD = "screenshots password"


def _request(user: str, generation: str, **props: object) -> RenderRequest:
    from shared.render_request import RenderRequest

    return RenderRequest(
        user_id=user,
        generation_id=generation,
        composition="Main",
        input_props={"title": generation, **props},
        width=1920,
        height=1080,
        fps=30,
        duration_in_frames=300,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.screenshots")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser_path is None:
        print("screenshots: no chromium on PATH (devtools/ensure_browser.sh)", file=sys.stderr)
        return 2

    from devtools.emulator import EmulatorServer

    work = ROOT / "var" / "screenshots"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    stack = Stack(log_dir=work / "logs")
    redis_url = stack.ensure_redis(args.redis)
    emulator = EmulatorServer(port=0, speed=60)
    emulator.start()
    port = free_port()
    namespace = f"renderq-screenshots-{uuid.uuid4().hex[:6]}"
    stack.env.update(
        {
            "REDIS_URL": redis_url,
            "REDIS_NAMESPACE": namespace,
            "DATABASE_URL": f"sqlite:///{work / 'renderq.db'}",
            "AWS_ENDPOINT_URL_LAMBDA": emulator.url,
            "AWS_ENDPOINT_URL_S3": emulator.url,
            "REMOTION_AWS_ACCESS_KEY_ID": "AKIAEMULATORDEMO0001",
            "REMOTION_AWS_SECRET_ACCESS_KEY": "emulator-secret-key-not-real-0000000000",
            "REMOTION_SERVE_URL": "https://example.invalid/sites/demo/index.html",
            "POLL_INTERVAL_S": "0.5",
            "RENDER_RATE_LIMIT": "6/1m",
            "METRICS_PORT": "0",
            "LOG_FORMAT": "json",
            "WEB_HOST": "127.0.0.1",
            "WEB_PORT": str(port),
            "CONSOLE_REFRESH_MS": "500",
        }
    )
    os.environ.update(stack.env)
    reset_caches()
    try:
        upgrade_head(stack.env["DATABASE_URL"])
        from shared import operations, operators
        from shared.producer import enqueue_renders

        operators.create("ada", PASSWORD)
        stack.spawn("web", [sys.executable, "-m", "web"])
        stack.start_worker(processes=1, threads=8)
        stack.start_scheduler()
        base = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1) as answer:
                    return bool(answer.status == 200)
            except OSError:
                return False

        wait_for(healthy, timeout=30, what="web process")
        operations.pause("u-trial", actor="operator:ada", reason="billing check")
        quick = [_request(f"u-{n}", f"promo-{n}-{i}") for n in range(4) for i in range(3)]
        failing = [_request("u-2", "broken-intro", __emulator__={"fatal_at": 0.3})]
        slow = [
            _request(f"u-{n}", f"long-{n}", __emulator__={"speed": 12 + 3 * n}) for n in range(5)
        ]
        waiting = [_request("u-trial", f"trial-{i}") for i in range(2)]
        throttled = [_request("u-9", f"batch-{i}") for i in range(9)]
        first = enqueue_renders(quick + failing)
        time.sleep(6)
        enqueue_renders(slow + waiting + throttled)
        time.sleep(4)

        from playwright.sync_api import sync_playwright

        args.out.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=browser_path, args=["--no-sandbox"] if os.geteuid() == 0 else []
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1100}, base_url=base)
            page.goto("/console/login")
            page.fill("input[name=name]", "ada")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/console")
            page.wait_for_selector("#in-flight tr td a")
            time.sleep(1.5)
            page.screenshot(path=str(args.out / "console-overview.png"), full_page=True)
            page.goto(f"/console/renders/{first[0].id}")
            page.wait_for_selector("#timeline")
            page.screenshot(path=str(args.out / "console-render.png"), full_page=True)
            browser.close()
        print(f"saved {args.out / 'console-overview.png'} and {args.out / 'console-render.png'}")
    finally:
        stack.close()
        emulator.stop()
        drop_namespace(redis_url, namespace)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
