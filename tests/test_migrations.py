"""Migrations build exactly the schema the models describe, and can be rolled back."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import shared.models  # noqa: F401
from shared.db import normalize_url
from shared.migrate import alembic_config, upgrade_head


def _diff(url: str) -> list[object]:
    engine = sa.create_engine(normalize_url(url))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    engine.dispose()
    return diff


def test_sqlite_upgrade_matches_models_and_downgrades(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade_head(url)
    assert _diff(url) == []
    command.downgrade(alembic_config(url), "base")
    engine = sa.create_engine(url)
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_postgresql_upgrade_matches_models_and_downgrades(pg_server_url):
    name = f"renderq_mig_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(normalize_url(pg_server_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = pg_server_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade_head(url)
        assert _diff(url) == []
        command.downgrade(alembic_config(url), "base")
        upgrade_head(url)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
