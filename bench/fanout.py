"""Benchmark of the push side: fan-out of one change, sustained deliveries/s, task storm.

Run from the repository root (``make bench-fanout BENCH_ARGS="..."`` does the same)::

    .venv/bin/python -m bench.fanout [--partners 100] [--locations 500] [--duration 15]
        [--rate 40] [--burst 200] [--workers 2] [--repeat 5] [--help]

What it does, all in one run:

1. creates a fresh PostgreSQL database (``ocpi_bench_fanout``), migrated with ``bench.settings``
   (the production settings from the environment: DEBUG off, random secrets, Redis db 13 as
   broker) and fills it: N of our own shared locations (NL/BEN, 2 EVSEs each, through
   ``locations.services.put``), then ``--partners`` registered, CONNECTED eMSP partners, each
   with its own token and its own locations RECEIVER endpoint URL on its own loopback port;
2. starts the partners: one asyncio process listening on one port per partner, answering every
   request with an OCPI 1000 envelope (HTTP/1.1 keep-alive) and recording, per partner, when each
   push arrived, the newest state it got of each EVSE and every push that came out of order;
3. starts a Celery worker (prefork, ``--workers`` processes, log level INFO as ``make worker``)
   and Celery beat (the outbox sweep) on that database and broker;
4. measures, driving the changes from this process (``locations.services.set_evse_status``, the
   real write path of a status change):
   (a) fan-out: one EVSE status change; the time from before the change's transaction until each
       partner has it (max and median partner), ``--repeat`` times;
   (b) sustained: changes of distinct EVSEs at up to ``--rate`` per second for ``--duration``
       seconds; deliveries received per second by all partners in that window, then the time to
       drain what is left;
   (c) burst: ``--burst`` changes as fast as possible; the Celery queue's length (Redis LLEN),
       sampled every 5 ms, at its peak and right after the burst, and the burst's drain rate;
   (d) an empty drain (``outbox.services.drain`` of a partner with nothing to send) in this
       process: its SQL statements and whether it built an HTTP client;
5. checks after (b) and (c) that every partner ended with the newest status of every EVSE that
   changed, that no push reached a partner out of order, and that no delivery failed;
6. prints the figures with the CPU used by the worker, the partners' process, PostgreSQL and
   this driver, and the machine's load (``uptime``); then stops everything and drops the
   database (unless ``--keep-db``).

The machine's other load is printed with the figures: on a shared machine they are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.locations import (
    HOST,
    PYTHON,
    REPO,
    children,
    cpu_seconds,
    free_port,
    machine_busy_seconds,
    pg_execute,
    postgres_cpu,
    run_checked,
    server_env,
)

REDIS_DB = 13
OUR_PARTY = ("NL", "BEN")
STATUSES = ("AVAILABLE", "CHARGING", "BLOCKED", "OUTOFORDER", "INOPERATIVE", "RESERVED")
FANOUT_TARGET = 1.0  # seconds, slowest partner
SUSTAINED_TARGET = 2000.0  # deliveries/s


# --- the partners: one asyncio process, one port per partner -----------------------------------

ENVELOPE = b'{"status_code":1000,"status_message":"Success","timestamp":"2026-01-01T00:00:00Z"}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(ENVELOPE)).encode()
    + b"\r\n\r\n"
    + ENVELOPE
)


class Partners:
    """What the partners received since the last reset."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.reset()

    def reset(self) -> None:
        self.received = [0] * self.count
        self.first_at: list[float | None] = [None] * self.count
        self.last_at: list[float | None] = [None] * self.count
        self.times: list[float] = []
        self.out_of_order = 0
        self.state: list[dict[str, tuple[str, str]]] = [{} for _ in range(self.count)]
        self.examples: list[str] = []

    def got(self, index: int, method: str, path: str, body: bytes) -> None:
        now = time.time()
        self.received[index] += 1
        self.times.append(now)
        if self.first_at[index] is None:
            self.first_at[index] = now
        self.last_at[index] = now
        key = path.split("/locations/", 1)[-1]
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            data = {}
        stamp, status = str(data.get("last_updated", "")), str(data.get("status", ""))
        before = self.state[index].get(key)
        if before is not None and stamp < before[0]:
            self.out_of_order += 1
            if len(self.examples) < 5:
                self.examples.append(f"partner {index} {method} {key}: {stamp} after {before[0]}")
            return
        self.state[index][key] = (stamp, status)

    def stats(self, digest: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "received": self.received,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "out_of_order": self.out_of_order,
            "examples": self.examples,
        }
        if digest:
            out["digests"] = [_digest({k: v[1] for k, v in s.items()}) for s in self.state]
        return out

    def rate_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.times if start <= t < end)


def _digest(state: dict[str, str]) -> str:
    """An order-independent digest of {EVSE key: status}."""
    acc = 0
    for key, status in state.items():
        acc ^= int.from_bytes(hashlib.sha1(f"{key}={status}".encode()).digest()[:8], "big")
    return f"{len(state)}:{acc:016x}"


class _Receiver(asyncio.Protocol):
    def __init__(self, partners: Partners, index: int) -> None:
        self.partners, self.index = partners, index
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            method, path, _ = head.split(" ", 2)
            self.partners.got(self.index, method, path, body)
            assert self.transport is not None
            self.transport.write(RESPONSE)


class _Control(asyncio.Protocol):
    def __init__(self, partners: Partners) -> None:
        self.partners = partners
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" not in self.buffer:
            return
        target = self.buffer.split(b" ", 2)[1].decode()
        if target.startswith("/reset"):
            self.partners.reset()
            body = b"{}"
        else:
            body = json.dumps(self.partners.stats(digest="digest" in target)).encode()
        if target.startswith("/rate"):
            _, start, end = target.split("/")[1:4]
            body = json.dumps(self.partners.rate_between(float(start), float(end))).encode()
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        self.transport.close()


async def _serve(ports: list[int], control: int) -> None:
    partners = Partners(len(ports))
    loop = asyncio.get_running_loop()
    for index, port in enumerate(ports):
        await loop.create_server(
            lambda i=index: _Receiver(partners, i), HOST, port, reuse_address=True, backlog=512
        )
    await loop.create_server(lambda: _Control(partners), HOST, control, reuse_address=True)
    print("partners ready", flush=True)
    await asyncio.Event().wait()


def partners_main(ports_file: Path) -> None:
    spec = json.loads(ports_file.read_text())
    with suppress(KeyboardInterrupt):
        asyncio.run(_serve(spec["ports"], spec["control"]))


def control(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=30) as reply:
        return json.loads(reply.read())


# --- the data set (in this process, Django set up) ---------------------------------------------


def setup_dataset(partners: int, locations: int, ports: list[int], seed: int) -> dict[str, Any]:
    from credentials import tokens
    from credentials.models import (
        ConnectionStatus,
        Initiative,
        Partner,
        PartnerEndpoint,
        PartnerRole,
        PartnerState,
    )
    from locations import services
    from locations.paths import ObjectPath
    from outbox.models import Delivery

    from .locations import make_location

    now = datetime.now(UTC).replace(microsecond=0)
    evses: list[str] = []
    for index in range(1, locations + 1):
        data = make_location(index, OUR_PARTY, random.Random(f"{seed}/{index}"), now)
        services.put(ObjectPath(*OUR_PARTY, data["id"]), data, owner=None, keep_timestamps=True)
        evses.extend(f"{data['id']}/{evse['uid']}" for evse in data["evses"])
    ids = []
    for number, port in enumerate(ports):
        name = f"partner-{number:03d}"
        row = Partner.objects.create(
            name=name,
            state=PartnerState.REGISTERED,
            initiated_by=Initiative.PARTNER,
            versions_url=f"http://{HOST}:{port}/ocpi/versions",
            version="2.2.1",
            status=ConnectionStatus.CONNECTED,
        )
        tokens.set_outbound_token(row, f"token-of-{name}")
        row.save()
        PartnerRole.objects.create(
            partner=row,
            role="EMSP",
            country_code="DE",
            party_id=f"{number:03d}"[-3:].replace("0", "A"),
            business_details={"name": name},
        )
        PartnerEndpoint.objects.create(
            partner=row,
            identifier="locations",
            role="RECEIVER",
            url=f"http://{HOST}:{port}/ocpi/2.2.1/locations",
        )
        ids.append(row.pk)
    assert not Delivery.objects.exists()
    return {"evses": evses, "partner_ids": ids}


# --- processes ---------------------------------------------------------------------------------


class Proc:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                argv,
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_for(self, text: bytes, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{self.name} did not start:\n{self.tail()}")
            time.sleep(0.1)

    def cpu(self) -> float:
        pids = [self.proc.pid, *children(self.proc.pid)]
        return sum(cpu_seconds(pid) for pid in pids)

    def tail(self, lines: int = 30) -> str:
        with suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


def status_rows(partner_ids: list[int], evses: list[str], count: int) -> list[Any]:
    """``count`` outbox rows of EVSE status PATCHes, over the partners and EVSEs in turn."""
    from ocpi_platform.ocpi.types import format_datetime, now_utc
    from outbox.models import Delivery

    stamp = format_datetime(now_utc())
    rows = []
    for number in range(count):
        key = f"{OUR_PARTY[0]}/{OUR_PARTY[1]}/" + evses[number % len(evses)]
        rows.append(
            Delivery(
                partner_id=partner_ids[number % len(partner_ids)],
                module="locations",
                key=key.upper(),
                path=key,
                method="PATCH",
                body={"status": STATUSES[number % len(STATUSES)], "last_updated": stamp},
                from_country_code=OUR_PARTY[0],
                from_party_id=OUR_PARTY[1],
            )
        )
    return rows


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


# --- the measurements --------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, data: dict[str, Any], control_port: int) -> None:
        import redis

        self.args, self.data, self.control = args, data, control_port
        self.redis = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
        self.next_evse = 0
        self.expected: dict[str, str] = {}  # EVSE key -> newest status we set
        self.status_index: dict[str, int] = {}
        self.procs: dict[str, Proc] = {}
        self.published: list[float] = []  # fan-out: seconds until the change had queued its drains

    def change(self) -> str:
        from locations import services
        from locations.paths import ObjectPath

        key = self.data["evses"][self.next_evse % len(self.data["evses"])]
        self.next_evse += 1
        index = self.status_index.get(key, -1) + 1
        self.status_index[key] = index
        status = STATUSES[index % len(STATUSES)]
        location_id, uid = key.split("/")
        services.set_evse_status(ObjectPath(*OUR_PARTY, location_id, uid), status)
        self.expected[f"{OUR_PARTY[0]}/{OUR_PARTY[1]}/{key}"] = status
        return key

    def cpu(self) -> dict[str, float]:
        out = {name: proc.cpu() for name, proc in self.procs.items()}
        out["postgres"] = postgres_cpu(self.args.db_name)
        out["driver"] = cpu_seconds(os.getpid())
        out["machine"] = machine_busy_seconds()
        return out

    def settle(self, timeout: float = 600.0) -> float:
        """Wait until nothing is open in the outbox and the partners got nothing for 0.3 s."""
        from outbox.models import Delivery

        deadline = time.monotonic() + timeout
        last_total, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            total = sum(control(self.control, "/stats")["received"])
            if total != last_total:
                last_total, quiet_since = total, time.monotonic()
            elif time.monotonic() - quiet_since > 0.3 and not Delivery.objects.open().exists():
                return time.monotonic()
            time.sleep(0.05)
        raise SystemExit("the outbox did not drain in time")

    def fanout(self) -> list[tuple[float, float]]:
        results = []
        partners = len(self.data["partner_ids"])
        for _ in range(self.args.repeat):
            self.settle()
            control(self.control, "/reset")
            started = time.time()
            self.change()
            self.published.append(time.time() - started)
            deadline = time.monotonic() + 30
            while True:
                stats = control(self.control, "/stats")
                if all(n >= 1 for n in stats["received"]):
                    break
                if time.monotonic() > deadline:
                    missing = sum(1 for n in stats["received"] if n < 1)
                    raise SystemExit(f"fan-out: {missing} of {partners} partners never got it")
                time.sleep(0.025)
            delays = [t - started for t in stats["first_at"]]
            results.append((max(delays), statistics.median(delays)))
            time.sleep(0.5)
        return results

    def sustained(self) -> dict[str, Any]:
        from outbox.models import Delivery

        self.settle()
        control(self.control, "/reset")
        self.expected.clear()
        first_id = (Delivery.objects.order_by("-id").values_list("id", flat=True).first()) or 0
        cpu0 = self.cpu()
        started = time.time()
        changes = 0
        interval = 1.0 / self.args.rate
        next_at = time.monotonic()
        stop = time.monotonic() + self.args.duration
        while time.monotonic() < stop:
            self.change()
            changes += 1
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        produced_until = time.time()
        cpu1 = self.cpu()
        window_from = started + self.args.warmup
        in_window = control(self.control, f"/rate/{window_from}/{produced_until}")
        rate = in_window / max(produced_until - window_from, 1e-9)
        backlog = Delivery.objects.open().count()
        done_at = self.settle()
        drained = time.time() - (time.monotonic() - done_at)
        stats = control(self.control, "/stats")
        total = sum(stats["received"])
        rows = Delivery.objects.filter(id__gt=first_id).count()
        return {
            "changes": changes,
            "change_rate": changes / self.args.duration,
            "rate": rate,
            "backlog": backlog,
            "drain_after": drained - produced_until,
            "total": total,
            "rows": rows,
            "overall": total / max(drained - started, 1e-9),
            "cpu": {k: (cpu1[k] - cpu0[k]) / (produced_until - started) for k in cpu0},
            "stats": stats,
        }

    def burst(self) -> dict[str, Any]:
        from outbox.models import Delivery

        self.settle()
        control(self.control, "/reset")
        self.expected.clear()
        first_id = (Delivery.objects.order_by("-id").values_list("id", flat=True).first()) or 0
        peak = [0]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                peak[0] = max(peak[0], int(self.redis.llen("celery")))
                time.sleep(0.005)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.time()
        for _ in range(self.args.burst):
            self.change()
        burst_done = time.time()
        after = int(self.redis.llen("celery"))
        done_at = self.settle()
        sampling.set()
        sampler.join()
        drained = time.time() - (time.monotonic() - done_at)
        total = sum(control(self.control, "/stats")["received"])
        return {
            "seconds": burst_done - started,
            "peak": peak[0],
            "after": after,
            "left_after_drain": int(self.redis.llen("celery")),
            "rows": Delivery.objects.filter(id__gt=first_id).count(),
            "total": total,
            "rate": total / max(drained - started, 1e-9),
        }

    def check(self, label: str) -> list[str]:
        from outbox.models import Delivery, DeliveryState

        problems = []
        stats = control(self.control, "/stats?digest")
        expected = _digest(self.expected)
        wrong = [i for i, d in enumerate(stats["digests"]) if d != expected]
        if wrong:
            problems.append(f"{label}: {len(wrong)} partners do not have the newest state")
        if stats["out_of_order"]:
            problems.append(f"{label}: {stats['out_of_order']} pushes out of order")
            problems.extend(f"  {e}" for e in stats["examples"])
        failed = Delivery.objects.exclude(state=DeliveryState.SENT).count()
        if failed:
            problems.append(f"{label}: {failed} deliveries not SENT")
        return problems

    def one_drain(self, changes: int) -> dict[str, Any]:
        """In this process, before the worker starts: ``changes`` changes queue rows for every
        partner; one drain of the first partner sends its rows. Its wall time and CPU per
        delivery, and the top functions (cProfile) when --profile is given."""
        import cProfile
        import pstats

        from outbox import services
        from outbox.models import Delivery

        if self.args.profile:  # the change's own cost: 5 changes to every partner
            change_profile = cProfile.Profile()
            change_profile.enable()
            for _ in range(5):
                self.change()
            change_profile.disable()
            out = io.StringIO()
            pstats.Stats(change_profile, stream=out).sort_stats("cumulative").print_stats(40)
            print(out.getvalue())
        partner_id = self.data["partner_ids"][0]
        Delivery.objects.bulk_create(status_rows([partner_id], self.data["evses"], changes))
        count = Delivery.objects.open().filter(partner_id=partner_id).count()
        profile = cProfile.Profile() if self.args.profile else None
        started, cpu = time.monotonic(), time.process_time()
        if profile is not None:
            profile.enable()
        sent = services.drain(partner_id)
        if profile is not None:
            profile.disable()
        seconds, cpu = time.monotonic() - started, time.process_time() - cpu
        top = ""
        if profile is not None:
            out = io.StringIO()
            stats = pstats.Stats(profile, stream=out)
            stats.sort_stats("cumulative").print_stats(45)
            stats.sort_stats("tottime").print_stats(15)
            top = out.getvalue()
        return {"rows": count, "sent": sent, "seconds": seconds, "cpu": cpu, "top": top}

    def empty_drain(self) -> tuple[int, int, list[str]]:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from ocpi_platform.ocpi import client
        from outbox import services

        built = [0]
        original = client.OcpiClient.__init__

        def counting(self_: Any, *a: Any, **kw: Any) -> None:
            built[0] += 1
            original(self_, *a, **kw)

        client.OcpiClient.__init__ = counting  # type: ignore[method-assign]
        try:
            partner_id = self.data["partner_ids"][0]
            services.drain(partner_id)  # warm (the lease row exists)
            built[0] = 0
            with CaptureQueriesContext(connection) as queries:
                services.drain(partner_id)
        finally:
            client.OcpiClient.__init__ = original  # type: ignore[method-assign]
        return len(queries), built[0], [q["sql"][:160] for q in queries]


def report(bench: Bench, fan: list[tuple[float, float]], sus: dict[str, Any],
           burst: dict[str, Any], empty: tuple[int, int, list[str]], one: dict[str, Any],
           problems: list[str],
           load: list[str]) -> int:  # fmt: skip
    args = bench.args
    worst = max(m for m, _ in fan)
    median_max = statistics.median([m for m, _ in fan])
    median_partner = statistics.median([p for _, p in fan])
    print()
    for line in load:
        print(line)
    print(
        f"\nSet-up: {len(bench.data['partner_ids'])} partners (one loopback port each, one "
        f"asyncio process), {len(bench.data['evses'])} EVSEs; Celery prefork x{args.workers}, "
        "log level INFO, beat running"
    )
    ok_fan = median_max <= FANOUT_TARGET
    ok_rate = sus["rate"] >= SUSTAINED_TARGET
    print(
        f"\n(a) fan-out of one EVSE status change, {args.repeat} runs: slowest partner "
        f"median {median_max:.3f} s (worst {worst:.3f} s), median partner "
        f"{median_partner:.3f} s   target <= {FANOUT_TARGET:g} s: "
        f"{'PASS' if ok_fan else 'FAIL'}"
    )
    print("    per run (slowest, median): " + ", ".join(f"{m:.3f}/{p:.3f}" for m, p in fan))
    print(
        "    the change itself (transaction, then one statement and the drain tasks published): "
        + ", ".join(f"{p:.3f}" for p in bench.published)
        + " s"
    )
    cpu = sus["cpu"]
    print(
        f"(b) sustained: {sus['changes']} changes at {sus['change_rate']:.1f}/s for "
        f"{args.duration:g} s -> {sus['rate']:,.0f} deliveries/s received after the "
        f"{args.warmup:g} s warm-up   target >= {SUSTAINED_TARGET:,.0f}/s: "
        f"{'PASS' if ok_rate else 'FAIL'}"
    )
    print(
        f"    backlog when the changes stopped: {sus['backlog']:,} rows, drained "
        f"{sus['drain_after']:.1f} s later; {sus['total']:,} pushes received for "
        f"{sus['rows']:,} rows ({sus['overall']:,.0f}/s overall)"
    )
    print(
        "    CPU s/s during the changes: "
        + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items() if k != "machine")
        + f", machine {cpu['machine']:.2f} of {os.cpu_count()}"
    )
    if sus["rate"] > 0 and cpu.get("worker"):
        print(f"    worker CPU per 1,000 deliveries: {cpu['worker'] / sus['rate'] * 1000:.2f} s")
    print(
        f"(c) burst of {args.burst} changes in {burst['seconds']:.2f} s ({burst['rows']:,} rows): "
        f"Celery queue peak {burst['peak']:,} tasks, {burst['after']:,} right after the burst, "
        f"{burst['left_after_drain']:,} once all was delivered; drained at "
        f"{burst['rate']:,.0f} deliveries/s"
    )
    count, clients, sql = empty
    print(f"(d) a drain with nothing to send: {count} SQL statements, {clients} HTTP clients built")
    for statement in sql:
        print(f"      {statement}")
    print(
        f"(e) one drain in the driver process (no Celery): {one['sent']:,} of {one['rows']:,} "
        f"rows sent in {one['seconds']:.2f} s = {one['sent'] / max(one['seconds'], 1e-9):,.0f} "
        f"deliveries/s, {one['cpu'] / max(one['sent'], 1) * 1000:.2f} ms of CPU each (driver "
        "process only; PostgreSQL and the partner's process besides)"
    )
    if one["top"]:
        print(one["top"])
    if problems:
        print("\nINVALID RUN:")
        for line in problems:
            print(f"  {line}")
        return 1
    print(
        "\nValid run: every partner has the newest state of every EVSE, nothing out of "
        "order, every delivery SENT."
    )
    return 0 if ok_fan and ok_rate else 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fanout", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--partners", type=int, default=100, help="registered partners (100)")
    parser.add_argument("--locations", type=int, default=500, help="our locations, 2 EVSEs each")
    parser.add_argument("--duration", type=float, default=15.0, help="sustained phase seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="not counted at its start (3)")
    parser.add_argument("--rate", type=float, default=40.0, help="changes/s at most (40)")
    parser.add_argument("--burst", type=int, default=200, help="changes in the burst (200)")
    parser.add_argument("--repeat", type=int, default=5, help="fan-out runs (5)")
    parser.add_argument("--workers", type=int, default=2, help="Celery prefork processes (2)")
    parser.add_argument("--db-name", default="ocpi_bench_fanout")
    parser.add_argument("--keep-db", action="store_true", help="keep the database afterwards")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument(
        "--drain-rows", type=int, default=2000, help="rows of the in-process drain (2000)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the in-process drain")
    parser.add_argument("--only-drain", action="store_true", help="stop after the drain (e)")
    parser.add_argument("--partners-server", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.locations * 2 < args.burst + args.rate * args.duration:
        parser.error("needs more EVSEs than changes (--locations x 2)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.partners_server is not None:
        partners_main(args.partners_server)
        return 0

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    workdir = Path(tempfile.mkdtemp(prefix="ocpi-fanout-"))
    env = server_env(args.db_name, free_port(), workdir)
    env["CELERY_BROKER_URL"] = f"redis://127.0.0.1:6379/{REDIS_DB}"
    env["OCPI_PARTIES"] = f"{OUR_PARTY[0]}:{OUR_PARTY[1]}:CPO"
    env["LOG_LEVEL"] = "INFO"
    procs: list[Proc] = []
    load = [f"Load before the run: {uptime()}"]
    try:
        print(f"Database {args.db_name}: create and migrate", flush=True)
        pg_execute(f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')
        pg_execute(f'CREATE DATABASE "{args.db_name}"')
        run_checked([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], env, "migrate")
        taken: set[int] = set()
        while len(taken) < args.partners + 1:
            taken.add(free_port())
        ports = sorted(taken)
        control_port = ports.pop()
        ports_file = workdir / "ports.json"
        ports_file.write_text(json.dumps({"ports": ports, "control": control_port}))

        os.environ.update(env)
        import django

        django.setup()
        import redis

        redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).flushdb()
        print(f"Data set: {args.locations} locations, {args.partners} partners", flush=True)
        data = setup_dataset(args.partners, args.locations, ports, args.seed)
        from django.db import connection

        from outbox.models import Delivery

        connection.close()

        partners = Proc(
            "partners",
            [PYTHON, "-m", "bench.fanout", "--partners-server", str(ports_file)],
            env,
            workdir / "partners.log",
        )
        procs.append(partners)
        partners.wait_for(b"partners ready")
        bench = Bench(args, data, control_port)
        print(f"- (e) one drain of {args.drain_rows} rows in this process", flush=True)
        one = bench.one_drain(args.drain_rows)
        Delivery.objects.all().delete()
        connection.close()
        if args.only_drain:
            print(one["top"])
            print(
                f"{one['sent']} rows in {one['seconds']:.2f} s, "
                f"{one['cpu'] / max(one['sent'], 1) * 1000:.2f} ms CPU each; {uptime()}"
            )
            return 0
        worker = Proc(
            "worker",
            [PYTHON, "-m", "celery", "-A", "ocpi_platform", "worker", "--loglevel", "INFO",
             "--concurrency", str(args.workers), "--without-gossip", "--without-mingle"],
            env,
            workdir / "worker.log",
        )  # fmt: skip
        procs.append(worker)
        beat = Proc(
            "beat",
            [PYTHON, "-m", "celery", "-A", "ocpi_platform", "beat", "--loglevel", "INFO",
             "-s", str(workdir / "beat-schedule")],
            env,
            workdir / "beat.log",
        )  # fmt: skip
        procs.append(beat)
        worker.wait_for(b" ready.")
        beat.wait_for(b"beat: Starting...")
        bench.procs = {"worker": worker, "partners": partners}
        print(f"Machine: {uptime()}", flush=True)
        print("- warm-up: one change to every partner", flush=True)
        bench.change()
        bench.settle()
        print(f"- (a) fan-out x{args.repeat}", flush=True)
        fan = bench.fanout()
        load.append(f"Load after the fan-out: {uptime()}")
        print(f"- (b) sustained, {args.duration:g} s at up to {args.rate:g} changes/s", flush=True)
        sus = bench.sustained()
        load.append(f"Load after the sustained phase: {uptime()}")
        problems = bench.check("sustained")
        print(f"- (c) burst of {args.burst} changes", flush=True)
        burst = bench.burst()
        problems += bench.check("burst")
        print("- (d) empty drain", flush=True)
        empty = bench.empty_drain()
        return report(bench, fan, sus, burst, empty, one, problems, load)
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
    finally:
        for proc in reversed(procs):
            proc.stop()
        with suppress(Exception):
            from django.db import connections

            from journal import recorder

            recorder.flush()
            connections.close_all()
        if not args.keep_db:
            with suppress(Exception):
                pg_execute(f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
