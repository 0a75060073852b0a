"""The migrations build the schema the models describe, on SQLite and PostgreSQL."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy import inspect

from portal.extensions import db


@pytest.mark.parametrize("db_backend", ["sqlite", "postgresql"])
def test_upgrading_an_empty_database_matches_the_models(app):
    db.metadata.drop_all(db.engine)
    upgrade(directory="migrations")
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == []
    tables = set(inspect(db.engine).get_table_names())
    assert {"registration", "job", "audit_event", "deletion_batch", "alembic_version"} <= tables


@pytest.mark.parametrize("db_backend", ["sqlite", "postgresql"])
def test_every_foreign_key_column_is_indexed(app):
    inspector = inspect(db.engine)
    for table in inspector.get_table_names():
        indexed = set()
        for index in inspector.get_indexes(table):
            indexed.add(index["column_names"][0])
        for unique in inspector.get_unique_constraints(table):
            indexed.add(unique["column_names"][0])
        for fk in inspector.get_foreign_keys(table):
            assert fk["constrained_columns"][0] in indexed, (table, fk["constrained_columns"])
