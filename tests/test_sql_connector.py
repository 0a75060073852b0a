"""The SQL database connector, reading real SQLite and PostgreSQL original databases."""

import json
import uuid
from datetime import date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from portal.connectors.base import ConnectorConfig, ConnectorError, Period
from portal.connectors.sql import SqlReader, redacted_url
from portal.demo import sales_rows, write_source_database

ROWS = sales_rows(today=date(2025, 12, 31))
DAYS = sorted({day for _, day, _, _ in ROWS})
PERIOD = Period(DAYS[100], DAYS[160])  # both ends and the days just outside hold rows
SECRET = "s3cret-Passw0rd"
FEBRUARY = Period(date(2025, 2, 1), date(2025, 2, 28))
SALES_SETTINGS = {"table": "sales", "id_column": "id", "date_column": "sold_at", "employee_column": "employee_email"}


class Original:
    """An original database holding the demo's sales rows in `table`."""

    def __init__(self, url, table):
        self.url, self.table = url, table

    def config(self, **settings):
        """The connector configuration of a data source reading this table."""
        return ConnectorConfig("table", {**SALES_SETTINGS, "table": self.table, **settings}, {"url": self.url})

    def query_config(self, query, **settings):
        """The configuration of a data source reading a query (`{table}` is this table)."""
        config = self.config(query=query.format(table=self.table), **settings)
        del config.settings["table"]
        return config

    def execute(self, sql):
        """Run SQL on the original database directly; returns the first column of the first row."""
        engine = sa.create_engine(self.url)
        try:
            with engine.begin() as conn:
                result = conn.execute(sa.text(sql.format(table=self.table)))
                return result.scalar() if result.returns_rows else None
        finally:
            engine.dispose()


def with_password(url):
    """The URL with a password, so tests can check that no message shows it (trust auth ignores it)."""
    url = sa.make_url(url)
    return url if url.password else url.set(password=SECRET)


def assert_not_chained(error):
    """A traceback of the error shows no underlying exception (whose text might hold the URL)."""
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def secret_of(url):
    return sa.make_url(url).password


@pytest.fixture
def sqlite_original(tmp_path):
    """The demo's original database, written by the demo itself."""
    url = f"sqlite:///{tmp_path / 'original.sqlite3'}"
    write_source_database(url, ROWS)
    return Original(url, "sales")


@pytest.fixture
def postgres_table(postgres_url):
    """A scratch table name in the PostgreSQL test database, dropped afterwards, and an engine."""
    table = f"sql_connector_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(postgres_url)
    yield table, engine
    with engine.begin() as conn:
        # A reader that leaked its connection would hold a lock: fail then rather than hang.
        conn.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
        conn.execute(sa.text(f'DROP SEQUENCE IF EXISTS "{table}_seq"'))
    engine.dispose()


@pytest.fixture
def postgres_original(postgres_url, postgres_table):
    """The demo's sales rows in a uniquely named PostgreSQL table."""
    table, engine = postgres_table
    with engine.begin() as conn:
        conn.execute(sa.text(
            f'CREATE TABLE "{table}" (id INTEGER PRIMARY KEY, sold_at DATE NOT NULL, '
            "employee_email TEXT NOT NULL, amount NUMERIC NOT NULL, product TEXT NOT NULL)"
        ))
        conn.execute(
            sa.text(f'INSERT INTO "{table}" VALUES (:id, :sold_at, :email, :amount, :product)'),
            [{"id": int(ext), "sold_at": day, "email": email, "amount": v["amount"], "product": v["product"]}
             for ext, day, email, v in ROWS],
        )
    return Original(with_password(postgres_url).render_as_string(hide_password=False), table)


@pytest.fixture(params=["sqlite", "postgres"])
def original(request):
    """The demo's sales rows in SQLite, then in PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_original")


def expected_in(period):
    """What the portal should get for the period: external id -> (day, email, values)."""
    return {ext: (day, email, values) for ext, day, email, values in ROWS if period.start <= day <= period.end}


def records(pages):
    """All records of all pages, each page checked to be a list."""
    pages = list(pages)
    assert all(isinstance(page, list) for page in pages)
    return [record for page in pages for record in page]


def test_reading_a_period_returns_exactly_its_rows_boundaries_included(original):
    got = records(SqlReader().read(original.config(), PERIOD))
    want = expected_in(PERIOD)
    assert {PERIOD.start, PERIOD.end} <= {day for day, _, _ in want.values()}
    assert len(got) == len(want)
    assert {r.external_id: (r.occurred_on, r.employee_email, r.values) for r in got} == want


def test_values_read_are_json_serialisable(original):
    got = records(SqlReader().read(original.config(), PERIOD))
    assert json.loads(json.dumps([r.values for r in got])) == [r.values for r in got]
    assert all(type(r.values["amount"]) is int for r in got)


def test_pages_hold_at_most_page_size_rows(original):
    pages = list(SqlReader().read(original.config(page_size=7), PERIOD))
    sizes = [len(page) for page in pages]
    assert sum(sizes) == len(expected_in(PERIOD)) > 7 * 3
    assert sizes[:-1] == [7] * (len(sizes) - 1) and 1 <= sizes[-1] <= 7


def test_the_default_page_size_is_a_thousand_rows(sqlite_original):
    long_sales = [(str(n), date(2025, 1, 1), "ann@acme.test", {"amount": n, "product": "Team plan"})
                  for n in range(1, 2502)]
    write_source_database(sqlite_original.url, long_sales)
    pages = SqlReader().read(sqlite_original.config(), Period(date(2025, 1, 1), date(2025, 1, 1)))
    assert [len(page) for page in pages] == [1000, 1000, 501]


def test_value_columns_choose_the_values(original):
    got = records(SqlReader().read(original.config(value_columns=["product"]), PERIOD))
    assert {r.external_id: r.values for r in got} == {ext: {"product": v["product"]}
                                                      for ext, (_, _, v) in expected_in(PERIOD).items()}


def test_a_query_reads_its_own_columns(original):
    config = original.query_config(
        "SELECT id, sold_at, employee_email, amount * 2 AS doubled, 'at 10:30' AS note "
        "FROM {table} WHERE product LIKE 'Team%';"
    )
    got = records(SqlReader().read(config, PERIOD))
    want = {ext: {"doubled": v["amount"] * 2, "note": "at 10:30"}
            for ext, (_, _, v) in expected_in(PERIOD).items() if v["product"] == "Team plan"}
    assert want and {r.external_id: r.values for r in got} == want


def test_a_schema_qualified_table_and_employee_names_are_read(original):
    schema = "main" if original.url.startswith("sqlite") else "public"
    config = original.config(table=f"{schema}.{original.table}")
    assert {r.external_id for r in records(SqlReader().read(config, PERIOD))} == set(expected_in(PERIOD))
    named = original.query_config("SELECT id, sold_at, employee_email, 'Seller ' || employee_email AS seller "
                                  "FROM {table}", employee_name_column="seller")
    got = records(SqlReader().read(named, PERIOD))
    assert got and all(r.employee_name == f"Seller {r.employee_email}" and r.values == {} for r in got)


@pytest.mark.parametrize("query", [
    "DELETE FROM {table}",
    "UPDATE {table} SET amount = 0",
    "SELECT * FROM {table}; DELETE FROM {table}",
    "WITH gone AS (DELETE FROM {table} RETURNING *) SELECT * FROM gone",
    "SELECT * INTO stolen FROM {table}",
    "SELECT * FROM {table} FOR UPDATE",
    "DROP TABLE {table}",
    "PRAGMA writable_schema = 1",
    "-- looks harmless\nINSERT INTO {table} SELECT * FROM {table}",
])
def test_a_query_that_is_not_one_read_only_select_is_refused_and_changes_nothing(original, query):
    with pytest.raises(ConnectorError, match="query must"):
        records(SqlReader().read(original.query_config(query), PERIOD))
    assert original.execute("SELECT count(*) FROM {table}") == len(ROWS)


def test_postgresql_is_read_in_a_read_only_transaction(postgres_original):
    postgres_original.execute('CREATE SEQUENCE "{table}_seq"')
    config = postgres_original.query_config(
        """SELECT id, sold_at, employee_email, nextval('"{table}_seq"') AS n FROM {table}""")
    with pytest.raises(ConnectorError, match="read-only transaction"):
        records(SqlReader().read(config, PERIOD))
    assert postgres_original.execute("""SELECT last_value FROM "{table}_seq" """) == 1
    assert postgres_original.execute("""SELECT is_called FROM "{table}_seq" """) is False


def test_a_missing_sqlite_file_is_an_error_and_is_not_created(tmp_path):
    missing = tmp_path / "typo.sqlite3"
    config = ConnectorConfig("table", SALES_SETTINGS, {"url": f"sqlite:///{missing}"})
    with pytest.raises(ConnectorError, match="Cannot connect to sqlite:///.*typo.sqlite3"):
        records(SqlReader().read(config, PERIOD))
    assert not missing.exists()


@pytest.mark.parametrize(("settings", "named"), [
    ({"table": "no_such_table"}, "no_such_table"),
    ({"id_column": "no_such_id"}, "no_such_id"),
    ({"date_column": "sold_when"}, "sold_when"),
    ({"employee_column": "seller"}, "seller"),
    ({"value_columns": ["amount", "margin"]}, "margin"),
])
def test_a_bad_table_or_column_is_a_clear_error_without_the_password(postgres_original, settings, named):
    with pytest.raises(ConnectorError) as raised:
        records(SqlReader().read(postgres_original.config(**settings), PERIOD))
    message = str(raised.value)
    assert named in message
    assert secret_of(postgres_original.url) not in message
    assert_not_chained(raised.value)


def test_a_missing_column_lists_the_columns_there_are(sqlite_original):
    with pytest.raises(ConnectorError, match="its columns are: id, sold_at, employee_email, amount, product"):
        records(SqlReader().read(sqlite_original.config(date_column="sold_on"), PERIOD))


@pytest.mark.parametrize("url", [
    f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:1/test",
    f"nosuchdialect://postgres:{SECRET}@127.0.0.1/test",
    f"mysql+nosuchdriver://postgres:{SECRET}@127.0.0.1/test",
    f"sqlite://postgres:{SECRET}@127.0.0.1/test.sqlite3",
    f"not a url, postgres:{SECRET}@127.0.0.1",
])
def test_a_bad_url_is_an_error_without_the_password(url):
    config = ConnectorConfig("table", SALES_SETTINGS, {"url": url})
    for reading in (SqlReader().read, SqlReader().existing_ids):
        with pytest.raises(ConnectorError) as raised:
            list(reading(config, PERIOD))
        assert SECRET not in str(raised.value)
        assert_not_chained(raised.value)


def test_a_database_that_does_not_exist_is_an_error_without_the_password(postgres_original):
    url = sa.make_url(postgres_original.url).set(database="no_such_database_here")
    config = ConnectorConfig("table", postgres_original.config().settings,
                             {"url": url.render_as_string(hide_password=False)})
    with pytest.raises(ConnectorError, match="no_such_database_here") as raised:
        records(SqlReader().read(config, PERIOD))
    assert secret_of(postgres_original.url) not in str(raised.value)


@pytest.mark.parametrize("settings", [
    {"table": 'sales; DROP TABLE sales'},
    {"table": 'sales" ; DROP TABLE sales; --'},
    {"id_column": "id FROM sales; DELETE FROM sales; --"},
    {"date_column": 'sold_at" >= \'\' OR 1=1 --'},
])
def test_names_in_settings_cannot_inject_sql(sqlite_original, settings):
    with pytest.raises(ConnectorError):
        records(SqlReader().read(sqlite_original.config(**settings), PERIOD))
    assert sqlite_original.execute("SELECT count(*) FROM sales") == len(ROWS)


@pytest.mark.parametrize(("settings", "message"), [
    ({"query": "SELECT 1"}, "either a table or a query"),
    ({"table": ""}, "either a table or a query"),
    ({"id_column": None}, "id_column is required"),
    ({"employee_column": "  "}, "employee_column is required"),
    ({"page_size": 0}, "page_size"),
    ({"page_size": "many"}, "page_size"),
    ({"value_columns": 3}, "value_columns"),
])
def test_incomplete_settings_are_refused_before_connecting(settings, message):
    config = ConnectorConfig("table", {**SALES_SETTINGS, **settings},
                             {"url": f"postgresql+psycopg://u:{SECRET}@127.0.0.1:1/never"})
    with pytest.raises(ConnectorError, match=message):
        records(SqlReader().read(config, PERIOD))


def test_existing_ids_are_the_ids_of_the_period_and_follow_deletions(original):
    config = original.config(page_size=9)
    pages = list(SqlReader().existing_ids(config, PERIOD))
    assert all(1 <= len(page) <= 9 for page in pages)
    ids = [external_id for page in pages for external_id in page]
    assert sorted(ids) == sorted(expected_in(PERIOD))
    assert set(ids) == {r.external_id for r in records(SqlReader().read(config, PERIOD))}

    gone = ids[0]
    original.execute(f"DELETE FROM {{table}} WHERE id = {int(gone)}")
    assert set(sum(SqlReader().existing_ids(config, PERIOD), [])) == set(ids) - {gone}


def test_deleted_ids_yields_nothing(sqlite_original):
    assert list(SqlReader().deleted_ids(sqlite_original.config(), PERIOD)) == []


def test_check_returns_the_columns_of_a_table_or_query(sqlite_original):
    reader = SqlReader()
    assert reader.check(sqlite_original.config()) == ["id", "sold_at", "employee_email", "amount", "product"]
    query = sqlite_original.query_config("SELECT id, sold_at, employee_email, amount AS total FROM sales")
    assert reader.check(query) == ["id", "sold_at", "employee_email", "total"]


def test_sqlite_text_dates_and_timestamps_keep_the_boundaries_inclusive(sqlite_original):
    sqlite_original.execute("CREATE TABLE visits (id INTEGER PRIMARY KEY, visited_at TEXT, email TEXT)")
    for n, stamp in enumerate(["2025-01-31T23:59:59", "2025-02-01", "2025-02-01 00:00:00",
                               "2025-02-28T23:59:59.999999", "2025-03-01", "2025-03-01 00:00:00"], start=1):
        sqlite_original.execute(f"INSERT INTO visits VALUES ({n}, '{stamp}', 'ann@acme.test')")
    config = Original(sqlite_original.url, "visits").config(date_column="visited_at", employee_column="email")
    got = records(SqlReader().read(config, FEBRUARY))
    assert sorted((r.external_id, r.occurred_on) for r in got) == [
        ("2", date(2025, 2, 1)), ("3", date(2025, 2, 1)), ("4", date(2025, 2, 28))]


def test_a_text_date_that_is_no_date_is_an_error_naming_the_row(sqlite_original):
    sqlite_original.execute("UPDATE sales SET sold_at = '2025-02-3x' WHERE id = 7")
    with pytest.raises(ConnectorError, match="Row 7 has '2025-02-3x' in column 'sold_at'"):
        records(SqlReader().read(sqlite_original.config(), FEBRUARY))


def test_postgresql_dates_and_timestamps_keep_the_boundaries_inclusive(postgres_url, postgres_table):
    table, engine = postgres_table
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE TABLE "{table}" (id INTEGER PRIMARY KEY, visited_at TIMESTAMP, '
                             "visited_on DATE, email TEXT)"))
        conn.execute(sa.text(f'INSERT INTO "{table}" VALUES (:id, :at, :on, :email)'), [
            {"id": n, "at": at, "on": at.date(), "email": "ann@acme.test"} for n, at in enumerate([
                datetime(2025, 1, 31, 23, 59, 59, 999999), datetime(2025, 2, 1),
                datetime(2025, 2, 28, 23, 59, 59, 999999), datetime(2025, 3, 1)], start=1)])
    for column in ("visited_at", "visited_on"):
        config = Original(postgres_url, table).config(date_column=column, employee_column="email")
        got = records(SqlReader().read(config, FEBRUARY))
        assert sorted((r.external_id, r.occurred_on) for r in got) == [
            ("2", date(2025, 2, 1)), ("3", date(2025, 2, 28))]


def test_postgresql_values_of_every_common_type_become_json(postgres_url, postgres_table):
    table, engine = postgres_table
    ref = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(sa.text(
            f'CREATE TABLE "{table}" (id BIGINT PRIMARY KEY, sold_at TIMESTAMP, email TEXT, '
            "price NUMERIC(12, 2), whole NUMERIC(12, 2), ratio DOUBLE PRECISION, paid BOOLEAN, "
            "due DATE, at_time TIME, ref UUID, extra JSONB, took INTERVAL, raw BYTEA, nothing TEXT)"))
        conn.execute(sa.text(
            f'INSERT INTO "{table}" VALUES (9007199254740993, :sold_at, :email, :price, :whole, 0.25, TRUE, '
            "'2025-03-04', '10:30', :ref, '{\"tags\": [\"a\"], \"n\": 1.5}', '90 seconds', '\\xcafe', NULL)"),
            {"sold_at": datetime(2025, 2, 3, 4, 5, 6), "email": "ann@acme.test", "price": Decimal("12.50"),
             "whole": Decimal("100.00"), "ref": ref})
    config = Original(postgres_url, table).config(employee_column="email")
    [record] = records(SqlReader().read(config, FEBRUARY))
    assert record.external_id == "9007199254740993" and record.occurred_on == date(2025, 2, 3)
    assert record.values == {
        "price": 12.5, "whole": 100, "ratio": 0.25, "paid": True, "due": "2025-03-04", "at_time": "10:30:00",
        "ref": str(ref), "extra": {"tags": ["a"], "n": 1.5}, "took": 90.0, "raw": "cafe", "nothing": None,
    }
    assert json.loads(json.dumps(record.values)) == record.values


def test_names_are_matched_as_the_database_folds_them(postgres_original):
    config = postgres_original.config(table=postgres_original.table.upper(), date_column="Sold_At",
                                      value_columns=["AMOUNT"])
    got = records(SqlReader().read(config, PERIOD))
    assert {r.external_id: r.values for r in got} == {ext: {"amount": v["amount"]}
                                                      for ext, (_, _, v) in expected_in(PERIOD).items()}


def test_stopping_early_releases_the_connection(postgres_original):
    pages = SqlReader().read(postgres_original.config(page_size=5), PERIOD)
    try:
        first = next(pages)
    finally:
        pages.close()
    assert len(first) == 5
    # Another session can take an exclusive lock only if the reader's transaction is gone.
    postgres_original.execute("SET lock_timeout = '2s'; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")


def test_redacted_url_hides_only_the_password():
    assert redacted_url(f"postgresql+psycopg://reader:{SECRET}@db.example:5432/sales") == \
        "postgresql+psycopg://reader:***@db.example:5432/sales"
    assert redacted_url("sqlite:////srv/original.sqlite3") == "sqlite:////srv/original.sqlite3"
    assert SECRET not in redacted_url(f"not a url, postgres:{SECRET}@127.0.0.1")
    assert redacted_url("") == ""
