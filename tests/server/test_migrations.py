"""The Alembic history is one straight line, and migrating to head gives exactly the models' schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import server.db  # noqa: F401  (registers every model module on the metadata)
from server.db.engine import Database
from server.db.models import Base


def test_one_head_and_a_linear_history(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    script = ScriptDirectory.from_config(db.alembic_config())
    assert len(script.get_heads()) == 1, (
        f"several heads: {script.get_heads()} (re-chain the newest migration)"
    )
    revisions = list(script.walk_revisions())
    assert all(not isinstance(r.down_revision, tuple) for r in revisions), "merge revisions are not expected"
    db.dispose()


def test_migrations_build_exactly_the_models_schema(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    db.migrate()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    db.dispose()
    # Tables, columns and indexes (SQLite reports no server defaults or comment diffs).
    relevant = [
        d
        for d in diff
        if isinstance(d, tuple)
        and d[0] in ("add_table", "remove_table", "add_column", "remove_column", "add_index", "remove_index")
    ]
    assert relevant == [], relevant
