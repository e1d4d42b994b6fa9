"""Start and stop the local pieces a demo or benchmark needs: Redis, the emulator, workers.

Used by ``devtools.demo`` (and the benchmark and chaos scripts): everything it starts, it stops,
including a private ``redis-server`` when nothing listens at ``REDIS_URL``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import redis

from shared.redis_keys import RedisKeys

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def dramatiq_argv(
    module: str,
    *,
    processes: int,
    threads: int,
    queues: list[str] | None = None,
    shutdown_timeout_ms: int | None = None,
) -> list[str]:
    """The ``dramatiq`` command line of this venv, as the Procfile runs it (JSON logs come from
    renderq's own logging, hence ``--skip-logging``)."""
    argv = [
        str(Path(sys.executable).parent / "dramatiq"),
        module,
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        "--skip-logging",
    ]
    if shutdown_timeout_ms is not None:
        argv += ["--worker-shutdown-timeout", str(shutdown_timeout_ms)]
    if queues:
        argv += ["--queues", *queues]
    return argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), 1
        ):
            return True
    except OSError:
        return False


def wait_for(
    predicate: Callable[[], T | None], *, timeout: float, interval: float = 0.05, what: str = ""
) -> T:
    """Poll ``predicate`` until it returns something truthy (so never None); TimeoutError after
    ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what or predicate}")
        time.sleep(interval)


@dataclass
class Stack:
    """Processes started for one run; ``close()`` stops them in reverse order."""

    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def spawn(
        self, name: str, argv: list[str], *, capture_stdout: bool = False
    ) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE if capture_stdout else log,
            stderr=log,
            start_new_session=True,
        )
        self.processes.append((name, proc))
        return proc

    def ensure_redis(self, url: str, *, private: bool = False) -> str:
        """Use the Redis at ``url``; if none listens (or ``private``) and redis-server exists,
        run a private one."""
        if not private and listening(url, 6379):
            return url
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit(f"No Redis listens at {url} and no redis-server binary was found.")
        port = free_port()
        self.spawn(
            "redis",
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.log_dir),
            ],
        )
        private_url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while not listening(private_url, port):
            if time.monotonic() > deadline:
                raise SystemExit("private redis-server did not start")
            time.sleep(0.05)
        return private_url

    def start_emulator(self, *args: str) -> str:
        proc = self.spawn(
            "emulator",
            [sys.executable, "-m", "devtools.emulator", "--port", "0", *args],
            capture_stdout=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if "listening on" not in line:
            raise SystemExit(f"emulator did not start: {line!r}")
        return line.rsplit(" ", 1)[-1]

    def start_worker(
        self,
        name: str = "worker",
        *,
        processes: int = 2,
        threads: int = 8,
        queues: list[str] | None = None,
    ) -> subprocess.Popen[bytes]:
        argv = dramatiq_argv("worker.actors", processes=processes, threads=threads, queues=queues)
        return self.spawn(name, argv)

    def start_scheduler(self, name: str = "scheduler") -> subprocess.Popen[bytes]:
        return self.spawn(name, [sys.executable, "-m", "worker.scheduler"])

    def close(self, timeout: float = 15.0) -> None:
        for _name, proc in reversed(self.processes):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + timeout
        for _name, proc in reversed(self.processes):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.processes.clear()


@contextlib.contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """An empty PostgreSQL database of its own on the server of ``server_url``, dropped (with
    any connections left to it) when the block ends. Yields its URL."""
    import uuid

    import sqlalchemy as sa

    from shared.db import normalize_url

    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(normalize_url(server_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def drop_namespace(redis_url: str, namespace: str) -> int:
    """Delete every key of a namespace (Dramatiq's and renderq's); returns how many."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=RedisKeys(namespace).everything(), count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        return len(keys)
    finally:
        client.close()
