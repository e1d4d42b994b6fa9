"""Real Remotion Lambda behaviour through real ``dramatiq`` processes and the emulator over
HTTP: a worker that cannot render refuses to start; private outputs get signed links."""

from __future__ import annotations

import pytest

from devtools.emulator import EmulatorServer
from shared import outputs
from shared.producer import enqueue_render
from shared.settings import DEFAULT_FUNCTION_NAME
from tests.support import (
    WorkerGroup,
    all_terminal,
    emulator_call,
    get_render,
    make_request,
    wait_until,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def db(use_db, sqlite_url):
    return use_db(sqlite_url)


def test_a_worker_pointed_at_another_remotion_version_exits_at_start_up(
    db: str, workers: WorkerGroup
) -> None:
    with EmulatorServer(port=0, remotion_version="4.0.540") as other:
        worker = workers.start_worker(processes=2, extra_env={"AWS_ENDPOINT_URL_LAMBDA": other.url})
        code = worker.proc.wait(60)
    assert code == 78, worker.logs()[-2000:]
    refusals = [
        line for line in worker.json_logs() if line.get("event") == "worker refuses to start"
    ]
    assert refusals, worker.logs()[-2000:]
    reason = refusals[0]["reason"]
    assert "remotion-render-4-0-539-mem2048mb-disk2048mb-120sec" in reason
    assert "4.0.540" in reason and "4.0.539" in reason


def test_a_worker_pointed_at_a_missing_function_exits_at_start_up(
    db: str, workers: WorkerGroup
) -> None:
    """An account where only the default function is deployed (AWS answers 404
    ResourceNotFoundException for any other name)."""
    with EmulatorServer(port=0, function_names=[DEFAULT_FUNCTION_NAME]) as account:
        worker = workers.start_worker(
            extra_env={
                "AWS_ENDPOINT_URL_LAMBDA": account.url,
                "REMOTION_LAMBDA_FUNCTION_NAME": "no-such-function",
            }
        )
        assert worker.proc.wait(60) == 78, worker.logs()[-2000:]
    assert any(
        "no-such-function" in str(line.get("reason"))
        for line in worker.json_logs()
        if line.get("event") == "worker refuses to start"
    ), worker.logs()[-2000:]


def test_a_private_output_gets_a_presigned_link(db: str, workers: WorkerGroup) -> None:
    workers.start_worker(processes=1, threads=4)
    workers.start_scheduler()
    render = enqueue_render(make_request(generation_id="private-output"))
    wait_until(lambda: all_terminal([render.id]), timeout=60, what="render terminal")
    done = get_render(render.id)
    assert done.status == "complete", workers.all_logs()[-3000:]
    link = outputs.download_url(done)
    assert link is not None and link != done.output_url
    assert f"/renders/{done.lambda_render_id}/{done.out_name}" in link
    assert "X-Amz-Signature=" in link and "X-Amz-Expires=3600" in link


def test_an_unknown_composition_fails_after_the_start_with_remotions_message(
    db: str, workers: WorkerGroup, emulator: EmulatorServer
) -> None:
    """Remotion checks the composition in launch, after start returned (handlers/launch.ts)."""
    workers.start_worker()
    workers.start_scheduler()
    render = enqueue_render(make_request(composition="Nope", generation_id="nope"))
    wait_until(lambda: all_terminal([render.id]), timeout=60, what="render terminal")
    failed = get_render(render.id)
    assert failed.status == "failed" and failed.error_code == "render_error"
    assert failed.started_at is not None and failed.lambda_render_id  # it did start
    assert "Could not find composition with ID Nope" in (failed.error_message or "")
    assert "Available compositions:" in (failed.error_message or "")


def test_renders_throttled_inside_lambda_start_again_and_complete(
    db: str, workers: WorkerGroup
) -> None:
    """The account's concurrency (shared by every render's functions, starts and status
    calls) is far below what renderq's budget lets start: renderers get "Rate Exceeded"
    inside renders, which Remotion does not retry. renderq starts those again as new
    attempts until they fit; nobody sees a failure, and no attempt runs twice."""
    with EmulatorServer(port=0, speed=3000, concurrency_limit=40) as account:
        workers.start_worker(
            processes=2,
            threads=8,
            extra_env={
                "AWS_ENDPOINT_URL_LAMBDA": account.url,
                "AWS_ENDPOINT_URL_S3": account.url,
                "MAX_THROTTLE_RESTARTS": "50",
                "THROTTLE_RESTART_BACKOFF_MS": "500",
                "THROTTLE_RESTART_BACKOFF_MAX_MS": "4000",
            },
        )
        workers.start_scheduler()
        stored = [
            enqueue_render(make_request(generation_id=f"crowd-{i}", user_id=f"u{i % 4}"))
            for i in range(16)
        ]
        ids = [r.id for r in stored]
        wait_until(lambda: all_terminal(ids), timeout=180, what="all renders terminal")
        stats = emulator_call(account.url, "/_emulator/stats")
    rows = [get_render(rid) for rid in ids]
    assert {r.status for r in rows} == {"complete"}, [(r.status, r.error_message) for r in rows]
    restarted = [r for r in rows if r.throttle_restarts]
    assert restarted, "the account was never full: the test proves nothing"
    for row in restarted:
        assert row.attempts == row.throttle_restarts + 1
        assert {e["code"] for e in row.error_history} == {"lambda_throttled"}
        assert row.out_name is not None and row.out_name.endswith(f"-{row.attempts}.mp4")
    # Each attempt (outName) was started once on Lambda.
    assert set(stats["starts_by_out_name"].values()) == {1}
    assert stats["concurrency"]["refused"].get("renderer", 0) > 0


def test_a_render_with_a_megabyte_of_props_completes_through_s3(
    db: str, workers: WorkerGroup, emulator: EmulatorServer
) -> None:
    """Over 193,976 bytes Remotion's client uploads the props to input-props/<sha256>.json
    and launch reads them from S3 (serverless-client/src/compress-props.ts)."""
    workers.start_worker()
    workers.start_scheduler()
    props = {"items": ["x" * 1000 for _ in range(1024)]}  # ~1 MB serialized
    render = enqueue_render(make_request(generation_id="big-props", input_props=props))
    wait_until(lambda: all_terminal([render.id]), timeout=60, what="render terminal")
    assert get_render(render.id).status == "complete", workers.all_logs()[-3000:]
    stats = emulator_call(emulator.url, "/_emulator/stats")
    assert stats["s3_calls"].get("PutObject", 0) >= 1
