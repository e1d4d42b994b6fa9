"""Render limits at every boundary: exactly at the limit passes, one over fails clearly."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.render_limits import RenderLimitExceeded, RenderLimits
from shared.render_request import RenderMessage, RenderRequest
from shared.settings import Settings
from tests.support import make_request

LIMITS = RenderLimits.from_settings(Settings())


def req(**overrides: object) -> RenderRequest:
    return make_request(**{"duration_in_frames": 600, "input_props": {}, **overrides})


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # 1920x1080, exactly 20 s
        {"width": 1080, "height": 1920},  # portrait 1080p
        {"width": 1080, "height": 1080},
        {"fps": 60, "duration_in_frames": 1200},  # 20 s at 60 fps
        {"fps": 1, "duration_in_frames": 20},
        {"codec": "gif", "width": 641, "height": 481},  # odd sizes are fine for gif
    ],
)
def test_at_the_limit_passes(overrides):
    LIMITS.enforce(req(**overrides))


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"width": 1922}, "width", "maximum long side of 1920px"),
        ({"width": 1920, "height": 1082}, "height", "maximum short side of 1080px"),
        ({"width": 1082, "height": 1920}, "width", "maximum short side of 1080px"),
        ({"duration_in_frames": 601}, "duration_in_frames", "20.033s at 30 fps"),
        ({"fps": 61, "duration_in_frames": 61}, "fps", "outside 1..60"),
        ({"width": 1279, "height": 720}, "width", "must be even for codec h264"),
        ({"input_props": {"x": "a" * 4_200_000}}, "input_props", "exceeds the maximum of 4194304"),
    ],
)
def test_one_over_fails_naming_field_value_and_limit(overrides, field, fragment):
    with pytest.raises(RenderLimitExceeded) as info:
        LIMITS.enforce(req(**overrides))
    assert info.value.code == "limit_exceeded"
    assert any(v.field == field for v in info.value.violations)
    assert fragment in str(info.value)


def test_limits_come_from_settings(monkeypatch):
    from shared.settings import get_settings

    monkeypatch.setenv("MAX_DURATION_S", "5")
    get_settings.cache_clear()
    try:
        limits = RenderLimits.from_settings()
        assert limits.max_duration_s == 5
        with pytest.raises(RenderLimitExceeded, match="MAX_DURATION_S"):
            limits.enforce(req(duration_in_frames=151))
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(
    ("payload_change", "field"),
    [
        ({"width": "1920"}, "width"),  # strict: no silent coercion of strings
        ({"width": 0}, "width"),
        ({"fps": 29.97}, "fps"),
        ({"codec": "h266"}, "codec"),
        ({"composition": "has space"}, "composition"),
        ({"user_id": ""}, "user_id"),
        ({"surprise": 1}, "surprise"),
        ({"input_props": [1, 2]}, "input_props"),
    ],
)
def test_structural_errors_name_the_field(payload_change, field):
    payload = req().model_dump() | payload_change
    with pytest.raises(ValidationError) as info:
        RenderMessage.model_validate(payload)
    assert field in str(info.value)


def test_missing_field_is_named():
    payload = req().model_dump()
    del payload["duration_in_frames"]
    with pytest.raises(ValidationError, match="duration_in_frames"):
        RenderMessage.model_validate(payload)
