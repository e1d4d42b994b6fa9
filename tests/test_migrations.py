"""Migrations build exactly the schema the models describe, and can be rolled back."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import shared.access_models  # registers its tables on SQLModel.metadata
import shared.models  # noqa: F401
from devtools.devstack import scratch_database
from devtools.migrate import alembic_config, upgrade_head
from shared.db import normalize_url


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
    with scratch_database(pg_server_url, "renderq_mig") as url:
        upgrade_head(url)
        assert _diff(url) == []
        command.downgrade(alembic_config(url), "base")
        upgrade_head(url)
