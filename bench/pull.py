"""Benchmark of the pull: a full pull of a partner's locations, stored a page at a time.

Run from the repository root, under the benchmark lock::

    flock /tmp/ocpi-bench.lock .venv/bin/python -m bench.pull [--locations N] [--page P]

What it does:

1. creates the database ``ocpi_bench_pull`` (we are NL/BEN, an eMSP), migrated, with a
   registered partner CPO (DE/BPC) whose locations SENDER endpoint is a small HTTP server on
   loopback in this process;
2. that server plays the partner: N locations (the spec's example location, each with 2 EVSEs
   of 2 connectors, ~2.3 kB of JSON), served as list pages of P (default 100) with ``Link``,
   ``X-Total-Count`` and ``X-Limit``, every page's bytes made before the timing starts (the
   partner's cost is not ours);
3. times ``manage.py ocpi_pull locations bench-cpo --full`` from its start to its end, three
   times: the first pull (every location new), the same list again (nothing changed: nothing
   is written), and the list with every location changed (a newer ``last_updated`` and EVSE
   status: every copy replaced);
4. checks the stored rows (N locations, 2N EVSEs, 4N connectors, the statuses of the last run)
   and prints the figures, PASS/FAIL against the target: the first full pull of 10,000
   locations <= 30 s.

Exit status: 0 valid and the target met, 1 invalid run, 2 the target missed.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bench.locations import HOST, PYTHON, REPO, free_port, pg_execute, run_checked, server_env

OUR_PARTY = ("NL", "BEN")
CPO_PARTY = ("DE", "BPC")
TARGET = 30.0  # seconds for 10,000 locations
EXAMPLE = REPO / "tests" / "fixtures" / "ocpi" / "location_example.json"
TOKEN = "bench-pull-token-c"


def make_location(index: int, stamp: datetime, status: str) -> dict[str, Any]:
    base: dict[str, Any] = json.loads(EXAMPLE.read_text())
    data = copy.deepcopy(base)
    when = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    data.update(country_code=CPO_PARTY[0], party_id=CPO_PARTY[1], id=f"LOC{index:06d}")
    data["last_updated"] = when
    connector = base["evses"][0]["connectors"][0]
    evses = []
    for number in (1, 2):
        evse = copy.deepcopy(base["evses"][0])
        evse.update(uid=f"{index}-{number}", evse_id=f"DE*BPC*E{index:06d}*{number}")
        evse.update(status=status, last_updated=when)
        evse["connectors"] = [{**connector, "id": str(n), "last_updated": when} for n in (1, 2)]
        evses.append(evse)
    data["evses"] = evses
    return data


class Partner:
    """The partner's locations sender: precomputed pages, served on loopback."""

    def __init__(self, count: int, page: int) -> None:
        self.count, self.page = count, page
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}/ocpi/2.2.1/locations"
        self.pages: dict[int, bytes] = {}
        self.served = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                offset = int(query.get("offset", ["0"])[0])
                body = owner.pages.get(offset)
                if body is None or self.headers.get("Authorization") is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Total-Count", str(owner.count))
                self.send_header("X-Limit", str(owner.page))
                following = offset + owner.page
                if following < owner.count:
                    self.send_header(
                        "Link", f'<{owner.url}?offset={following}&limit={owner.page}>; rel="next"'
                    )
                self.end_headers()
                self.wfile.write(body)
                owner.served += 1

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((HOST, self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def publish(self, stamp: datetime, status: str) -> None:
        stamped = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        pages = {}
        for offset in range(0, self.count, self.page):
            items = [
                make_location(i, stamp, status)
                for i in range(offset, min(offset + self.page, self.count))
            ]
            envelope = {"data": items, "status_code": 1000, "timestamp": stamped}
            pages[offset] = json.dumps(envelope, separators=(",", ":")).encode()
        self.pages = pages

    def stop(self) -> None:
        self.httpd.shutdown()


SETUP = """
import django
django.setup()
from credentials import tokens
from credentials.models import (ConnectionStatus, Initiative, Partner, PartnerEndpoint,
    PartnerRole, PartnerState)
row = Partner.objects.create(name="bench-cpo", state=PartnerState.REGISTERED,
    initiated_by=Initiative.PARTNER, versions_url="{versions}", version="2.2.1",
    status=ConnectionStatus.CONNECTED)
PartnerRole.objects.create(partner=row, role="CPO", country_code="{cc}", party_id="{pid}",
    business_details={{}})
PartnerEndpoint.objects.create(partner=row, identifier="credentials", role="SENDER",
    url="{versions}".replace("/versions", "/2.2.1/credentials"))
PartnerEndpoint.objects.create(partner=row, identifier="locations", role="SENDER", url="{url}")
tokens.set_outbound_token(row, "{token}")
row.save()
"""

COUNT = """
import django, json
django.setup()
from locations.models import Connector, Evse, Location
print(json.dumps({"locations": Location.objects.filter(partner__isnull=False).count(),
    "evses": Evse.objects.count(), "connectors": Connector.objects.count(),
    "statuses": sorted(set(Evse.objects.values_list("status", flat=True)))}))
"""


def pull(env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    began = time.monotonic()
    result = subprocess.run(
        [PYTHON, "manage.py", "ocpi_pull", "locations", "bench-cpo", "--full", "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.monotonic() - began
    if result.returncode != 0:
        print(result.stdout, result.stderr[-3000:])
        raise SystemExit(1)
    return seconds, json.loads(result.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locations", type=int, default=10_000, help="locations (10000)")
    parser.add_argument("--page", type=int, default=100, help="locations per page (100)")
    parser.add_argument("--db-name", default="ocpi_bench_pull", help="database name")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    partner = Partner(args.locations, args.page)
    with tempfile.TemporaryDirectory(prefix="ocpi-bench-pull-") as tmp:
        env = server_env(args.db_name, free_port(), Path(tmp) / "var")
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "ocpi_platform.settings",
                "OCPI_PARTIES": f"{OUR_PARTY[0]}:{OUR_PARTY[1]}:EMSP",
            }
        )
        pg_execute(f'DROP DATABASE IF EXISTS "{args.db_name}"')
        pg_execute(f'CREATE DATABASE "{args.db_name}"')
        try:
            print(f"Database {args.db_name}: migrate", flush=True)
            run_checked([PYTHON, "manage.py", "migrate", "--verbosity", "0"], env, "migrate")
            setup = SETUP.format(
                versions=f"http://{HOST}:{partner.port}/ocpi/versions",
                url=partner.url, cc=CPO_PARTY[0], pid=CPO_PARTY[1], token=TOKEN,
            )  # fmt: skip
            run_checked([PYTHON, "-c", setup], env, "partner")
            stamp = datetime(2026, 1, 1, tzinfo=UTC)
            runs = []
            for name, when, status in (
                ("first full pull (all new)", stamp, "AVAILABLE"),
                ("same list again (unchanged)", stamp, "AVAILABLE"),
                ("every location changed", stamp + timedelta(hours=1), "CHARGING"),
            ):
                partner.publish(when, status)
                print(f"- {name} ...", flush=True)
                seconds, summary = pull(env)
                runs.append((name, seconds, summary))
            counted = subprocess.run(
                [PYTHON, "-c", COUNT], cwd=REPO, env=env, capture_output=True, text=True,
                check=True,
            )  # fmt: skip
            rows = json.loads(counted.stdout)
        finally:
            partner.stop()
            pg_execute(f'DROP DATABASE IF EXISTS "{args.db_name}"')
    n = args.locations
    print(f"\nMachine load before the run: {load:.2f} (1-minute average, 2 cores)")
    print(
        f"Partner: {n:,} locations x 2 EVSEs x 2 connectors, pages of {args.page} over HTTP "
        "on loopback\n"
    )
    valid = True
    for name, seconds, summary in runs:
        ok = summary["stored"] == n and summary["rejected"] == 0 and summary["state"] == "DONE"
        valid &= ok
        print(
            f"{name:30s} {seconds:6.1f} s  {n / seconds:7,.0f} locations/s  "
            f"{summary['pages']} pages, {summary['stored']:,} stored, "
            f"{summary['rejected']} rejected" + ("" if ok else "  INVALID")
        )
    expected = {"locations": n, "evses": 2 * n, "connectors": 4 * n, "statuses": ["CHARGING"]}
    if rows != expected:
        print(f"INVALID RUN: stored {rows}, expected {expected}")
        return 1
    if not valid:
        return 1
    first = runs[0][1] * 10_000 / n
    verdict = "PASS" if first <= TARGET else "FAIL"
    print(
        f"\nfirst full pull, scaled to 10,000 locations: {first:.1f} s "
        f"(<= {TARGET:.0f} s) {verdict}"
    )
    return 0 if verdict == "PASS" else 2


if __name__ == "__main__":
    sys.exit(main())
