"""Secrets never reach a log line, even inside a traceback."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from pydantic import SecretStr

from shared import log as renderq_log
from shared.settings import Settings

KEY_ID = "AKIAREALLOOKINGKEY01"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    settings = Settings(
        remotion_aws_access_key_id=SecretStr(KEY_ID),
        remotion_aws_secret_access_key=SecretStr(SECRET),
        log_format="json",
    )
    stream = io.StringIO()
    renderq_log.configure_logging(settings, force=True)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.stream = stream
    yield stream
    structlog.reset_defaults()
    renderq_log.configure_logging(Settings(log_format="json"), force=True)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_secret_values_and_keys_are_masked(captured):
    logger = renderq_log.get_logger("t")
    logger.info("calling", aws_secret_access_key=SECRET, note=f"key {KEY_ID} used", password="p4ss")
    logging.getLogger("botocore.x").warning(
        "Authorization: AWS4-HMAC-SHA256 Credential=AKIAOTHERKEY0000001/x"
    )
    text = captured.getvalue()
    assert SECRET not in text and KEY_ID not in text and "p4ss" not in text
    assert "AKIAOTHERKEY0000001" not in text
    assert lines(captured)[0]["aws_secret_access_key"] == "***"


def test_secrets_in_tracebacks_are_masked_and_locals_not_rendered(captured):
    def explode(secret_arg: str) -> None:
        raise RuntimeError(f"bad credentials {secret_arg}")

    try:
        explode(SECRET)
    except RuntimeError:
        renderq_log.get_logger("t").exception("failed")
    text = captured.getvalue()
    assert "RuntimeError" in text
    assert SECRET not in text
    assert "secret_arg" not in json.dumps(lines(captured)[0].get("exception", ""))
