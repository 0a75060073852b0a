"""SQL mechanics the operations share across SQLite and PostgreSQL."""

from sqlalchemy import func, select

from portal.extensions import db


def is_postgresql():
    """Whether the session talks to PostgreSQL."""
    return db.session.get_bind().dialect.name == "postgresql"


def insert_counting(statement, key_column):
    """Run an INSERT ... SELECT and return how many rows it inserted.

    psycopg reports no rowcount for INSERT ... SELECT through SQLAlchemy, so on PostgreSQL
    the insert becomes a CTE that returns its keys and is counted in the same statement.
    """
    if is_postgresql():
        return db.session.scalar(select(func.count()).select_from(statement.returning(key_column).cte()))
    return db.session.execute(statement).rowcount
