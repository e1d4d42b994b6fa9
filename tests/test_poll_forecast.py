"""``worker.poll_forecast``: when a render will be done, and which renders get a second look."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.settings import get_settings
from worker import poll_forecast

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def interval(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("POLL_INTERVAL_S", "2")
    monkeypatch.delenv("REMOTION_WEBHOOK_URL", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def test_remaining_time_at_the_pace_of_the_last_stretch() -> None:
    remaining = poll_forecast.remaining_s
    assert remaining(0.8, 0.4, ago(2), NOW) == pytest.approx(1.0)  # 40% in 2 s, 20% left
    assert remaining(0.5, 0.0, ago(1), NOW) == pytest.approx(1.0)  # from the start
    assert remaining(0.01, 0.0, ago(1), NOW) is None  # too early to tell
    assert remaining(1.0, 0.9, ago(1), NOW) is None  # done already
    assert remaining(0.99, 0.99, ago(2), NOW) is None  # stalled (combining): no prediction
    assert remaining(0.5, 0.6, ago(2), NOW) is None  # went back (a new attempt): none
    assert remaining(0.5, 0.0, NOW + timedelta(seconds=1), NOW) is None  # clock skew


def reading(rid: str, progress: float, previous: float, at: datetime | None):
    return poll_forecast.Reading(rid, progress, previous, at)


def test_only_ends_before_the_next_regular_poll_get_an_early_poll_never_too_soon() -> None:
    readings = [
        reading("soon", 0.8, 0.4, ago(2)),  # 1 s left
        reading("imminent", 0.99, 0.5, ago(2)),  # 40 ms left: not sooner than 250 ms
        reading("later", 0.3, 0.0, ago(2)),  # 4.7 s left: the regular poll comes first
        reading("stalled", 0.99, 0.99, ago(2)),
        reading("early", 0.01, 0.0, ago(0.5)),  # says nothing yet
        reading("unstarted", 0.5, 0.0, None),
    ]
    early = poll_forecast.early_polls(readings, NOW)
    assert early == {
        "soon": NOW + timedelta(seconds=1),
        "imminent": NOW + timedelta(seconds=poll_forecast.MIN_GAP_S),
    }


def test_off_by_setting_and_while_webhooks_report_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = [reading("soon", 0.8, 0.4, ago(2))]
    monkeypatch.setenv("POLL_AT_PREDICTED_END", "false")
    get_settings.cache_clear()
    assert poll_forecast.early_polls(readings, NOW) == {}
    monkeypatch.setenv("POLL_AT_PREDICTED_END", "true")
    monkeypatch.setenv("REMOTION_WEBHOOK_URL", "https://renderq.example/webhooks/remotion")
    monkeypatch.setenv("REMOTION_WEBHOOK_SECRET", "s3cret-value-for-tests")
    get_settings.cache_clear()
    assert get_settings().webhooks_enabled
    assert poll_forecast.early_polls(readings, NOW) == {}
    monkeypatch.setenv("POLL_PROGRESS_WITH_WEBHOOKS", "true")  # progress wanted: look again
    get_settings.cache_clear()
    assert poll_forecast.early_polls(readings, NOW) == {"soon": NOW + timedelta(seconds=1)}
