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


def test_sqlite_batch_migrations_keep_the_children_of_recreated_tables(app):
    """Recreating data_source in 0002 must not cascade-delete its fields and registrations."""
    db.metadata.drop_all(db.engine)
    upgrade(directory="migrations", revision="0001")
    with db.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO organization (id, name, created_at) VALUES (1, 'Acme', '2025-01-01')")
        conn.exec_driver_sql(
            "INSERT INTO data_source (id, organization_id, name, connector, source_type, settings, secrets, "
            "registration_count, created_at) VALUES (1, 1, 'Calls', 'manual', 'manual', '{}', '{}', 1, '2025-01-01')")
        conn.exec_driver_sql("INSERT INTO field (data_source_id, key, label, type, position) VALUES (1, 'a', 'A', 'text', 0)")
        conn.exec_driver_sql(
            'INSERT INTO registration (data_source_id, external_id, occurred_on, "values", updated_at) '
            "VALUES (1, 'x', '2025-01-01', '{}', '2025-01-01')")
    upgrade(directory="migrations")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM field").scalar() == 1
        assert conn.exec_driver_sql("SELECT count(*) FROM registration").scalar() == 1
        assert conn.exec_driver_sql("SELECT pending_deletion FROM data_source").scalar() == 0
