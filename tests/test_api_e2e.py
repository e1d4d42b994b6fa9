"""The HTTP API end to end: a render created over HTTP at a real ``python -m web`` (two
uvicorn workers), started by real worker processes on the emulator, read back over HTTP."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from devtools.devstack import free_port
from shared import api_keys
from tests.inprocess.api_support import bearer, body
from tests.support import WorkerGroup, wait_until

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_render_created_over_http_completes_and_reads_back(
    use_db: Callable[[str], str], database_url: str, workers: WorkerGroup
) -> None:
    use_db(database_url)
    port = free_port()
    web = workers.start_web(port, {"WEB_WORKERS": "2"})
    workers.start_worker(processes=1, threads=4)
    workers.start_scheduler()
    _, key = api_keys.create("e2e", ["produce", "read"], ["u1"])
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=bearer(key)) as client:
        created = client.post(
            "/v1/renders", json=body(generation_id="e2e"), headers={"Idempotency-Key": "e2e-1"}
        )
        assert created.status_code == 201, created.text
        render_id = created.json()["id"]
        again = client.post("/v1/renders", json=body(), headers={"Idempotency-Key": "e2e-1"})
        assert again.status_code == 200 and again.json()["id"] == render_id

        def complete() -> dict[str, object] | None:
            render: dict[str, object] = client.get(f"/v1/renders/{render_id}").json()
            assert render["status"] in ("pending", "rendering", "complete"), render
            return render if render["status"] == "complete" else None

        done = wait_until(complete, timeout=60, what="the render complete")
        assert done["output_url"] and done["download_url"] and done["progress"] == 1.0
        steps = client.get(f"/v1/renders/{render_id}/timeline").json()["steps"]
        assert [s["kind"] for s in steps][-1] == "complete"
        listed = client.get("/v1/renders").json()["renders"]
        assert [r["id"] for r in listed] == [render_id]
    assert key not in web.logs() and key.split("_", 2)[2] not in workers.all_logs()
