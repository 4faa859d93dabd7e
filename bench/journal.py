"""Cost of the request journal per request, in-process (no server, no network).

    DATABASE_URL=postgres://… .venv/bin/python -m bench.journal [--requests N]

Prints the CPU time the journal adds to one inbound request (the middleware's part: building
the row and buffering it, as in production), to one outbound exchange, and what writing the
buffered rows costs per row (one COPY, in the flusher thread). Compare with the CPU
per request of the hot paths in ``bench.locations`` (gunicorn CPU s/s divided by req/s).
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocpi_platform.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import RequestFactory

    from journal import recorder
    from journal.models import Entry
    from ocpi_platform.ocpi.envelope import raw_data_response

    call_command("migrate", verbosity=0)
    settings.OCPI_JOURNAL_FLUSH_SECONDS = 3600.0  # buffered; this process flushes by itself
    page = raw_data_response(
        "[" + ",".join(['{"id": "LOC000001", "x": "' + "y" * 1400 + '"}'] * 50) + "]"
    )
    request = RequestFactory().get(
        "/ocpi/2.2.1/sender/locations?offset=100&limit=50",
        HTTP_X_REQUEST_ID="r",
        HTTP_X_CORRELATION_ID="c",
    )
    request.ocpi_request_id, request.ocpi_correlation_id = "r", "c"  # type: ignore[attr-defined]

    started = time.process_time()
    for _ in range(args.requests):
        recorder.record_inbound(request, page, time.monotonic(), None)
    inbound_us = (time.process_time() - started) / args.requests * 1e6

    before = Entry.objects.count()
    started_wall, started = time.perf_counter(), time.process_time()
    written = recorder.flush()
    flush_cpu_us = (time.process_time() - started) / max(written, 1) * 1e6
    flush_wall_us = (time.perf_counter() - started_wall) / max(written, 1) * 1e6
    assert Entry.objects.count() - before == written
    Entry.objects.filter(path__startswith="/ocpi/2.2.1/sender/locations?offset=100").delete()

    print(f"inbound request, row built and buffered: {inbound_us:6.1f} us CPU per request")
    print(
        f"flush (one COPY of {written:,} rows):      {flush_cpu_us:6.1f} us CPU per row in this "
        f"process, {flush_wall_us:.1f} us wall per row (PostgreSQL included)"
    )


if __name__ == "__main__":
    main()
