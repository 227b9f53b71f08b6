"""The migrations build exactly the models' schema, and go down and up again, on both backends."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, make_url, text

from app import migrate
from app.models import Base


@pytest.fixture
def scratch_database_url(backend, tmp_path):
    """An empty database of the current backend, separate from the suite's."""
    if backend == "embedded":
        yield f"sqlite:///{tmp_path / 'scratch.db'}"
        return
    from app.config import get_settings

    url = make_url(get_settings().database_url)
    name = f"imagebooth_scratch_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        from app.db import dispose_engines

        dispose_engines()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_migrated_schema_matches_the_models(scratch_database_url) -> None:
    migrate.upgrade(scratch_database_url)
    engine = create_engine(scratch_database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_downgrade_to_base_and_upgrade_again(scratch_database_url) -> None:
    migrate.upgrade(scratch_database_url)
    migrate.downgrade(scratch_database_url, "base")
    engine = create_engine(scratch_database_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(scratch_database_url)
    assert {table.name for table in Base.metadata.sorted_tables} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_sqlite_connections_use_wal_and_foreign_keys(backend, tmp_path) -> None:
    if backend != "embedded":
        pytest.skip("SQLite pragmas")
    from app.db import engine_for

    with engine_for(f"sqlite:///{tmp_path / 'p.db'}").connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 5000
