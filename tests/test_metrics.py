"""Prometheus metrics scraped from a running worker group (two processes, multiprocess mode)."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools.devstack import free_port
from shared import renders
from shared.producer import enqueue_renders
from shared.render_request import RenderRequest
from tests.support import make_request, wait_until

pytestmark = pytest.mark.e2e

#: Sample values by (metric name, sorted labels without ``pid``), summed over processes.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "pid"))
            samples[(sample.name, labels)] = samples.get((sample.name, labels), 0.0) + sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_from_a_running_worker(env, use_db, sqlite_url, workers, monkeypatch, tmp_path):
    use_db(sqlite_url)
    port = free_port()
    for key, val in {
        "METRICS_PORT": str(port),
        "METRICS_DIR": str(tmp_path / "metrics"),
        "RENDER_RATE_LIMIT": "3/3s",
    }.items():
        monkeypatch.setenv(key, val)
        env[key] = val

    def req(i: int, **props: object) -> RenderRequest:
        return make_request(
            user_id="u1" if i < 4 else "u2",
            generation_id=f"m{i}",
            width=1280,
            height=720,
            duration_in_frames=60,
            input_props=dict(props),
        )

    stored = enqueue_renders([req(i) for i in range(5)] + [req(5, __emulator__={"fatal_at": 0.2})])
    ids = [r.id for r in stored]
    workers.start_worker(processes=2, threads=4)
    workers.start_scheduler()
    wait_until(
        lambda: all(r.status in ("complete", "failed") for r in renders.get_many(ids)),
        timeout=60,
        what="renders terminal",
    )

    def scraped() -> Samples | None:
        try:
            samples = scrape(port)
        except OSError:
            return None
        done = value(
            samples, "renderq_transitions_total", from_status="rendering", to_status="complete"
        )
        return samples if done == 5 else None

    samples = wait_until(scraped, timeout=20, what="metrics endpoint with all transitions")
    assert (
        value(samples, "dramatiq_messages_total", queue_name="renders", actor_name="start_render")
        >= 6
    )
    assert (
        value(samples, "renderq_transitions_total", from_status="pending", to_status="rendering")
        == 6
    )
    assert (
        value(samples, "renderq_transitions_total", from_status="rendering", to_status="failed")
        == 1
    )
    assert value(samples, "renderq_render_failures_total", error_code="render_error") == 1
    assert value(samples, "renderq_deferred_total", reason="throttled") >= 1
    assert value(samples, "renderq_lambda_call_seconds_count", op="start") == 6
    assert value(samples, "renderq_lambda_call_seconds_count", op="progress") >= 6
    assert value(samples, "renderq_poll_sweep_seconds_count") >= 1
    assert value(samples, "renderq_renders_polled_total") >= 6
    assert value(samples, "renderq_cost_usd_total") > 0
    assert ("renderq_renders", (("status", "pending"),)) in samples
