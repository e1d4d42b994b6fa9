"""Helpers for tests that run real processes: workers, schedulers, the emulator over HTTP."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from devtools.devstack import dramatiq_argv, wait_for

if TYPE_CHECKING:
    from shared.models import Render
    from shared.render_request import RenderRequest

T = TypeVar("T")


@contextlib.contextmanager
def captured_log() -> Iterator[io.StringIO]:
    """The log lines this process writes meanwhile, renderq's own and the stdlib's (one output
    behind the root handler, ``shared.log``), for a test to read."""
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler), "configure_logging() has not run"
    before, handler.stream = handler.stream, io.StringIO()
    try:
        yield handler.stream
    finally:
        handler.stream = before


def wait_until(
    predicate: Callable[[], T | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "",
) -> T:
    """``devtools.devstack.wait_for`` for tests: a timeout is an assertion failure."""
    try:
        return wait_for(predicate, timeout=timeout, interval=interval, what=what)
    except TimeoutError as exc:
        raise AssertionError(str(exc)) from None


def get_render(render_id: str) -> Render:
    """``shared.renders.get`` for a render the test knows exists: a missing row fails the test."""
    from shared import renders

    render = renders.get(render_id)
    assert render is not None, f"render {render_id} has no row"
    return render


def emulator_call(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    from devtools.emulator import control

    return control(url, path, body)


@dataclass
class ManagedProcess:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def json_logs(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.logs().splitlines():
            line = line.strip()
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    lines.append(json.loads(line))
        return lines


@dataclass
class WorkerGroup:
    """Starts ``dramatiq`` workers and schedulers as real subprocesses with a given env."""

    root: Path
    env: dict[str, str]
    processes: list[ManagedProcess] = field(default_factory=list)
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="renderq-logs-")))

    def _spawn(
        self, name: str, argv: list[str], extra_env: dict[str, str] | None
    ) -> ManagedProcess:
        env = {**os.environ, **self.env, **(extra_env or {}), "PYTHONUNBUFFERED": "1"}
        log_path = self.log_dir / f"{name}-{len(self.processes)}.log"
        log_file = log_path.open("wb")
        proc = subprocess.Popen(
            argv,
            cwd=self.root,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        managed = ManagedProcess(name, proc, log_path)
        self.processes.append(managed)
        return managed

    def start_worker(
        self,
        *,
        processes: int = 1,
        threads: int = 4,
        queues: list[str] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> ManagedProcess:
        argv = dramatiq_argv(
            "worker.actors",
            processes=processes,
            threads=threads,
            queues=queues,
            shutdown_timeout_ms=10000,
        )
        return self._spawn("worker", argv, extra_env)

    def start_scheduler(self, extra_env: dict[str, str] | None = None) -> ManagedProcess:
        return self._spawn("scheduler", [sys.executable, "-m", "worker.scheduler"], extra_env)

    def start_web(self, port: int, extra_env: dict[str, str] | None = None) -> ManagedProcess:
        """``python -m web`` on ``port``; returns once ``/healthz`` answers."""
        import urllib.request

        env = {"WEB_HOST": "127.0.0.1", "WEB_PORT": str(port), **(extra_env or {})}
        web = self._spawn("web", [sys.executable, "-m", "web"], env)

        def healthy() -> bool:
            if web.proc.poll() is not None:
                raise AssertionError(f"web process exited:\n{web.logs()[-2000:]}")
            try:
                url = f"http://127.0.0.1:{port}/healthz"
                with urllib.request.urlopen(url, timeout=1) as answer:
                    return bool(answer.status == 200)
            except OSError:
                return False

        wait_until(healthy, timeout=30, what="web process healthy")
        return web

    def stop(self, managed: ManagedProcess, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if managed.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(managed.proc.pid, sig)
            try:
                managed.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(managed.proc.pid, signal.SIGKILL)
                managed.proc.wait(5)
        return managed.proc.returncode

    def stop_all(self) -> None:
        """Teardown: kill outright. Tests that care about graceful stops send SIGTERM themselves."""
        for managed in reversed(self.processes):
            self.stop(managed, signal.SIGKILL)

    def all_logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.logs()}" for p in self.processes)


class TcpProxy:
    """A TCP forwarder a test can cut and restore, to make a real server unreachable."""

    def __init__(self, target_host: str, target_port: int) -> None:
        import threading

        self.target = (target_host, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(256)
        self.port = int(self.listener.getsockname()[1])
        self.up = True
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

    def cut(self) -> None:
        """Refuse new connections and break every open one."""
        self.up = False
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def run_module(
    module: str, env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` from the repository root with ``env`` on top of ours, the way
    an operator runs the scripts."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def proxied_database(database_url: str, password: str | None = None) -> tuple[TcpProxy, str]:
    """A proxy in front of the database server of ``database_url`` (to cut it), and the URL
    that goes through it; ``password`` is put into that URL."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    assert url.host and url.port, database_url
    proxy = TcpProxy(url.host, url.port)
    through = url.set(host="127.0.0.1", port=proxy.port)
    if password is not None:
        through = through.set(password=password)
    return proxy, through.render_as_string(hide_password=False)


def all_terminal(ids: list[str]) -> bool:
    """Every render of ``ids`` is complete or failed."""
    from shared import renders

    return all(r.status in ("complete", "failed") for r in renders.get_many(ids))


def database_outage_under_load(
    workers: WorkerGroup,
    database_url: str,
    render_ids: list[str],
    down_s: float,
    password: str | None = None,
) -> None:
    """Run a worker and a scheduler whose database connections go through a proxy, wait until
    they have started on ``render_ids``, then cut the database for ``down_s`` seconds and
    wait until every render is terminal again. The caller's own connections stay direct;
    ``password`` goes into the workers' URL."""
    from shared import renders

    proxy, proxied = proxied_database(database_url, password)
    try:
        workers.start_worker(processes=1, threads=4, extra_env={"DATABASE_URL": proxied})
        workers.start_scheduler(extra_env={"DATABASE_URL": proxied})
        wait_until(
            lambda: any(r.status != "pending" for r in renders.get_many(render_ids)),
            timeout=30,
            what="work under way",
        )
        proxy.cut()
        time.sleep(down_s)
        proxy.restore()
        wait_until(
            lambda: all_terminal(render_ids), timeout=120, what="every render terminal again"
        )
    finally:
        proxy.close()


def make_request(**overrides: object) -> RenderRequest:
    """A valid render request (1080p, 10 s) with any field overridden."""
    from shared.render_request import RenderRequest

    values: dict[str, Any] = {
        "user_id": "u1",
        "generation_id": "g1",
        "composition": "Main",
        "input_props": {"title": "Hi"},
        "width": 1920,
        "height": 1080,
        "fps": 30,
        "duration_in_frames": 300,
    }
    values.update(overrides)
    return RenderRequest(**values)
