"""Real Remotion Lambda behaviour through real ``dramatiq`` processes and the emulator over
HTTP: a worker that cannot render refuses to start; private outputs get signed links."""

from __future__ import annotations

import pytest

from devtools.emulator import EmulatorServer
from shared import outputs
from shared.settings import DEFAULT_FUNCTION_NAME
from shared.producer import enqueue_render
from tests.support import WorkerGroup, all_terminal, get_render, make_request, wait_until

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
