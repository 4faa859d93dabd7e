"""ocpi_platform.db.prepared.fetch_one: hot-path reads as statements prepared once per connection,
with Django's error translation, transaction and query recording kept."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, connections
from django.test.utils import CaptureQueriesContext

from ocpi_platform.db.prepared import fetch_one

pytestmark = pytest.mark.django_db

SQL = "SELECT %s::int + 1, %s::text"


def prepared_statements(conn=connection) -> list[str]:
    with conn.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_the_query_is_prepared_once_per_connection_and_answers_each_call():
    assert fetch_one(SQL, [1, "a"]) == (2, "a")
    assert fetch_one(SQL, [41, "b"]) == (42, "b")

    ours = [s for s in prepared_statements() if "+ 1" in s]
    assert len(ours) == 1
    assert "$1" in ours[0]  # bound on the server, not formatted into the text


def test_an_empty_result_is_none():
    assert fetch_one("SELECT 1 WHERE %s::bool", [False]) is None


def test_it_runs_in_the_current_transaction():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE prepared_probe (v int)")
        cursor.execute("INSERT INTO prepared_probe VALUES (7)")

    assert fetch_one("SELECT v FROM prepared_probe WHERE v = %s", [7]) == (7,)


def test_driver_errors_are_django_errors():
    with pytest.raises(DatabaseError):
        fetch_one("SELECT * FROM no_such_table WHERE x = %s", [1])


def test_recorded_queries_see_it_unprepared():
    with CaptureQueriesContext(connection) as captured:
        assert fetch_one("SELECT %s::int * 3", [5]) == (15,)

    assert [q["sql"] for q in captured.captured_queries] == ["SELECT 5::int * 3"]
    assert not [s for s in prepared_statements() if "* 3" in s]


@pytest.mark.django_db(transaction=True)
def test_with_prepared_statements_off_it_still_answers_and_prepares_nothing():
    params = {**connections["default"].settings_dict}
    params["OPTIONS"] = {**params.get("OPTIONS", {}), "prepare_threshold": None}
    wrapper = connections["default"].__class__(params, alias="unprepared")
    connections["unprepared"] = wrapper
    try:
        assert fetch_one(SQL, [1, "x"], using="unprepared") == (2, "x")
        assert not [s for s in prepared_statements(wrapper) if "+ 1" in s]
    finally:
        wrapper.close()
        del connections["unprepared"]


def test_prepared_statements_are_on_in_the_settings(settings):
    assert settings.DATABASES["default"]["OPTIONS"]["prepare_threshold"] == 2**31 - 1


def test_named_placeholders_may_repeat():
    from ocpi_platform.db.prepared import prepared_cursor

    with prepared_cursor() as cursor:
        cursor.execute("SELECT %(a)s::int + %(a)s::int, %(b)s::text", {"a": 20, "b": "x"})
        assert cursor.fetchone() == (40, "x")
        cursor.execute("SELECT generate_series(1, %s::int)", [3])
        assert cursor.fetchall() == [(1,), (2,), (3,)]


def test_an_error_inside_atomic_rolls_the_block_back():
    from django.db import transaction

    from ocpi_platform.db.prepared import prepared_cursor

    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE prepared_rollback (v int UNIQUE)")

    def twice() -> None:
        with transaction.atomic(), prepared_cursor() as cursor:
            cursor.execute("INSERT INTO prepared_rollback VALUES (%s)", [1])
            cursor.execute("INSERT INTO prepared_rollback VALUES (%s)", [1])

    with pytest.raises(DatabaseError):
        twice()

    assert fetch_one("SELECT count(*) FROM prepared_rollback WHERE v > %s", [0]) == (0,)
