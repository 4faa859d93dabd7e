"""Hot-path statements as prepared statements.

Django's PostgreSQL backend binds parameters on the client (psycopg's ``ClientCursor``): every
statement reaches the server as new text with the values quoted in, which the server parses and
plans again. For the one-row lookup of a real-time authorization that is two thirds of
PostgreSQL's time; for the EVSE status PATCH the location's whole document is quoted into the
text of its UPDATE. ``prepared_cursor()`` gives a cursor on the same connection whose
``execute`` binds on the server and prepares the statement (once per connection, then only
executes it); ``fetch_one`` is a one-row read through it.

Everything else of Django's cursor is kept: the health check and reconnection
(``ensure_connection``), the thread-sharing check, the translation of driver errors into
``django.db`` errors, and the current transaction (the statements run on the same connection).
When queries are being recorded (``DEBUG``, ``assertNumQueries``) or execute wrappers are
installed, the statements take Django's own cursor so that they see them. Other databases
(SQLite) take it too.

Django turns psycopg's prepared statements off; the settings turn them back on with a threshold
out of reach, so that only what asks (``prepare=True``) is prepared. Prepared statements live on
the server connection: behind a pooler in transaction mode (PgBouncer before 1.21) set
``DATABASE_PREPARED_STATEMENTS=false``, and the same statements are sent unprepared.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import connections

Params = Sequence[Any] | Mapping[str, Any]


class PreparedCursor:
    """``execute`` / ``fetchone`` / ``fetchall`` of a psycopg cursor bound on the server, or of
    Django's cursor where statements must be seen (see the module docstring)."""

    def __init__(self, cursor: Any, prepare: bool) -> None:
        self._cursor, self._prepare = cursor, prepare

    def execute(self, sql: str, params: Params) -> None:
        if self._prepare:
            self._cursor.execute(sql, params, prepare=True)
        else:
            self._cursor.execute(sql, params)

    def fetchone(self) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._cursor.fetchone()
        return row

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self._cursor.fetchall()
        return rows


@contextmanager
def prepared_cursor(using: str = "default") -> Iterator[PreparedCursor]:
    connection = connections[using]
    if (
        connection.vendor != "postgresql"
        or connection.queries_logged
        or connection.execute_wrappers
    ):
        with connection.cursor() as cursor:
            yield PreparedCursor(cursor, prepare=False)
        return
    import psycopg

    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield PreparedCursor(cursor, prepare=True)


def fetch_one(sql: str, params: Params, *, using: str = "default") -> tuple[Any, ...] | None:
    """The first row of ``sql`` (``%s`` or ``%(name)s`` placeholders) with ``params``, or None."""
    with prepared_cursor(using) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()
