"""docker-compose.yml and the Procfile describe the same processes, wired by environment.

No Docker engine runs in CI, so this checks the files' structure instead of running them.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            entries[name.strip()] = command.strip()
    return entries


def test_compose_has_every_service_and_restart_policies():
    services = compose()["services"]
    assert {"redis", "postgres", "emulator", "migrate", "worker", "poller", "scheduler"} <= set(
        services
    )
    for name in ("worker", "poller", "scheduler", "redis", "postgres"):
        assert services[name]["restart"] == "unless-stopped", name
    assert (
        services["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    )


def test_compose_wires_workers_by_environment():
    services = compose()["services"]
    for name in ("worker", "poller", "scheduler", "migrate"):
        env = services[name]["environment"]
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert (
            env["DATABASE_URL"].startswith("postgresql://") and "@postgres:" in env["DATABASE_URL"]
        )
        assert env["AWS_ENDPOINT_URL_LAMBDA"] == "http://emulator:9001"
    assert "9001" in services["emulator"]["command"]


def test_procfile_and_compose_run_the_same_commands():
    procs = procfile()
    services = compose()["services"]
    assert procs["worker"] == " ".join(services["worker"]["command"])
    assert procs["scheduler"] == " ".join(services["scheduler"]["command"])
    assert (
        procs["worker"].startswith("dramatiq worker.actors") and "--skip-logging" in procs["worker"]
    )
    assert procs["release"] == "alembic upgrade head"


def test_the_production_image_leaves_the_dev_tools_out():
    """``docker build .`` builds the last stage: it must not copy devtools/, which only the
    emulator's stage (the one compose builds for it) needs."""
    stages: dict[str, list[str]] = {}
    current = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            current = line.split()[-1]
            stages[current] = [line]
        elif current:
            stages[current].append(line)
    last = list(stages)[-1]
    assert last == "production" and stages[last][0] == "FROM base AS production"
    assert not any("devtools" in line for line in stages["base"] + stages["production"])
    assert any(line.startswith("COPY devtools") for line in stages["devtools"])
    assert compose()["services"]["emulator"]["build"]["target"] == "devtools"
    for name in ("worker", "poller", "scheduler", "migrate"):
        assert compose()["services"][name]["build"] == "."
    assert "emulator" not in procfile()  # the Procfile is what production runs
