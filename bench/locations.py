"""Benchmark of the locations module: the sender list and inbound EVSE status PATCHes.

Run from the repository root (``make bench BENCH_ARGS="..."`` does the same)::

    .venv/bin/python -m bench.locations [--locations N] [--duration S] [--concurrency C]
        [--keep-db | --reuse-db] [--workers W] [--threads T] [--client raw|httpx] [--help]

What it does, all in one run:

1. creates a fresh PostgreSQL database (``ocpi_bench`` on 127.0.0.1:5432, user postgres) and
   migrates it with ``bench.settings``: the production settings from the environment (DEBUG
   off, random secrets, Redis db 15 as broker) plus the ``/bench/ceiling`` view;
2. fills it in a Django subprocess (this module with ``--setup-into``; the work is shared by one
   forked process per core): N of our own shared locations (NL/BEN) with 2 EVSEs x 2 connectors
   each, made from the spec's example location, stored through ``locations.services.put`` (the
   real write path: validation, rendering of ``ocpi_json``), last_updated spread over a year; a
   registered eMSP partner that reads our sender list; a registered CPO partner (DE/PCP) with
   its own copies (``--partner-locations``) that receive the status PATCHes. No partner has a
   locations RECEIVER endpoint, so our writes queue no pushes. Then VACUUM ANALYZE: the steady
   state of a production database once autovacuum has run;
3. starts gunicorn with those settings and no access log; by default like ``make web``: 2
   gthread workers x 4 threads (``--workers``/``--threads``; ``--threads 1``: sync workers);
4. drives it from this process, a plain asyncio client (no Django) with ``--concurrency``
   HTTP/1.1 keep-alive connections, each renewed every ``--reconnect`` seconds (a connection
   stays with the gunicorn worker that accepted it: without renewal the load may sit on one
   worker and the figures jump from run to run). Per phase a warm-up, then ``--duration``
   seconds of
   (a) ``/bench/ceiling``: the same server returning a precomputed list page of 50 locations,
   (b) the sender list, ``limit=50`` at random offsets, a quarter of them with a random
       ``date_from`` (offsets chosen so every page is full),
   (c) inbound ``PATCH .../receiver/locations/DE/PCP/{location}/{evse}`` of ``status`` with an
       increasing ``last_updated`` (each connection owns its EVSEs, so no PATCH is stale);
   every response is checked: HTTP 200, the OCPI envelope with status_code 1000, X-Total-Count,
   a PATCH applied ("Updated."), and a full JSON parse with the item count of every list page in
   the warm-up and of every 25th one after it; a run with any error is reported as invalid;
5. prints requests/s, p50 and p99 latency, errors, the list's ratio to the ceiling and
   PASS/FAIL against the targets (list >= 50 % of the ceiling, PATCH >= 500/s);
6. stops gunicorn and drops the database (unless ``--keep-db``), on errors and Ctrl-C too.
   ``--keep-db`` also keeps the secrets and the data set description in var/bench/, so that
   ``--reuse-db`` can run again on the same database without the setup.

Exit status: 0 when the run is valid and meets both targets, 1 when it is invalid (errors, or
the setup failed), 2 when it is valid but misses a target, 130 when interrupted.

The client shares the machine's cores with gunicorn and PostgreSQL; the report shows the CPU
each of them used in each phase. The raw asyncio client is the default because httpx costs too
much CPU on 2 cores: against the ceiling it used a whole core for ~1,150 requests/s where the
raw client uses 0.4 of a core for ~3,200 requests/s (``--client httpx`` to compare).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import json
import multiprocessing
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN_DSN = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"
REDIS_URL = "redis://127.0.0.1:6379/15"
HOST = "127.0.0.1"

OUR_PARTY = ("NL", "BEN")
EMSP_PARTY = ("DE", "EMS")
CPO_PARTY = ("DE", "PCP")
PAGE = 50
DATE_FROM_SHARE = 0.25
LIST_TARGET = 0.50  # of the ceiling
PATCH_TARGET = 500.0  # requests/s
FULL_CHECK_EVERY = 25  # parse every n-th list page completely (and every page in warm-up)
STATUSES = ("AVAILABLE", "CHARGING", "AVAILABLE", "BLOCKED", "AVAILABLE", "OUTOFORDER")
EXAMPLE = REPO / "tests" / "fixtures" / "ocpi" / "location_example.json"

CITIES = (
    ("Amsterdam", "10", "52.37", "4.89"),
    ("Rotterdam", "30", "51.92", "4.47"),
    ("Utrecht", "35", "52.09", "5.12"),
    ("Eindhoven", "56", "51.44", "5.47"),
    ("Groningen", "97", "53.21", "6.56"),
    ("Den Haag", "25", "52.07", "4.30"),
    ("Nijmegen", "65", "51.84", "5.86"),
    ("Zwolle", "80", "52.51", "6.09"),
)
STREETS = ("Stationsplein", "Kerkstraat", "Dorpsstraat", "Marktplein", "Parkweg", "Havenkade")


# --- the data set (runs in the Django subprocess) ------------------------------------------------


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_location(
    index: int, party: tuple[str, str], rng: random.Random, now: datetime
) -> dict[str, Any]:
    """A location like the spec's example (location_example.json), 2 EVSEs x 2 connectors."""
    example = json.loads(EXAMPLE.read_text())
    template_evse = example["evses"][0]
    country_code, party_id = party
    city, postcode, lat, lon = CITIES[index % len(CITIES)]
    location_updated = now - timedelta(seconds=rng.randrange(86_400, 365 * 86_400))
    fast = index % 3 == 0  # a third of the sites have a DC fast charger
    evses = []
    for number in (1, 2):
        evse_updated = location_updated - timedelta(seconds=rng.randrange(0, 30 * 86_400))
        if number == 1:
            evse_updated = location_updated  # the location follows its newest EVSE
        connectors = []
        for position, connector in enumerate(template_evse["connectors"], start=1):
            item = dict(connector)
            item["id"] = str(position)
            item["tariff_ids"] = [f"T{(index + position) % 7 + 1}"]
            item["last_updated"] = _stamp(
                evse_updated - timedelta(seconds=rng.randrange(0, 7 * 86_400) * (position - 1))
            )
            if fast and number == 2:
                item.update(
                    {
                        "standard": "IEC_62196_T2_COMBO" if position == 1 else "CHADEMO",
                        "format": "CABLE",
                        "power_type": "DC",
                        "max_voltage": 920,
                        "max_amperage": 125,
                        "max_electric_power": 50_000,
                    }
                )
            connectors.append(item)
        evses.append(
            {
                "uid": f"{index}-{number}",
                "evse_id": f"{country_code}*{party_id}*E{index:07d}{number}",
                "status": rng.choice(STATUSES),
                "capabilities": ["RESERVABLE", "RFID_READER"] if number == 1 else ["RFID_READER"],
                "connectors": connectors,
                "physical_reference": str(number),
                "floor_level": template_evse["floor_level"],
                "last_updated": _stamp(evse_updated),
            }
        )
    return {
        "country_code": country_code,
        "party_id": party_id,
        "id": f"LOC{index:06d}",
        "publish": True,
        "name": f"{city} {STREETS[index % len(STREETS)]} {index}",
        "address": f"{STREETS[(index // 7) % len(STREETS)]} {index % 200 + 1}",
        "city": city,
        "postal_code": f"{postcode}{index % 90 + 10:02d} AB",
        "country": "NLD",
        "coordinates": {
            "latitude": f"{lat}{rng.randrange(0, 10_000):04d}",
            "longitude": f"{lon}{rng.randrange(0, 10_000):04d}",
        },
        "parking_type": example["parking_type"],
        "evses": evses,
        "operator": {"name": "Bench Charging"},
        "time_zone": "Europe/Amsterdam",
        "last_updated": _stamp(location_updated),
    }


def _put_locations(
    party: tuple[str, str], owner: int | None, indexes: range, seed: int, now: datetime
) -> list[tuple[str, str]]:
    """PUT these locations through the real write path; their (location id, EVSE uid) pairs."""
    from django.db import connection

    from locations import services
    from locations.paths import ObjectPath

    targets: list[tuple[str, str]] = []
    try:
        for index in indexes:
            rng = random.Random(f"{seed}/{party}/{index}")
            data = make_location(index, party, rng, now)
            path = ObjectPath(party[0], party[1], data["id"])
            # Our own: keep_timestamps keeps the spread last_updated (as ocpi_import_locations).
            services.put(path, data, owner=owner, keep_timestamps=owner is None)
            targets.extend((data["id"], evse["uid"]) for evse in data["evses"])
    finally:
        connection.close()
    return targets


def setup_dataset(out: Path, locations: int, partner_locations: int, seed: int) -> None:
    """Create the partners and the locations; write what the client needs to ``out`` (JSON)."""
    import django

    django.setup()

    from django.db import connection

    from credentials import tokens
    from credentials.models import (
        ConnectionStatus,
        Initiative,
        Partner,
        PartnerEndpoint,
        PartnerRole,
        PartnerState,
    )
    from locations.models import Connector, Evse, Location
    from ocpi_platform.ocpi.principal import TokenKind
    from ocpi_platform.ocpi.types import format_datetime

    started = time.monotonic()

    def partner(name: str, role: str, party: tuple[str, str]) -> tuple[int, str]:
        row = Partner.objects.create(
            name=name,
            state=PartnerState.REGISTERED,
            initiated_by=Initiative.PARTNER,
            versions_url=f"http://{name}.invalid/ocpi/versions",
            version="2.2.1",
            status=ConnectionStatus.CONNECTED,
        )
        tokens.set_outbound_token(row, secrets.token_urlsafe(32))
        row.save()
        PartnerRole.objects.create(
            partner=row,
            role=role,
            country_code=party[0],
            party_id=party[1],
            business_details={"name": name},
        )
        # Only a credentials endpoint: no locations RECEIVER, so nothing is pushed to it.
        PartnerEndpoint.objects.create(
            partner=row,
            identifier="credentials",
            role="SENDER",
            url=f"http://{name}.invalid/ocpi/2.2.1/credentials",
        )
        _, token = tokens.issue_inbound_token(row, TokenKind.REGULAR)
        return row.pk, token

    _, emsp_token = partner("bench-emsp", "EMSP", EMSP_PARTY)
    cpo_id, cpo_token = partner("bench-cpo", "CPO", CPO_PARTY)

    # The locations, in one forked process per core (each with its own database connection).
    now = datetime.now(UTC).replace(microsecond=0)
    jobs = max(1, os.cpu_count() or 1)
    connection.close()
    context = multiprocessing.get_context("fork")
    with context.Pool(jobs) as pool:
        own = pool.starmap_async(
            _put_locations,
            [(OUR_PARTY, None, range(k + 1, locations + 1, jobs), seed, now) for k in range(jobs)],
        )
        copies = pool.starmap_async(
            _put_locations,
            [
                (CPO_PARTY, cpo_id, range(k + 1, partner_locations + 1, jobs), seed, now)
                for k in range(jobs)
            ],
        )
        while not own.ready():
            own.wait(10)
            done = Location.objects.filter(partner__isnull=True).count()
            print(f"  {done:,} locations ({time.monotonic() - started:.0f} s)", flush=True)
        own.get()
        targets = [target for part in copies.get() for target in part]
    print(
        f"  {partner_locations:,} partner copies ({time.monotonic() - started:.0f} s)", flush=True
    )
    rng = random.Random(seed)

    # Random date_from values with the number of our locations they select (full pages only).
    stamps = sorted(Location.objects.shared().values_list("last_updated", flat=True))
    date_from: list[tuple[str, int]] = []
    for _ in range(200):
        moment = stamps[rng.randrange(0, max(1, len(stamps) - PAGE))]
        count = len(stamps) - bisect.bisect_left(stamps, moment)
        date_from.append((format_datetime(moment), count))

    with connection.cursor() as cursor:
        # The steady state of a production database (autovacuum done): visibility map set.
        cursor.execute("VACUUM ANALYZE")
        cursor.execute("SELECT pg_database_size(current_database())")
        db_bytes = int(cursor.fetchone()[0])
        cursor.execute(
            "SELECT avg(length(ocpi_json)) FROM locations_location WHERE partner_id IS NULL"
        )
        avg_json = float(cursor.fetchone()[0] or 0)
    result = {
        "locations": Location.objects.shared().count(),
        "evses": Evse.objects.filter(location__partner__isnull=True).count(),
        "connectors": Connector.objects.filter(evse__location__partner__isnull=True).count(),
        "partner_locations": Location.objects.filter(partner_id=cpo_id).count(),
        "db_bytes": db_bytes,
        "avg_location_json": avg_json,
        "emsp_token": emsp_token,
        "cpo_token": cpo_token,
        "date_from": date_from,
        "patch_targets": targets,
        "seconds": time.monotonic() - started,
    }
    out.write_text(json.dumps(result))


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_env(db_name: str, port: int, data_dir: Path) -> dict[str, str]:
    # OCPI_JOURNAL passes through: OCPI_JOURNAL=false measures the hot paths without the journal.
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "USER", "OCPI_JOURNAL")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    fernet_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "OCPI_IGNORE_DOTENV": "1",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "OCPI_TOKEN_HMAC_KEY": secrets.token_urlsafe(50),
            "OCPI_TOKEN_ENCRYPTION_KEYS": fernet_key,
            "DATABASE_URL": f"postgres://postgres@{PG_HOST}:{PG_PORT}/{db_name}",
            "CELERY_BROKER_URL": REDIS_URL,
            "PORT": str(port),
            "OCPI_PUBLIC_URL": f"http://{HOST}:{port}",
            "OCPI_PARTIES": f"{OUR_PARTY[0]}:{OUR_PARTY[1]}:CPO,{OUR_PARTY[0]}:{OUR_PARTY[1]}:EMSP",
            "OCPI_DATA_DIR": str(data_dir),
        }
    )
    return env


def pg_execute(statement: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(statement)


def partner_row_writes(db_name: str) -> int:
    """UPDATEs of partner rows so far (PostgreSQL statistics; "seen" is such a write)."""
    import psycopg

    dsn = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{db_name}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'credentials_partner'"
        ).fetchone()
    return int(row[0]) if row else 0


def pg_version() -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def run_checked(argv: list[str], env: dict[str, str], what: str) -> None:
    """Run a Django subprocess in its own process group: an interruption ends all of it."""
    proc = subprocess.Popen(
        argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:
        returncode = proc.wait()
    except BaseException:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if returncode != 0:
        raise SystemExit(f"{what} failed (exit {returncode})")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def postgres_cpu(db_name: str) -> float:
    """CPU seconds of the PostgreSQL backends connected to the benchmark database."""
    total = 0.0
    marker = f" {db_name} ".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):
                if (entry / "cmdline").read_bytes().startswith(b"postgres: ") and marker in (
                    entry / "cmdline"
                ).read_bytes():
                    total += cpu_seconds(int(entry.name))
    return total


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class Server:
    """gunicorn with the production settings, in its own process group."""

    def __init__(self, env: dict[str, str], port: int, workers: int, threads: int, log: Path):
        self.env, self.port, self.workers, self.threads, self.log = env, port, workers, threads, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def worker_class(self) -> str:
        return "gthread" if self.threads > 1 else "sync"

    def start(self, timeout: float = 30.0) -> None:
        argv = [
            PYTHON, "-m", "gunicorn", "ocpi_platform.wsgi",
            "--bind", f"{HOST}:{self.port}",
            "--workers", str(self.workers),
            "--threads", str(self.threads),
            "--worker-class", self.worker_class,
            "--graceful-timeout", "5",
            "--error-logfile", "-",
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"gunicorn exited during start:\n{self.tail()}")
            with suppress(OSError), socket.create_connection((HOST, self.port), timeout=1) as s:
                s.sendall(b"GET /ocpi/versions HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 401"):
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"gunicorn does not answer after {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.2)
        # All workers up (each imports Django on its own).
        while len(children(self.proc.pid)) < self.workers and time.monotonic() < deadline:
            time.sleep(0.1)

    def cpu(self) -> float:
        if self.proc is None:
            return 0.0
        return cpu_seconds(self.proc.pid) + sum(self.worker_cpu().values())

    def worker_cpu(self) -> dict[int, float]:
        if self.proc is None:
            return {}
        return {pid: cpu_seconds(pid) for pid in children(self.proc.pid)}

    def tail(self, lines: int = 30) -> str:
        with suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


# --- the HTTP client -------------------------------------------------------------------------


class HttpError(Exception):
    pass


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class RawConnection:
    """HTTP/1.1 over one keep-alive asyncio stream: the least client CPU per request."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> Reply:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        lines = [f"{method} {target} HTTP/1.1", f"Host: {HOST}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body or method in ("PATCH", "PUT", "POST"):
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            await self.close()
            raise HttpError(f"connection closed before the response: {exc!r}") from None
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        reply_headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            reply_headers[name.strip().lower()] = value.strip()
        length = reply_headers.get("content-length")
        if length is None:
            await self.close()
            raise HttpError(f"no Content-Length in the response ({status_line})")
        data = await self.reader.readexactly(int(length))
        if reply_headers.get("connection", "").lower() == "close":
            await self.close()  # sync workers close after every response
        return Reply(int(status_line.split(" ", 2)[1]), reply_headers, data)

    async def close(self) -> None:
        writer, self.writer, self.reader = self.writer, None, None
        if writer is not None:
            writer.close()
            with suppress(Exception):
                await writer.wait_closed()


class HttpxConnection:
    """The same through httpx.AsyncClient (one keep-alive connection), for comparison."""

    def __init__(self, port: int) -> None:
        import httpx

        self.client = httpx.AsyncClient(
            base_url=f"http://{HOST}:{port}",
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=30,
        )

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> Reply:
        response = await self.client.request(method, target, headers=headers, content=body)
        return Reply(response.status_code, dict(response.headers), response.content)

    async def close(self) -> None:
        await self.client.aclose()


Connection = RawConnection | HttpxConnection


# --- load phases -----------------------------------------------------------------------------

_LIST_TAIL = re.compile(rb'\],\s*"status_code":\s*1000,\s*"timestamp":\s*"[0-9T:.\-]+Z"\}$')


@dataclass
class Sample:
    variant: str
    seconds: float
    at: float = 0.0  # when the request was due (or sent), on the event loop's clock


@dataclass
class Phase:
    name: str
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    window: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    workers: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return len(self.samples) / self.window if self.window else 0.0

    def latencies(self, variant: str | None = None) -> list[float]:
        return sorted(s.seconds for s in self.samples if variant in (None, s.variant))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


# One request of a phase: (variant, method, target, headers, body, check(reply, full) -> error).
Request = tuple[str, str, str, dict[str, str], bytes, Callable[[Reply, bool], str | None]]


def check_list(expected_total: int, expected_items: int) -> Callable[[Reply, bool], str | None]:
    def check(reply: Reply, full: bool) -> str | None:
        if reply.status != 200:
            return f"HTTP {reply.status}: {reply.body[:200]!r}"
        if not _LIST_TAIL.search(reply.body[-80:]):
            return f"not an OCPI 1000 envelope: ...{reply.body[-120:]!r}"
        total = reply.headers.get("x-total-count")
        if total != str(expected_total):
            return f"X-Total-Count {total}, expected {expected_total}"
        if full:
            data = json.loads(reply.body)
            if data.get("status_code") != 1000 or len(data.get("data") or []) != expected_items:
                return f"status_code {data.get('status_code')}, {len(data['data'])} items"
        return None

    return check


def check_patch(reply: Reply, full: bool) -> str | None:
    if reply.status != 200:
        return f"HTTP {reply.status}: {reply.body[:200]!r}"
    data = json.loads(reply.body)
    if data.get("status_code") != 1000:
        return f"OCPI {data.get('status_code')}: {data.get('status_message')}"
    if data.get("status_message") != "Updated.":
        return f"not applied: {data.get('status_message')}"
    return None


class Load:
    # What the list phases read (bench.tariffs reads the tariffs list and its ceiling).
    LIST_PATH = "/ocpi/2.2.1/sender/locations"
    CEILING_PATH = "/bench/ceiling"

    def __init__(self, args: argparse.Namespace, port: int, data: dict[str, Any]) -> None:
        self.args, self.port, self.data = args, port, data
        self.rng = random.Random(args.seed)
        self.emsp = auth(data["emsp_token"])
        self.cpo = {**auth(data["cpo_token"]), "Content-Type": "application/json"}
        self.total = int(data["locations"])

    def connect(self) -> Connection:
        return RawConnection(self.port) if self.args.client == "raw" else HttpxConnection(self.port)

    def ceiling(self, worker: int) -> Iterator[Request]:
        check = check_list(self.total, PAGE)
        while True:
            yield "ceiling", "GET", self.CEILING_PATH, self.emsp, b"", check

    def sender_list(self, worker: int) -> Iterator[Request]:
        rng = random.Random(self.args.seed + worker)
        base = f"{self.LIST_PATH}?limit=50"
        while True:
            if rng.random() < DATE_FROM_SHARE:
                date_from, count = rng.choice(self.data["date_from"])
                offset = rng.randrange(0, count - PAGE + 1)
                target = f"{base}&offset={offset}&date_from={quote(date_from)}"
                yield "date_from", "GET", target, self.emsp, b"", check_list(count, PAGE)
            else:
                offset = rng.randrange(0, self.total - PAGE + 1)
                target = f"{base}&offset={offset}"
                yield "offset", "GET", target, self.emsp, b"", check_list(self.total, PAGE)

    def patches(self, worker: int) -> Iterator[Request]:
        """Status PATCHes of this connection's own EVSEs, last_updated increasing."""
        rng = random.Random(self.args.seed + 1000 + worker)
        mine = self.data["patch_targets"][worker :: self.args.concurrency]
        cc, pid = CPO_PARTY
        last = datetime.now(UTC)
        while True:
            rng.shuffle(mine)
            for location_id, evse_uid in mine:
                last = max(datetime.now(UTC), last + timedelta(milliseconds=1))
                body = json.dumps(
                    {
                        "status": rng.choice(STATUSES),
                        "last_updated": last.strftime("%Y-%m-%dT%H:%M:%S.")
                        + f"{last.microsecond // 1000:03d}Z",
                    }
                ).encode()
                target = f"/ocpi/2.2.1/receiver/locations/{cc}/{pid}/{location_id}/{evse_uid}"
                yield "patch", "PATCH", target, self.cpo, body, check_patch

    async def run(
        self,
        name: str,
        requests: Callable[[int], Iterator[Request]],
        server: Server,
        rate: float = 0.0,
    ) -> Phase:
        """One phase. Closed loop by default: each connection sends its next request when the
        last one is answered (the server's saturation throughput; latency there is
        connections / throughput, whatever the server does). With ``rate`` (requests/s) it is
        an open loop: the connections send on a fixed schedule that adds up to ``rate``, and a
        request's latency counts from the time it was due, so that a slow answer delays what
        follows and is not hidden (no coordinated omission). That is the latency at a load."""
        phase = Phase(name)
        duration, warmup = self.args.duration, self.args.warmup
        loop = asyncio.get_running_loop()
        start = loop.time()
        measure_from, stop_at = start + warmup, start + warmup + duration
        cpu: dict[str, float] = {}

        workers: dict[int, float] = {}

        def cpu_now() -> dict[str, float]:
            for pid, seconds in server.worker_cpu().items():
                workers[pid] = seconds - workers.get(pid, 0.0)
            return {
                "client": time.process_time(),
                "gunicorn": server.cpu(),
                "postgres": postgres_cpu(self.args.db_name),
                "machine": machine_busy_seconds(),
            }

        async def mark() -> None:
            await asyncio.sleep(max(0.0, measure_from - loop.time()))
            begin = cpu_now()
            await asyncio.sleep(max(0.0, stop_at - loop.time()))
            end = cpu_now()
            cpu.update({k: (end[k] - begin[k]) / duration for k in end})
            cpu["other"] = cpu["machine"] - cpu["client"] - cpu["gunicorn"] - cpu["postgres"]

        async def worker(number: int) -> None:
            conn = self.connect()
            count = 0
            # Connections stay with the gunicorn worker that accepted them: renewing them (at
            # staggered times) spreads the load over the workers as many partners' would.
            renew = self.args.reconnect
            opened = start - renew * number / self.args.concurrency
            interval = self.args.concurrency / rate if rate else 0.0
            due = start + interval * number / self.args.concurrency
            try:
                for variant, method, target, headers, body, check in requests(number):
                    if interval:
                        if due >= stop_at:
                            break
                        await asyncio.sleep(max(0.0, due - loop.time()))
                        began, due = due, due + interval
                    else:
                        began = loop.time()
                    if began >= stop_at:
                        break
                    if renew and began - opened >= renew:
                        await conn.close()
                        conn, opened = self.connect(), began
                    try:
                        reply = await conn.request(method, target, headers, body)
                    except (HttpError, OSError) as exc:
                        error: str | None = f"{type(exc).__name__}: {exc}"
                    else:
                        count += 1
                        full = began < measure_from or count % FULL_CHECK_EVERY == 0
                        try:
                            error = check(reply, full)
                        except ValueError as exc:
                            error = f"invalid JSON: {exc}"
                    ended = loop.time()
                    if error is None and began >= measure_from and ended <= stop_at:
                        phase.samples.append(Sample(variant, ended - began, began))
                    if error is not None:
                        phase.errors.append(f"{method} {target}: {error}")
            finally:
                await conn.close()

        marker = asyncio.create_task(mark())
        await asyncio.gather(*(worker(n) for n in range(self.args.concurrency)))
        await marker
        phase.window = duration
        phase.cpu = cpu
        phase.workers = sorted((seconds / duration for seconds in workers.values()), reverse=True)
        return phase


# --- report ----------------------------------------------------------------------------------


def report(
    phases: dict[str, Phase], args: argparse.Namespace, data: dict[str, Any], context: list[str]
) -> int:
    ceiling, listing, patch = phases["ceiling"], phases["list"], phases["patch"]
    ratio = listing.rate / ceiling.rate if ceiling.rate else 0.0
    list_ok = ratio >= LIST_TARGET
    patch_ok = patch.rate >= PATCH_TARGET
    errors = sum(len(p.errors) for p in phases.values())

    print()
    for line in context:
        print(line)
    print()
    header = (
        f"{'':<34}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'vs ceiling':>12}"
        f"  {'target':<18}{'':<6}"
        f"{'CPU s/s:':>10}{'client':>8}{'gunicorn':>9}{'postgres':>9}{'other':>7}"
    )
    print(header)
    print("-" * len(header))

    def row(label: str, phase: Phase, variant: str | None, ratio: str, target: str) -> None:
        values = phase.latencies(variant)
        rate = len(values) / phase.window if phase.window else 0.0
        line = (
            f"{label:<34}{rate:>8,.0f}{percentile(values, 0.5) * 1000:>9.1f}"
            f"{percentile(values, 0.99) * 1000:>9.1f}"
            f"{len(phase.errors) if variant is None else '':>8}{ratio:>12}  {target:<24}"
        )
        if variant is None:
            cpu = phase.cpu
            line += f"{'':>10}{cpu['client']:>8.2f}{cpu['gunicorn']:>9.2f}"
            line += f"{cpu['postgres']:>9.2f}{cpu['other']:>7.2f}"
        print(line.rstrip())

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    row("ceiling (precomputed page of 50)", ceiling, None, "100 %", "")
    row(
        "sender list, limit 50",
        listing,
        None,
        f"{ratio * 100:.0f} %",
        f">= 50 % of ceiling {verdict(list_ok)}",
    )
    row("  random offset", listing, "offset", "", "")
    row("  random date_from + offset", listing, "date_from", "", "")
    row("inbound EVSE status PATCH", patch, None, "", f">= 500/s           {verdict(patch_ok)}")
    print()
    print(
        "CPU s/s: CPU seconds per second of each measured window used by this client, by "
        "gunicorn\n(master + workers), by the PostgreSQL backends of the benchmark database and "
        f"by everything else\non the machine ({args.cores} cores: at most {args.cores:.2f} in "
        "all)."
    )
    print(
        "CPU s/s of each gunicorn worker: "
        + "; ".join(
            f"{p.name} {' + '.join(f'{w:.2f}' for w in p.workers)}" for p in phases.values()
        )
    )
    if errors:
        print(f"\nINVALID RUN: {errors} failed responses. First ones:")
        for phase in phases.values():
            for message in phase.errors[:5]:
                print(f"  [{phase.name}] {message}")
        return 1
    print(
        f"\nValid run (every response checked). Sender list at {ratio:.0%} of the ceiling "
        f"(target 50 %): {verdict(list_ok)}. EVSE status PATCH {patch.rate:,.0f}/s "
        f"(target 500/s): {verdict(patch_ok)}."
    )
    return 0 if list_ok and patch_ok else 2


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(
        prog="python -m bench.locations",
        description="Benchmark the sender list and inbound EVSE status PATCHes under gunicorn.",
    )
    parser.add_argument("--locations", type=int, default=10_000, help="own locations (10000)")
    parser.add_argument(
        "--partner-locations", type=int, default=1_000, help="partner CPO copies PATCHed (1000)"
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per phase (15)")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per phase (3)")
    parser.add_argument("--concurrency", type=int, default=16, help="connections (16)")
    parser.add_argument(
        "--workers", type=int, default=2, help="gunicorn workers (2, as `make web`)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=4,
        help="threads per worker (4, as `make web`: gthread; 1: sync workers)",
    )
    parser.add_argument(
        "--client", choices=("raw", "httpx"), default="raw", help="HTTP client (raw asyncio)"
    )
    parser.add_argument(
        "--reconnect",
        type=float,
        default=1.0,
        help="renew each keep-alive connection after this many seconds (1; 0: never)",
    )
    parser.add_argument("--db-name", default="ocpi_bench", help="database name (ocpi_bench)")
    parser.add_argument(
        "--keep-db", action="store_true", help="keep the database (and its secrets) afterwards"
    )
    parser.add_argument(
        "--reuse-db",
        action="store_true",
        help="run on the database that an earlier --keep-db run left (skips the setup)",
    )
    parser.add_argument("--seed", type=int, default=2024, help="random seed (2024)")
    parser.add_argument("--setup-into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.locations < PAGE or args.partner_locations < 1 or args.concurrency < 1:
        parser.error(f"needs --locations >= {PAGE}, --partner-locations >= 1, --concurrency >= 1")
    if args.partner_locations * 2 < args.concurrency:
        parser.error("needs at least one partner EVSE per connection (2 per partner location)")
    args.cores = cores
    return args


async def measure(
    args: argparse.Namespace, port: int, data: dict[str, Any], server: Server
) -> dict[str, Phase]:
    load = Load(args, port, data)
    phases: dict[str, Phase] = {}
    plan: list[tuple[str, Callable[[int], Iterator[Request]]]] = [
        ("ceiling", load.ceiling),
        ("list", load.sender_list),
        ("patch", load.patches),
    ]
    for name, requests in plan:
        print(f"- {name}: {args.warmup:g} s warm-up + {args.duration:g} s ...", flush=True)
        writes = partner_row_writes(args.db_name)
        phase = await load.run(name, requests, server)
        phases[name] = phase
        await asyncio.sleep(1.5)  # backends flush their statistics at most once a second
        writes = partner_row_writes(args.db_name) - writes
        print(
            f"  {phase.rate:,.0f} req/s, p50 {percentile(phase.latencies(), 0.5) * 1000:.1f} ms,"
            f' {len(phase.errors)} errors; partner rows written ("seen"): {writes}',
            flush=True,
        )
    return phases


SECRETS = ("DJANGO_SECRET_KEY", "OCPI_TOKEN_HMAC_KEY", "OCPI_TOKEN_ENCRYPTION_KEYS")


def state_file(db_name: str) -> Path:
    """What --keep-db leaves for --reuse-db: the secrets (tokens are stored as HMACs) and data."""
    return REPO / "var" / "bench" / f"{db_name}.json"


def database_exists(db_name: str) -> bool:
    import psycopg

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db_name]).fetchone()
    return found is not None


def create_dataset(args: argparse.Namespace, env: dict[str, str], workdir: Path) -> dict[str, Any]:
    print(f"Database {args.db_name}: create and migrate", flush=True)
    pg_execute(f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')
    pg_execute(f'CREATE DATABASE "{args.db_name}"')
    run_checked([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], env, "migrate")
    print(
        f"Data set: {args.locations:,} locations x 2 EVSEs x 2 connectors through "
        f"services.put, + {args.partner_locations:,} partner copies",
        flush=True,
    )
    out = workdir / "dataset.json"
    setup_argv = [PYTHON, "-m", "bench.locations", "--setup-into", str(out)]
    setup_argv += ["--locations", str(args.locations)]
    setup_argv += ["--partner-locations", str(args.partner_locations)]
    setup_argv += ["--seed", str(args.seed)]
    run_checked(setup_argv, env, "data set setup")
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.setup_into is not None:
        setup_dataset(args.setup_into, args.locations, args.partner_locations, args.seed)
        return 0

    # SIGTERM ends the run like Ctrl-C: the finally below stops gunicorn and drops the database.
    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="ocpi-bench-"))
    env = server_env(args.db_name, port, workdir)
    saved = state_file(args.db_name)
    reuse = args.reuse_db and saved.is_file() and database_exists(args.db_name)
    keep = args.keep_db or reuse
    server = Server(env, port, args.workers, args.threads, workdir / "gunicorn.log")
    drop = False
    try:
        if reuse:
            state = json.loads(saved.read_text())
            env.update(state["secrets"])
            data: dict[str, Any] = state["data"]
            print(f"Reusing database {args.db_name} and its data set ({saved})", flush=True)
        else:
            if args.reuse_db:
                print(f"Nothing to reuse ({saved} or the database is missing)", flush=True)
            with suppress(FileNotFoundError):
                saved.unlink()
            drop = not keep
            data = create_dataset(args, env, workdir)
            if keep:
                saved.parent.mkdir(parents=True, exist_ok=True)
                state = {"secrets": {k: env[k] for k in SECRETS}, "data": data}
                saved.write_text(json.dumps(state))
                saved.chmod(0o600)
        print(
            f"gunicorn: {args.workers} {server.worker_class} workers x {args.threads} threads "
            f"on {HOST}:{port}",
            flush=True,
        )
        busy = machine_busy_seconds()
        time.sleep(1.0)
        busy = machine_busy_seconds() - busy
        print(f"Machine load before the run: {busy:.2f} of {args.cores} cores busy", flush=True)
        if busy > 0.25:
            print("  WARNING: other processes use the CPU: the figures will be low.", flush=True)
        server.start()
        phases = asyncio.run(measure(args, port, data, server))
        if server.proc is None or server.proc.poll() is not None:
            print(f"gunicorn died during the run:\n{server.tail()}")
            return 1
        context = [
            f"Data set: {data['locations']:,} own shared locations, {data['evses']:,} EVSEs, "
            f"{data['connectors']:,} connectors (avg. {data['avg_location_json']:,.0f} bytes of "
            f"JSON per location), + {data['partner_locations']:,} partner CPO copies; "
            f"database {data['db_bytes'] / 2**20:,.0f} MiB, filled in {data['seconds']:.0f} s",
            f"Server: gunicorn {package_version('gunicorn')}, {args.workers} "
            f"{server.worker_class} workers x {args.threads} threads, bench.settings "
            "(production settings: DEBUG off, CONN_MAX_AGE 60, no access log)",
            f"Client: {'raw asyncio streams' if args.client == 'raw' else 'httpx.AsyncClient'}, "
            f"HTTP/1.1 keep-alive, {args.concurrency} connections (each renewed every "
            f"{args.reconnect:g} s), {args.warmup:g} s warm-up + "
            f"{args.duration:g} s per phase; it shares the machine's {args.cores} cores with "
            "gunicorn and PostgreSQL",
            f"Versions: Python {platform.python_version()}, Django {package_version('django')}, "
            f"PostgreSQL {pg_version()}, {platform.system()} {platform.machine()}",
        ]
        status = report(phases, args, data, context)
        if status == 1 and server.tail():
            print(f"\ngunicorn's log (last lines):\n{server.tail()}")
        return status
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
    finally:
        server.stop()
        if drop:
            with suppress(Exception):
                pg_execute(f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')
        elif keep:
            print(
                f"Database kept: postgres://postgres@{PG_HOST}:{PG_PORT}/{args.db_name} "
                f"(--reuse-db runs on it again; secrets and data set in {saved})"
            )
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
