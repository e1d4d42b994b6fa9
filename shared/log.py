"""structlog configuration: JSON lines for machines, readable lines on a terminal.

Every process (worker, scheduler, producer scripts) calls ``configure_logging()`` once.
renderq's own lines take structlog's native path (a filtering bound logger writing the rendered
line); the stdlib root logger is routed through the same processors, so Dramatiq's and
botocore's own messages come out as the same JSON lines. Secrets never reach the output:
``redact_secrets`` masks values under secret-looking keys, anything that looks like an AWS key,
and the configured credentials themselves, including inside rendered tracebacks (which are
rendered without local variables).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import select
import sys
import threading
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from shared.settings import Settings, get_settings, renamed_in_environment

REDACTED = "***"
_SECRET_KEY = re.compile(
    r"(secret|password|passwd|token|authorization|credential|api[_-]?key|access[_-]?key|"
    r"signature|session[_-]?key|private[_-]?key)",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(
    r"(?:\b(?:AKIA|ASIA)[A-Z0-9]{16}\b)"  # AWS access key ids
    r"|(?:(?i:aws_secret_access_key|secret_access_key|SecretAccessKey)[\"'=:\s]+[A-Za-z0-9/+=]{16,})"
    r"|(?:(?i:authorization)[\"'=:\s]+[^\s,\"']+(?:\s[^\s,\"']+)?)"
    r"|(?:Credential=[^\s,]+)"
    r"|(?:\brq_[0-9a-f]{16}_[A-Za-z0-9_-]{20,})"  # renderq API keys (shared/api_keys.py)
    r"|(?:(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,})"
)

#: No pattern of ``_SECRET_VALUE`` matches fewer characters ("Credential=" and one more).
_SHORTEST_SECRET_VALUE = 12

_known_secrets: list[str] = []


def _scrub_text(text: str) -> str:
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if len(text) < _SHORTEST_SECRET_VALUE:
        return text
    return _SECRET_VALUE.sub(REDACTED, text)


@functools.lru_cache(maxsize=4096)
def _is_secret_key(key: str) -> bool:
    """Log lines repeat a few dozen keys: decide each once, not once per line."""
    return key != "event" and _SECRET_KEY.search(key) is not None


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > 6:
        return value
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and _is_secret_key(k) else _scrub(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(_scrub(v, depth + 1) for v in value)
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: runs last before rendering, after tracebacks became text."""
    for key, value in event_dict.items():
        if _is_secret_key(key):
            event_dict[key] = REDACTED
        elif isinstance(value, (str, dict, list, tuple)):
            event_dict[key] = _scrub(value)
    return event_dict


def register_secret(value: str | None) -> None:
    """Mask this exact value wherever it appears in a log line (e.g. a configured AWS key)."""
    if value and len(value) >= 6 and value not in _known_secrets:
        _known_secrets.append(value)


class _DropSkippedMessageWarnings(logging.Filter):
    """Dramatiq warns "Message ... was skipped." for every throttled message (with its whole
    body); the rate-limit middleware already logs each deferral with its reason."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.name.startswith("dramatiq.worker") and str(record.msg).endswith("was skipped.")
        )


class _LineOutput:
    """Where this process's log lines go: each line in one ``write``, and under the dramatiq
    CLI, past its relay.

    A dramatiq worker process's ``sys.stderr`` is a pipe to the master process, which receives
    every line, decodes it, writes and flushes it again: about half of what a log line costs.
    A line of up to ``PIPE_BUF`` bytes goes instead straight to the process's own stderr (file
    descriptor 2, inherited from the master), where one ``write`` of that size is atomic, so
    lines of several processes never interleave; a longer one (a traceback) takes the relay,
    which serializes it. ``direct_fd`` is None outside the dramatiq CLI. renderq's own lines
    (``_LineWriter``) and the stdlib's (``_LineHandler``) share one output and its lock.
    """

    def __init__(self, stream: TextIO, direct_fd: int | None) -> None:
        self.stream = stream
        self.direct_fd = direct_fd
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        line += "\n"
        if self.direct_fd is not None:
            data = line.encode("utf-8", errors="replace")
            if len(data) <= select.PIPE_BUF:
                os.write(self.direct_fd, data)
                return
        with self._lock:
            self.stream.write(line)
            self.stream.flush()


class _LineWriter:
    """structlog's logger for renderq's own lines: the rendered line goes straight to the
    output, without the stdlib's ``LogRecord`` (made twice: ``ProcessorFormatter`` copies it),
    caller lookup, handler lock and formatter, which were half of what a line cost."""

    __slots__ = ("_output", "name")

    def __init__(self, output: _LineOutput, name: str) -> None:
        self._output = output
        #: ``structlog.stdlib.add_logger_name`` reads it: each line's ``logger`` key.
        self.name = name

    def msg(self, line: str) -> None:
        # A closed or broken stderr must not fail the render that logged (the stdlib's
        # handler, which these lines used to take, swallows it too).
        with contextlib.suppress(OSError, ValueError):
            self._output.write(line)

    debug = info = warning = warn = error = critical = fatal = exception = msg


#: The process's one output (``configure_logging`` points it at the current ``sys.stderr``).
_OUTPUT = _LineOutput(sys.stderr, None)


class _LineHandler(logging.StreamHandler[TextIO]):
    """The stdlib's records (Dramatiq, botocore, uvicorn) to the same output, one line each."""

    def __init__(self, output: _LineOutput) -> None:
        self.output = output
        super().__init__(output.stream)

    @property  # StreamHandler's plain attribute, kept on the output
    def stream(self) -> TextIO:
        return self.output.stream

    @stream.setter
    def stream(self, stream: TextIO) -> None:
        self.output.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.output.write(self.format(record))
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def _dramatiq_relay_bypass() -> int | None:
    """fd 2 when this is a dramatiq worker process whose stderr the CLI replaced with its log
    pipe (``dramatiq.cli.make_logging_setup``) and no ``--log-file`` asks the master to write
    the lines somewhere else."""
    relayed = type(sys.stderr).__name__ == "StreamablePipe" and sys.__stderr__ is not None
    if not relayed or any(arg.startswith("--log-file") for arg in sys.argv):
        return None
    return sys.__stderr__.fileno()  # type: ignore[union-attr]  # checked above


def _wants_console(settings: Settings) -> bool:
    if settings.log_format == "console":
        return True
    if settings.log_format == "json":
        return False
    return sys.stderr.isatty()


def configure_logging(settings: Settings | None = None, *, force: bool = False) -> None:
    settings = settings or get_settings()
    if structlog.is_configured() and not force:
        return
    for secret in (
        settings.remotion_aws_access_key_id,
        settings.remotion_aws_secret_access_key,
        settings.notify_signing_secret,
    ):
        if secret is not None:
            register_secret(secret.get_secret_value())
    for webhook_secret in settings.webhook_secrets():
        register_secret(webhook_secret)

    console = _wants_console(settings)
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # The end of both chains, renderq's own lines and the stdlib's: tracebacks to text,
    # secrets masked, the line rendered.
    rendering: list[Any]
    if console:
        rendering = [
            structlog.processors.format_exc_info,
            redact_secrets,
            structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback),
        ]
    else:
        rendering = [
            # Locals would put AWS keys and message bodies into the logs.
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            redact_secrets,
            structlog.processors.JSONRenderer(),
        ]

    # Reset, not replaced: loggers structlog cached before a reconfiguration write to it too.
    output = _OUTPUT
    output.stream, output.direct_fd = sys.stderr, None if console else _dramatiq_relay_bypass()
    level = logging.getLevelNamesMapping()[settings.log_level]  # validated by Settings
    structlog.configure(
        processors=[
            *shared_processors,
            structlog.processors.StackInfoRenderer(),
            *rendering,
        ],
        logger_factory=functools.partial(_LineWriter, output),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *rendering,
        ],
    )
    handler = _LineHandler(output)
    handler.setFormatter(formatter)
    handler.addFilter(_DropSkippedMessageWarnings())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "sqlalchemy.engine", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for old, new in renamed_in_environment():
        get_logger(__name__).warning(
            "setting renamed; the old name works until 0.3", old_name=old, new_name=new
        )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """renderq's logger for the module ``name`` (its lines' ``logger`` key)."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
