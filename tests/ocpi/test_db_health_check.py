"""The PostgreSQL backend's health check: a round trip (SELECT 1) only for a connection that has
not worked in the last DATABASE_HEALTH_CHECK_IDLE_SECONDS, or whose last request met an error."""

from __future__ import annotations

import pytest
from django.db import connections

from ocpi_platform.db.postgresql.base import DatabaseWrapper

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def conn(settings):
    """A connection of its own, with health checks on, as a web process has."""
    params = {**connections["default"].settings_dict, "CONN_HEALTH_CHECKS": True}
    wrapper = connections["default"].__class__(params, alias="health")
    assert isinstance(wrapper, DatabaseWrapper)
    yield wrapper
    wrapper.close()


def checks(conn, monkeypatch) -> list[int]:
    counted: list[int] = []
    real = conn.is_usable

    def counting() -> bool:
        counted.append(1)
        return real()

    monkeypatch.setattr(conn, "is_usable", counting)
    return counted


def request(conn) -> None:
    """One request: a query, then the end-of-request bookkeeping (request_finished)."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1")
    conn.close_if_unusable_or_obsolete()


def test_a_connection_that_just_worked_is_not_asked_select_1_again(conn, monkeypatch, settings):
    settings.DATABASE_HEALTH_CHECK_IDLE_SECONDS = 60
    request(conn)  # opens the connection
    counted = checks(conn, monkeypatch)

    for _ in range(5):
        request(conn)

    assert counted == []


def test_an_idle_connection_is_checked_as_django_does(conn, monkeypatch, settings):
    settings.DATABASE_HEALTH_CHECK_IDLE_SECONDS = 0
    request(conn)
    counted = checks(conn, monkeypatch)

    request(conn)
    request(conn)

    assert counted == [1, 1]


def test_a_connection_whose_request_failed_is_checked(conn, monkeypatch, settings):
    settings.DATABASE_HEALTH_CHECK_IDLE_SECONDS = 60
    request(conn)
    conn.errors_occurred = True  # what wrap_database_errors records on a connection error
    counted = checks(conn, monkeypatch)

    conn.close_if_unusable_or_obsolete()  # Django checks it here (errors_occurred)
    request(conn)  # and this request's first query is checked again only once it idled
    conn.alive_at = float("-inf")
    request(conn)

    assert counted == [1, 1]


def test_a_dead_connection_is_replaced_after_an_idle_check(conn, settings):
    settings.DATABASE_HEALTH_CHECK_IDLE_SECONDS = 0
    request(conn)
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [conn.connection.info.backend_pid])

    request(conn)  # the check finds it dead, a new connection serves the query

    with conn.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
