"""Hot-path reads as prepared statements.

Django's PostgreSQL backend binds parameters on the client (psycopg's ``ClientCursor``), so the
server parses and plans every query again: for the one-row lookup of a real-time authorization
that is two thirds of PostgreSQL's time, and Django's cursor wrapper costs more CPU than the query
itself. ``fetch_one`` sends such a query with server-side binding and ``prepare=True``: psycopg
prepares it once per connection and then only executes it.

Everything else of Django's cursor is kept: the health check and reconnection
(``ensure_connection``), the thread-sharing check, the translation of driver errors into
``django.db`` errors, and the current transaction (the statement runs on the same connection).
When queries are being recorded (``DEBUG``, ``assertNumQueries``) or execute wrappers are
installed, the query takes Django's own cursor so that they see it. Other databases (SQLite) take
it too.

Django turns psycopg's prepared statements off; the settings turn them back on with a threshold
out of reach, so that only what asks (``prepare=True``) is prepared. Prepared statements live on
the server connection: behind a pooler in transaction mode (PgBouncer before 1.21) set
``DATABASE_PREPARED_STATEMENTS=false``, and the same query is sent unprepared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connections


def fetch_one(sql: str, params: Sequence[Any], *, using: str = "default") -> tuple[Any, ...] | None:
    """The first row of ``sql`` (``%s`` placeholders) with ``params``, or None."""
    connection = connections[using]
    if (
        connection.vendor != "postgresql"
        or connection.queries_logged
        or connection.execute_wrappers
    ):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()  # type: ignore[no-any-return]
    import psycopg

    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchone()
