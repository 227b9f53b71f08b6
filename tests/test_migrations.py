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


def test_upgrading_from_0002_keeps_every_row(scratch_database_url) -> None:
    """0003 drops users.tier in place: on SQLite, copying the table instead would drop the old
    `users` and cascade-delete every row that refers to it."""
    migrate.upgrade(scratch_database_url, "0002_finetune_run_state")
    engine = create_engine(scratch_database_url)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO users (id, email, password_hash, tier, created_at) "
                                "VALUES ('u1', 'a@example.com', 'h', 'premium', CURRENT_TIMESTAMP)"))
        connection.execute(text("INSERT INTO api_keys (id, user_id, name, prefix, key_hash, created_at) "
                                "VALUES ('k1', 'u1', 'key', 'ib_', 'hash', CURRENT_TIMESTAMP)"))
        connection.execute(text("INSERT INTO credit_ledger (id, user_id, amount, bucket, reason, created_at) "
                                "VALUES ('e1', 'u1', 100, 'paid', 'purchase', CURRENT_TIMESTAMP)"))
    engine.dispose()
    migrate.upgrade(scratch_database_url)
    engine = create_engine(scratch_database_url)
    with engine.connect() as connection:
        counts = [connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                  for table in ("users", "api_keys", "credit_ledger")]
        assert counts == [1, 1, 1]
        assert "tier" not in {column["name"] for column in inspect(connection).get_columns("users")}
    engine.dispose()
