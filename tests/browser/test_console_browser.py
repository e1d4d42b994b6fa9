"""The console in a real headless Chromium against a real web process, worker, scheduler and
the emulator: log in, watch a render's progress bar reach complete, search, cancel, replay a
failed render, pause a user (their render waits, and says why) and resume them."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect

from shared import audit, pauses
from shared.producer import enqueue_render
from tests.browser.conftest import ConsoleStack
from tests.support import get_render, make_request, wait_until

pytestmark = pytest.mark.e2e


def _slow(frames_per_s: float) -> dict[str, object]:
    return {"title": "console", "__emulator__": {"speed": frames_per_s}}


def test_log_in_and_watch_a_render_complete(page: Page, console_stack: ConsoleStack) -> None:
    expect(page.locator("#counts .card")).to_have_count(5)  # the overview's feed arrived
    render = enqueue_render(
        make_request(user_id="watcher", generation_id="watch-me", input_props=_slow(60))
    )
    page.goto(f"/console/renders/{render.id}")
    seen: set[float] = set()
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        try:
            status = page.locator("#render-status").inner_text(timeout=2_000)
            seen.add(float(page.locator("#render-progress").get_attribute("value") or 0))
        except Exception:  # the page reloads itself when the status changes
            continue
        if status == "complete":
            break
        time.sleep(0.1)
    assert status == "complete", get_render(render.id)
    assert any(0 < value < 1 for value in seen), sorted(seen)  # the bar moved in between
    expect(page.locator("#output-link")).to_be_visible()
    expect(page.locator("#timeline")).to_contain_text("complete")


def test_search_by_user(page: Page, console_stack: ConsoleStack) -> None:
    wanted = enqueue_render(make_request(user_id="searcher", generation_id="find-me"))
    enqueue_render(make_request(user_id="someone-else", generation_id="not-me"))
    page.goto("/console/renders")
    page.fill("input[name=user_id]", "searcher")
    page.click("#search")
    rows = page.locator("#results tbody tr[data-render]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-render", wanted.id)
    expect(rows.first).to_contain_text("find-me")


def test_cancel_a_render(page: Page, console_stack: ConsoleStack) -> None:
    forever = {"__emulator__": {"never_finish": True}}
    render = enqueue_render(make_request(user_id="canceller", input_props=forever))
    wait_until(lambda: get_render(render.id).status == "rendering", what="rendering")
    page.goto(f"/console/renders/{render.id}")
    page.fill("#cancel-reason", "wrong video")
    page.click("#cancel")
    expect(page.locator("h1")).to_contain_text("Cancel render")
    page.click("#confirm")
    expect(page.locator("#render-status")).to_have_text("cancelled")
    expect(page.locator("#audit")).to_contain_text("operator:ada")
    [entry] = audit.recent(target=f"render:{render.id}")
    assert entry.action == "cancel" and entry.detail["reason"] == "wrong video"


def test_replay_a_failed_render(page: Page, console_stack: ConsoleStack) -> None:
    fatal = {"__emulator__": {"fatal_at": 0.2}}
    render = enqueue_render(make_request(user_id="replayer", input_props=fatal))
    wait_until(lambda: get_render(render.id).status == "failed", timeout=30, what="failed")
    page.goto("/console/renders?user_id=replayer&status=failed")
    page.check(f"input[name=ids][value='{render.id}']")
    page.click("#replay-selected")
    expect(page.locator("h1")).to_contain_text("Replay 1 render")
    page.click("#confirm")
    expect(page.locator("#replay-outcome")).to_contain_text("replayed: 1")
    wait_until(lambda: get_render(render.id).attempts == 2, what="a second attempt")
    assert [e.action for e in audit.recent(target=f"render:{render.id}")] == ["replay"]


def test_pause_a_user_their_render_waits_then_resume(
    page: Page, console_stack: ConsoleStack
) -> None:
    page.goto("/console/pauses")
    page.fill("#pause-user", "sleepy")
    page.fill("input[name=reason]", "billing check")
    page.click("#pause")
    page.click("#confirm")
    expect(page.locator("#pauses tr[data-scope='user:sleepy']")).to_be_visible()

    render = enqueue_render(make_request(user_id="sleepy", generation_id="paused"))
    wait_until(lambda: pauses.is_held(render.id), what="the render held by the pause")
    page.goto(f"/console/renders/{render.id}")
    expect(page.locator("#render-status")).to_have_text("pending")
    expect(page.locator("#render-paused")).to_contain_text("paused by operator:ada")
    expect(page.locator("#render-paused")).to_contain_text("billing check")
    time.sleep(1)
    assert get_render(render.id).status == "pending"  # still waiting

    page.goto("/console/pauses")
    page.click("#pauses tr[data-scope='user:sleepy'] button")
    page.click("#confirm")
    expect(page.locator("#notice")).to_contain_text("1 render(s) sent on")
    page.goto(f"/console/renders/{render.id}")
    expect(page.locator("#render-status")).to_have_text("complete", timeout=30_000)
    expect(page.locator("#render-paused")).to_be_hidden()
