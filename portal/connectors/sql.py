"""The SQL database connector: reads a table or a SELECT of an original database (no Flask here).

The database is any SQLAlchemy URL (PostgreSQL, MySQL, SQLite) kept in the data source's
secrets as `url`. Settings: `table` (optionally `schema.table`) or `query` (one read-only
SELECT), `id_column`, `date_column`, `employee_column` (employee email), optionally
`employee_name_column`, `value_columns` (default: every other column) and `page_size`.
"""

import math
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from portal.connectors.base import ConnectorConfig, ConnectorError, Period, SourceRecord

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000
MAX_IDENTIFIER_LENGTH = 128

# Words that let a SELECT write or lock (a data-modifying CTE, SELECT INTO, FOR UPDATE,
# LOCK IN SHARE MODE) or that start a statement of their own. They are looked for in the
# whole text, string literals included: a scanner that mis-reads one dialect's quoting
# could otherwise be fooled into missing one.
WRITING_WORDS = frozenset({
    "INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "INTO", "LOCK",
    "DROP", "ALTER", "CREATE", "TRUNCATE", "GRANT", "REVOKE",
})
LEADING_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.DOTALL)
STARTS_AS_SELECT = re.compile(r"\A\(*\s*(?:SELECT|WITH)\b", re.IGNORECASE)

# Statements that make every later transaction of a session read-only; the database then
# refuses writes even if something slipped past the query check.
READ_ONLY_SESSION = {
    "postgresql": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
    "mysql": "SET SESSION TRANSACTION READ ONLY",
    "mariadb": "SET SESSION TRANSACTION READ ONLY",
}


@dataclass(frozen=True)
class SqlSettings:
    """A SQL data source's settings, checked (no connection needed)."""

    table: str | None
    schema: str | None
    query: str | None
    id_column: str
    date_column: str
    employee_column: str
    employee_name_column: str | None = None
    value_columns: tuple[str, ...] | None = None
    page_size: int = DEFAULT_PAGE_SIZE

    @classmethod
    def from_settings(cls, settings):
        """Check a settings dict; ConnectorError says what is wrong."""
        table, query = settings.get("table"), settings.get("query")
        if bool(table) == bool(query):
            raise ConnectorError("Set either a table or a query (not both).")
        schema = None
        if table:
            table = _identifier(table, "table")
            if table.count(".") == 1:
                schema, table = table.split(".")
        else:
            query = checked_query(query)
        return cls(
            table=table,
            schema=schema,
            query=query,
            id_column=_identifier(settings.get("id_column"), "id_column"),
            date_column=_identifier(settings.get("date_column"), "date_column"),
            employee_column=_identifier(settings.get("employee_column"), "employee_column"),
            employee_name_column=(_identifier(settings["employee_name_column"], "employee_name_column")
                                  if settings.get("employee_name_column") else None),
            value_columns=_value_columns(settings.get("value_columns")),
            page_size=_page_size(settings.get("page_size", DEFAULT_PAGE_SIZE)),
        )

    @property
    def source_label(self):
        """How messages name the source."""
        if self.query:
            return "The query"
        return f"Table {self.table!r}" if self.schema is None else f"Table {self.schema + '.' + self.table!r}"


def _identifier(value, setting):
    """A table or column name as given; it is quoted by SQLAlchemy and checked against the source."""
    if not isinstance(value, str) or not value.strip():
        raise ConnectorError(f"Setting {setting} is required.")
    value = value.strip()
    if len(value) > MAX_IDENTIFIER_LENGTH or not value.isprintable():
        raise ConnectorError(f"Setting {setting} is not a valid name.")
    return value


def _value_columns(value):
    if not value:
        return None
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)):
        raise ConnectorError("Setting value_columns must be a list of column names.")
    return tuple(_identifier(name, "value_columns") for name in value)


def _page_size(value):
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = 0
    if isinstance(value, bool) or not 1 <= size <= MAX_PAGE_SIZE:
        raise ConnectorError(f"Setting page_size must be a whole number from 1 to {MAX_PAGE_SIZE}.")
    return size


def checked_query(query):
    """The query without a trailing ';' if it is one read-only SELECT; ConnectorError otherwise."""
    if not isinstance(query, str):
        raise ConnectorError("Setting query must be SQL text.")
    query = query.strip().rstrip(";").strip()
    if not STARTS_AS_SELECT.match(query[LEADING_COMMENTS.match(query).end():]):
        raise ConnectorError("The query must be a SELECT statement (starting with SELECT or WITH).")
    if ";" in query:
        raise ConnectorError("The query must be a single statement: it contains ';'.")
    writing = sorted({word.upper() for word in re.findall(r"\w+", query)} & WRITING_WORDS)
    if writing:
        raise ConnectorError(
            f"The query must only read: it contains {', '.join(writing)} (refused even inside quotes)."
        )
    return query


def redacted_url(url):
    """The database URL as it can be shown: its password replaced by ***."""
    if not url:
        return ""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        # Unparseable, so the password's place is a guess: everything from the user's ':' to the last '@'.
        return re.sub(r"(\A|//)([^:/@]*):.*@", r"\1\2:***@", str(url), flags=re.DOTALL)


class SqlReader:
    """Reads registrations from a table or query of an original SQL database."""

    def read(self, config: ConnectorConfig, period: Period):
        """Yield the period's records, page by page, streamed from the database."""
        settings = SqlSettings.from_settings(config.settings)
        with _connected(config) as conn:
            source = _Source.open(conn, settings)
            names = source.selected_names()
            statement = sa.select(*[source.columns[name] for name in names]).where(*source.within(period))
            record = source.mapper(names)
            with _streamed(conn, statement, settings.page_size) as result:
                for rows in result.partitions():
                    yield [record(row) for row in rows]

    def deleted_ids(self, config: ConnectorConfig, period: Period):
        """Yield nothing: a database does not list deleted rows; imports reconcile with existing_ids."""
        yield from ()

    def existing_ids(self, config: ConnectorConfig, period: Period):
        """Yield pages of the external ids the source holds for the period."""
        settings = SqlSettings.from_settings(config.settings)
        with _connected(config) as conn:
            source = _Source.open(conn, settings)
            id_column = source.columns[source.id_column]
            statement = sa.select(id_column).where(*source.within(period))
            with _streamed(conn, statement, settings.page_size) as result:
                for rows in result.partitions():
                    yield [_external_id(row[0], source.id_column) for row in rows]

    def count_existing(self, config: ConnectorConfig, external_ids):
        """How many of these external ids the source still has (whatever their dates)."""
        settings = SqlSettings.from_settings(config.settings)
        wanted = sorted({str(e) for e in external_ids})
        if not wanted:
            return 0
        with _connected(config) as conn:
            source = _Source.open(conn, settings)
            # Compared as text, as external ids are: an integer id column matches "90001".
            as_text = sa.cast(source.columns[source.id_column], sa.String)
            return sum(conn.scalar(sa.select(sa.func.count()).where(as_text.in_(wanted[start:start + 500])))
                       for start in range(0, len(wanted), 500))

    def check(self, config: ConnectorConfig):
        """Connect, check the settings against the source and return its column names."""
        settings = SqlSettings.from_settings(config.settings)
        with _connected(config) as conn:
            return list(_Source.open(conn, settings).columns.keys())


@dataclass(frozen=True)
class _Source:
    """The table or query, its real column names, and the configured columns resolved to them."""

    columns: sa.ColumnCollection
    id_column: str
    date_column: str
    employee_column: str
    employee_name_column: str | None
    value_columns: tuple[str, ...]

    @classmethod
    def open(cls, conn, settings):
        """Look at the source's columns (reading no rows) and resolve the settings against them."""
        if settings.query:
            selectable, names = _query_source(conn, settings)
        else:
            selectable, names = _table_source(conn, settings)

        def resolve(wanted, setting):
            if wanted in names:
                return wanted
            # An unquoted name is folded (PostgreSQL lower-cases it); match it as the database would.
            same = [name for name in names if name.lower() == wanted.lower()]
            if len(same) == 1:
                return same[0]
            raise ConnectorError(
                f"{settings.source_label} has no column {wanted!r} (setting {setting}); "
                f"its columns are: {', '.join(names)}."
            )

        id_column = resolve(settings.id_column, "id_column")
        date_column = resolve(settings.date_column, "date_column")
        employee_column = resolve(settings.employee_column, "employee_column")
        employee_name_column = (resolve(settings.employee_name_column, "employee_name_column")
                                if settings.employee_name_column else None)
        if settings.value_columns is None:
            mapped = {id_column, date_column, employee_column, employee_name_column}
            value_columns = tuple(name for name in names if name not in mapped)
        else:
            value_columns = tuple(resolve(name, "value_columns") for name in settings.value_columns)
        return cls(selectable.c, id_column, date_column, employee_column,
                   employee_name_column, value_columns)

    def selected_names(self):
        """Every column a record needs, once each, in a fixed order."""
        wanted = [self.id_column, self.date_column, self.employee_column, self.employee_name_column,
                  *self.value_columns]
        return list(dict.fromkeys(name for name in wanted if name is not None))

    def within(self, period):
        """Conditions for rows dated inside the inclusive period."""
        # A half-open upper bound covers DATE, TIMESTAMP and ISO text ('2025-01-31 23:59' < '2025-02-01').
        day = self.columns[self.date_column]
        conditions = [day >= period.start]
        if period.end < date.max:
            conditions.append(day < period.end + timedelta(days=1))
        return conditions

    def mapper(self, names):
        """A function turning a result row, its columns in `names` order, into a SourceRecord.

        Positions are worked out once here, not per row: an import maps every row it reads.
        """
        at = {name: position for position, name in enumerate(names)}
        id_at, date_at, employee_at = at[self.id_column], at[self.date_column], at[self.employee_column]
        name_at = at.get(self.employee_name_column) if self.employee_name_column else None
        values_at = [(column, at[column]) for column in self.value_columns]
        id_column, date_column = self.id_column, self.date_column

        def record(row):
            row_id = row[id_at]
            return SourceRecord(
                external_id=_external_id(row_id, id_column),
                occurred_on=_occurred_on(row[date_at], row_id, date_column),
                values={column: json_value(row[position]) for column, position in values_at},
                employee_email=_text(row[employee_at]),
                employee_name=_text(row[name_at]) if name_at is not None else None,
            )

        return record


def _table_source(conn, settings):
    """The table (or view) and its column names; a wrongly cased name is matched if unambiguous."""
    try:
        return _columns_of(conn, sa.table(settings.table, schema=settings.schema))
    except sa.exc.DBAPIError as exc:
        reason = _reason(exc)
        conn.rollback()  # PostgreSQL refuses further statements in a failed transaction
    known = _table_names(conn, settings.schema)
    same = [name for name in known if name.lower() == settings.table.lower() and name != settings.table]
    if len(same) == 1:
        return _columns_of(conn, sa.table(same[0], schema=settings.schema))
    listing = f" The database has: {', '.join(known[:20])}." if known else ""
    raise ConnectorError(f"{settings.source_label} cannot be read: {reason}.{listing}")


def _table_names(conn, schema):
    try:
        inspector = sa.inspect(conn)
        return sorted(inspector.get_table_names(schema=schema) + inspector.get_view_names(schema=schema))
    except sa.exc.DBAPIError:
        conn.rollback()
        return []


def _query_source(conn, settings):
    """The query as a subquery, and its column names."""
    # Escaped so that text() takes no ':word' in the SQL for a bind parameter.
    sql = sa.text(re.sub(r":", r"\\:", settings.query))
    try:
        _, names = _columns_of(conn, sql.columns().subquery("source"))
    except sa.exc.DBAPIError as exc:
        raise ConnectorError(f"The query failed: {_reason(exc)}.") from None
    # Wrapped as a subquery, it can only be one SELECT: a second statement is a syntax error.
    return sql.columns(*[sa.column(name) for name in names]).subquery("source"), names


def _columns_of(conn, selectable):
    """The selectable with its columns declared, and their names, from a query returning no rows."""
    probe = sa.select(sa.literal_column("*")).select_from(selectable).where(sa.false())
    names = list(conn.execute(probe).keys())
    if isinstance(selectable, sa.TableClause):
        selectable = sa.table(selectable.name, *[sa.column(name) for name in names], schema=selectable.schema)
    return selectable, names


def _streamed(conn, statement, page_size):
    """A result fetching page_size rows at a time, through a server-side cursor where the driver has one."""
    # Callers close it in a `with`, so that a reader stopped early closes the cursor before the connection.
    return conn.execution_options(yield_per=page_size).execute(statement)


def _external_id(value, column):
    if type(value) is int:
        return str(value)
    if value is None:
        raise ConnectorError(f"A row has no id (column {column!r} is empty).")
    return str(json_value(value))


def _text(value):
    """Text without surrounding blanks; None for NULL or blank."""
    return None if value is None else str(value).strip() or None


def _occurred_on(value, row_id, column):
    if type(value) is date:
        return value
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    raise ConnectorError(f"Row {row_id} has {value!r} in column {column!r}, which is not a date.")


def json_value(value):
    """A database value as JSON can hold it (numbers, text, ISO dates)."""
    kind = type(value)
    if kind in _AS_IS:  # the common cases first, by exact type: this runs for every value imported
        return value
    if kind is Decimal and value.is_finite():
        return int(value) if value == value.to_integral_value() else float(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(item) for item in value]
    return str(value)  # UUIDs, network addresses, enums: their text form


_AS_IS = frozenset({str, int, bool, type(None)})


@contextmanager
def _connected(config):
    """A read-only connection to the source; every database error leaves as a ConnectorError."""
    url_text = config.secrets.get("url")
    if not url_text:
        raise ConnectorError("The data source has no database URL.")
    try:
        url = sa.make_url(url_text)
    except sa.exc.ArgumentError:
        raise ConnectorError(f"The database URL {redacted_url(url_text)} is not a valid SQLAlchemy URL.") from None
    shown = url.render_as_string(hide_password=True)

    def reason(exc):
        return _without(url.password, _reason(exc))

    try:
        engine = sa.create_engine(_read_only_url(url), poolclass=NullPool)
    except (sa.exc.ArgumentError, ImportError) as exc:
        # `from None` everywhere: a chained exception could carry the URL into logs.
        raise ConnectorError(f"Cannot use the database URL {shown}: {reason(exc)}.") from None
    session_statement = READ_ONLY_SESSION.get(engine.dialect.name)
    if session_statement:
        sa.event.listen(engine, "connect", lambda dbapi_conn, _: _run_on_connect(dbapi_conn, session_statement))
    try:
        try:
            connection = engine.connect()
        except sa.exc.SQLAlchemyError as exc:
            raise ConnectorError(f"Cannot connect to {shown}: {reason(exc)}.") from None
        with connection:
            try:
                yield connection
            except ConnectorError as exc:
                if _without(url.password, str(exc)) == str(exc):
                    raise
                raise ConnectorError(_without(url.password, str(exc))) from None
            except sa.exc.SQLAlchemyError as exc:
                raise ConnectorError(f"Reading from {shown} failed: {reason(exc)}.") from None
    finally:
        engine.dispose()


def _run_on_connect(dbapi_connection, statement):
    cursor = dbapi_connection.cursor()
    cursor.execute(statement)
    cursor.close()
    dbapi_connection.commit()


def _read_only_url(url):
    """SQLite opened read-only, which also keeps a mistyped path from creating an empty file."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:") or url.host or url.username:
        return url  # in memory, nothing to protect; with a host, SQLAlchemy refuses the URL as it was given
    if url.query.get("uri", "").lower() in ("true", "1"):
        return url.update_query_dict({"mode": "ro"}) if url.query.get("mode") != "memory" else url
    path = quote(os.path.abspath(url.database))
    return url.set(database=f"file:{path}").update_query_dict({"mode": "ro", "uri": "true"})


def _reason(exc):
    """The first line of the driver's own message."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return lines[0].rstrip(".") if lines else original.__class__.__name__


def _without(password, message):
    """The message with the password cut out, in case a driver quoted it."""
    if not password:
        return message
    for form in {password, quote(password, safe="")}:
        message = message.replace(form, "***")
    return message
