"""Run Alembic migrations from code (`imagebooth migrate`, `serve`, tests)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent


def alembic_config(database_url: str | None = None) -> Config:
    # Built in code rather than from alembic.ini so it works from any working directory
    # and from an installed (non-editable) package.
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["configure_logging"] = False
    if database_url:
        config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


@dataclass(frozen=True)
class SchemaState:
    current: str | None  # None: no schema at all (never migrated)
    head: str
    known: bool  # `current` is one of this code's revisions (False: a newer version's)

    @property
    def is_current(self) -> bool:
        return self.current == self.head

    def describe(self) -> str:
        if self.is_current:
            return f"at revision {self.head}"
        if not self.known:
            return f"at revision {self.current}, which this version does not know (a newer version migrated it)"
        at = f"at revision {self.current}" if self.current else "not created yet"
        return f"{at}; this version needs {self.head}"


@lru_cache(maxsize=1)
def _revisions() -> tuple[str, frozenset[str]]:
    """This code's newest revision and all of them (read once: /readyz asks often)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    head = scripts.get_current_head()
    assert head is not None  # the migrations folder ships with the code
    return head, frozenset(script.revision for script in scripts.walk_revisions())


def schema_state(database_url: str | None = None) -> SchemaState:
    """Where the database's schema is, against the newest migration of this code."""
    from alembic.runtime.migration import MigrationContext

    from app.config import get_settings
    from app.db import engine_for

    head, revisions = _revisions()
    with engine_for(database_url or get_settings().database_url).connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return SchemaState(current, head, current is None or current in revisions)


def ensure_current_schema(migrate: bool) -> str | None:
    """None when the schema is current (migrating first if `migrate`); otherwise the one
    line that tells the operator what to do."""
    state = schema_state()
    if state.is_current:
        return None
    if not state.known:
        return f"imagebooth: the database schema is {state.describe()}: run the version that matches it"
    if migrate:
        upgrade()
        return None
    return f"imagebooth: the database schema is {state.describe()}: run `imagebooth migrate` first (or pass --migrate)"
