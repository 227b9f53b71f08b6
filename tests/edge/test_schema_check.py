"""A database behind this code's schema is named at start-up and by /readyz, never found
out by a 500 on the first signup."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from app import migrate
from tests.conftest import REAL_DATABASE_URL


@pytest.fixture
def unmigrated_url(tmp_path, backend):
    """An empty database of this backend's kind: a new SQLite file, or an empty Postgres schema."""
    if backend != "real":
        yield f"sqlite:///{tmp_path / 'unmigrated.db'}"
        return
    engine = create_engine(REAL_DATABASE_URL)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS unmigrated CASCADE"))
        connection.execute(text("CREATE SCHEMA unmigrated"))
    yield REAL_DATABASE_URL + "?options=-csearch_path%3Dunmigrated"
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS unmigrated CASCADE"))
    engine.dispose()


def head() -> str:
    return migrate.schema_state().head


def test_worker_refuses_an_unmigrated_database_with_one_line(run_cli, env_override, unmigrated_url) -> None:
    env_override(DATABASE_URL=unmigrated_url)
    result = run_cli("worker", "--queues", "inference")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [f"imagebooth: the database schema is not created yet; this version needs {head()}: "
                     "run `imagebooth migrate` first (or pass --migrate)"]


def test_serve_refuses_an_unmigrated_postgres(run_cli, env_override, unmigrated_url, backend) -> None:
    if backend != "real":
        pytest.skip("serve migrates an embedded SQLite database itself")
    env_override(DATABASE_URL=unmigrated_url)
    result = run_cli("serve", "--port", "1")
    assert result.returncode == 1 and "run `imagebooth migrate`" in result.stderr
    assert "Traceback" not in result.stderr and "running at" not in result.stdout


def test_readyz_names_a_schema_not_created_or_behind(clean_state, env_override, unmigrated_url) -> None:
    from app.main import create_app

    env_override(DATABASE_URL=unmigrated_url)
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        missing = client.get("/readyz")
        assert missing.status_code == 503 and missing.json()["error"]["failing"] == ["schema"]
        assert f"schema not created yet; this version needs {head()}" in missing.json()["error"]["message"]
        assert client.get("/healthz").status_code == 200
        migrate.upgrade(unmigrated_url, "0001")
        behind = client.get("/readyz").json()["error"]
        assert behind["failing"] == ["schema"] and behind["checks"]["schema"] == f"at revision 0001; this version needs {head()}"
        assert migrate.ensure_current_schema(migrate=True) is None  # --migrate's path
        assert client.get("/readyz").status_code == 200


def test_a_schema_newer_than_this_code_is_named_and_never_migrated(clean_state, env_override, unmigrated_url) -> None:
    from sqlalchemy import create_engine

    migrate.upgrade(unmigrated_url)
    engine = create_engine(unmigrated_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'from_the_future'"))
    engine.dispose()
    env_override(DATABASE_URL=unmigrated_url)
    line = migrate.ensure_current_schema(migrate=True)
    assert line == ("imagebooth: the database schema is at revision from_the_future, which this version does not "
                    "know (a newer version migrated it): run the version that matches it")
    assert migrate.schema_state().current == "from_the_future"  # left as it was
