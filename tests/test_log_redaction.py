"""Secrets never reach a log line, even inside a traceback."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from pydantic import SecretStr, ValidationError

from shared import log as renderq_log
from shared.settings import Settings
from tests.support import captured_log

KEY_ID = "AKIAREALLOOKINGKEY01"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    settings = Settings(
        remotion_aws_access_key_id=SecretStr(KEY_ID),
        remotion_aws_secret_access_key=SecretStr(SECRET),
        log_format="json",
    )
    renderq_log.configure_logging(settings, force=True)
    with captured_log() as stream:
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


def test_short_secret_like_values_still_masked_and_short_plain_ones_kept(captured):
    """The length shortcut of the value scrub must not let a known secret through."""
    renderq_log.register_secret("k3y-42")
    structlog.get_logger("t").info("short", a="k3y-42", b="plain", c=7, d=None)
    (line,) = lines(captured)
    assert line["a"] == renderq_log.REDACTED and line["b"] == "plain" and line["c"] == 7


class StreamablePipe:
    """Named like dramatiq's (``dramatiq.compat``): what the CLI puts in ``sys.stderr``."""

    def __init__(self) -> None:
        self.written: list[str] = []

    def write(self, s: str) -> None:
        self.written.append(s)

    def flush(self) -> None:
        pass


def test_lines_bypass_the_dramatiq_relay_in_one_write_each_and_long_ones_take_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os
    import select

    relay = StreamablePipe()
    monkeypatch.setattr("sys.stderr", relay)
    monkeypatch.setattr("sys.argv", ["dramatiq", "worker.actors"])
    assert renderq_log._dramatiq_relay_bypass() == 2  # the process's own stderr
    monkeypatch.setattr("sys.argv", ["dramatiq", "worker.actors", "--log-file", "x.log"])
    assert renderq_log._dramatiq_relay_bypass() is None  # the master writes the file

    read_end, write_end = os.pipe()
    output = renderq_log._LineOutput(relay, write_end)  # type: ignore[arg-type]  # a stand-in stream
    handler = renderq_log._LineHandler(output)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("bypass-test")
    logger.propagate, logger.handlers = False, [handler]
    try:
        logger.warning("short line")
        logger.warning("x" * select.PIPE_BUF)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            assert pipe.read() == b"short line\n"
        assert relay.written == ["x" * select.PIPE_BUF + "\n"]
    finally:
        logger.handlers = []
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert renderq_log._dramatiq_relay_bypass() is None  # not under the dramatiq CLI


def test_a_logger_used_before_a_reconfiguration_writes_where_the_new_one_says() -> None:
    """structlog keeps a logger it has used (``cache_logger_on_first_use``): the output it
    writes to must be the process's one output, which a reconfiguration points elsewhere."""
    logger = renderq_log.get_logger("cached")
    written = []
    try:
        for event in ("one", "two"):
            renderq_log.configure_logging(Settings(log_format="json"), force=True)
            with captured_log() as stream:
                logger.info(event)
            written.append([line["event"] for line in lines(stream)])
        assert written == [["one"], ["two"]]
    finally:
        renderq_log.configure_logging(Settings(log_format="json"), force=True)


def test_a_broken_output_does_not_fail_the_caller(captured) -> None:
    captured.close()  # writing to it now raises ValueError
    renderq_log.get_logger("t").warning("nobody reads this")


def test_the_level_filters_renderq_lines_and_a_bad_level_is_a_clear_error() -> None:
    try:
        for level, shown in (("debug", ["quiet", "loud"]), ("WARNING", ["loud"])):
            renderq_log.configure_logging(Settings(log_format="json", log_level=level), force=True)
            logger = renderq_log.get_logger(f"level-{level}")
            with captured_log() as stream:
                logger.debug("quiet")
                logger.warning("loud")
            assert [line["event"] for line in lines(stream)] == shown
    finally:
        renderq_log.configure_logging(Settings(log_format="json"), force=True)
    with pytest.raises(ValidationError, match="'loud' is not one of DEBUG, INFO, WARNING"):
        Settings(log_level="loud")
