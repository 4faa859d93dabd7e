"""Benchmark of the tokens module: sender list, real-time authorization, local decision, pull.

Run from the repository root, under the benchmark lock::

    flock /tmp/ocpi-bench.lock .venv/bin/python -m bench.tokens [--tokens N] [--duration S]
        [--concurrency C] [--workers W] [--threads T] [--help]

What it does (the machinery is ``bench.locations``': gunicorn, the raw asyncio client, the
checks and the CPU accounting):

1. creates the database ``ocpi_bench_tokens`` (we are NL/BEN, CPO and eMSP) and fills it in a
   Django subprocess: N of our own tokens (the spec's full RFID example, 80 % whitelisted
   ALWAYS, the rest ALLOWED or NEVER, one in 20 not valid) stored through the kit's write path
   (``kit.services.put``), and a registered partner CPO (DE/PCP) that reads our list and asks
   for authorizations; VACUUM ANALYZE;
2. starts gunicorn (2 gthread workers x 4 threads, like ``make web``) and measures, each phase
   a warm-up and ``--duration`` seconds, every response checked:
   (a) ``/bench/ceiling/tokens``: the same server returning a precomputed list page of 50
       tokens (the bytes of the real first page), no DRF, no authentication, no query;
   (b) the sender list, ``limit=50`` at random offsets (full pages);
   (c) ``POST /ocpi/2.2.1/sender/tokens/{uid}/authorize`` with LocationReferences, random
       valid tokens (ALLOWED with an authorization_reference) and one in 20 blocked, twice:
       saturated (closed loop: every connection sends its next request as soon as it has the
       answer; the throughput the server reaches) and at 500 requests/s offered (open loop:
       the connections send on a fixed schedule, and each latency counts from the time the
       request was due, so a slow answer delays the ones after it and shows). The p99 target
       is read at the offered load: in a closed loop the latency is connections / throughput
       (16 / 500 = 32 ms at the median) whatever the server does. Meanwhile ``bench.machine``'s
       probe watches whether the CPU runs at its speed: the report says when and how long the
       host slowed it, and the p99 of the requests no such episode overlapped beside the p99
       of all (the verdict is on all);
3. the pull: a second database ``ocpi_bench_tokens_cpo`` plays the CPO DE/PCP: migrated, with
   the server as its registered eMSP partner, and ``manage.py ocpi_pull tokens bench-emsp
   --full`` reads all N tokens over HTTP (pages of OCPI_PAGE_LIMIT) and stores them through
   the receiver's write path; timed from the command's start to its end;
4. the CPO's local decision: in that CPO database, ``tokens.realtime.authorize_at_charge_point``
   of ALWAYS tokens, called in process (one per call: the lookup, the decision, the JSON);
5. prints the figures and PASS/FAIL against the targets: list >= 50 % of the ceiling,
   authorize >= 500/s saturated and, at 500/s offered, all of it served with p99 <= 50 ms,
   local decision <= 1 ms per call, pull <= 30 s.

Exit status: 0 valid and every target met, 1 invalid run (errors), 2 a target missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import machine
from bench.locations import (
    HOST,
    PG_HOST,
    PG_PORT,
    PYTHON,
    REPO,
    Load,
    Phase,
    Reply,
    Request,
    Server,
    auth,
    check_list,
    free_port,
    machine_busy_seconds,
    percentile,
    pg_execute,
    run_checked,
    server_env,
)

OUR_PARTY = ("NL", "BEN")
CPO_PARTY = ("DE", "PCP")
PAGE = 50
LIST_TARGET = 0.50
AUTHORIZE_TARGET = 500.0  # per second
AUTHORIZE_P99 = 0.050  # seconds
LOCAL_TARGET = 0.001  # seconds per call
PULL_TARGET = 30.0  # seconds
LOCAL_CALLS = 5_000
EXAMPLE = REPO / "tests" / "fixtures" / "ocpi" / "token_example_2_full_rfid.json"
LOCATION = {"location_id": "LOC000001", "evse_uids": ["1-1", "1-2"]}


# --- the data set (Django subprocesses) ----------------------------------------------------------


def make_token(index: int, now: datetime) -> dict[str, Any]:
    token: dict[str, Any] = json.loads(EXAMPLE.read_text())
    rng = random.Random(index)
    token.update(
        country_code=OUR_PARTY[0],
        party_id=OUR_PARTY[1],
        uid=f"{index:014d}",
        contract_id=f"NL-BEN-C{index:08d}",
        visual_number=f"NL-BEN-{index:08d}",
        valid=index % 20 != 0,
        whitelist="ALWAYS" if index % 10 < 8 else ("ALLOWED" if index % 10 == 8 else "NEVER"),
        last_updated=(now - timedelta(seconds=rng.randrange(0, 365 * 86_400))).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
    )
    return token


def _put_tokens(indexes: range, now: datetime) -> None:
    from django.db import connection

    import kit
    from kit import services

    spec = kit.spec_of("tokens")
    try:
        for index in indexes:
            data = make_token(index, now)
            services.put(spec, spec.key_of(data), data, owner=None, keep_timestamp=True)
    finally:
        connection.close()


def _partner(name: str, role: str, party: tuple[str, str], versions_url: str) -> Any:
    from credentials.models import (
        ConnectionStatus,
        Initiative,
        Partner,
        PartnerEndpoint,
        PartnerRole,
        PartnerState,
    )

    row = Partner.objects.create(
        name=name,
        state=PartnerState.REGISTERED,
        initiated_by=Initiative.PARTNER,
        versions_url=versions_url,
        version="2.2.1",
        status=ConnectionStatus.CONNECTED,
    )
    PartnerRole.objects.create(
        partner=row, role=role, country_code=party[0], party_id=party[1], business_details={}
    )
    PartnerEndpoint.objects.create(
        partner=row,
        identifier="credentials",
        role="SENDER",
        url=versions_url.replace("/versions", "/2.2.1/credentials"),
    )
    return row


def setup_emsp(out: Path, count: int) -> None:
    """Our tokens and the partner CPO (runs with the server's settings)."""
    import multiprocessing

    import django

    django.setup()
    from django.db import connection

    from credentials import tokens
    from ocpi_platform.ocpi.principal import TokenKind

    started = time.monotonic()
    cpo = _partner("bench-cpo", "CPO", CPO_PARTY, "http://bench-cpo.invalid/ocpi/versions")
    tokens.set_outbound_token(cpo, secrets.token_urlsafe(32))
    cpo.save()
    _, cpo_token = tokens.issue_inbound_token(cpo, TokenKind.REGULAR)
    now = datetime.now(UTC).replace(microsecond=0)
    jobs = max(1, os.cpu_count() or 1)
    connection.close()
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        pool.starmap(_put_tokens, [(range(k + 1, count + 1, jobs), now) for k in range(jobs)])
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        cursor.execute("SELECT avg(length(ocpi_json)) FROM tokens_token")
        avg_json = float(cursor.fetchone()[0] or 0)
    out.write_text(
        json.dumps(
            {
                "tokens": count,
                "cpo_token": cpo_token,
                "avg_token_json": avg_json,
                "seconds": time.monotonic() - started,
            }
        )
    )


def setup_cpo(server_url: str, outbound_token: str) -> None:
    """The CPO side's partner row for the server (runs with the CPO database's settings)."""
    import django

    django.setup()
    from credentials import tokens
    from credentials.models import PartnerEndpoint

    emsp = _partner("bench-emsp", "EMSP", OUR_PARTY, f"{server_url}/ocpi/versions")
    tokens.set_outbound_token(emsp, outbound_token)
    emsp.save()
    PartnerEndpoint.objects.create(
        partner=emsp,
        identifier="tokens",
        role="SENDER",
        url=f"{server_url}/ocpi/2.2.1/sender/tokens/",
    )


def measure_local(out: Path, count: int) -> None:
    """The CPO's decision for ALWAYS tokens, in process (runs on the CPO database)."""
    import django

    django.setup()
    from tokens.realtime import Source, authorize_at_charge_point

    uids = [f"{i:014d}" for i in range(1, count + 1) if i % 10 < 8]
    rng = random.Random(7)
    sample = [rng.choice(uids) for _ in range(LOCAL_CALLS)]
    for uid in sample[:200]:  # warm-up: connection, query compilation
        authorize_at_charge_point(uid, location=LOCATION)
    times = []
    for uid in sample:
        began = time.perf_counter()
        outcome = authorize_at_charge_point(uid, location=LOCATION)
        times.append(time.perf_counter() - began)
        if outcome.source != Source.LOCAL or outcome.allowed not in ("ALLOWED", "BLOCKED"):
            raise SystemExit(f"unexpected local outcome for {uid}: {outcome}")
    times.sort()
    out.write_text(
        json.dumps(
            {"calls": len(times), "mean": statistics.fmean(times), "p99": percentile(times, 0.99)}
        )
    )


# --- load phases ---------------------------------------------------------------------------------


def check_authorize(reply: Reply, full: bool) -> str | None:
    if reply.status != 200:
        return f"HTTP {reply.status}: {reply.body[:200]!r}"
    data = json.loads(reply.body)
    if data.get("status_code") != 1000:
        return f"OCPI {data.get('status_code')}: {data.get('status_message')}"
    info = data["data"]
    expected = "ALLOWED" if info["token"]["valid"] else "BLOCKED"
    if info["allowed"] != expected or (expected == "ALLOWED") != bool(
        info.get("authorization_reference")
    ):
        return f"unexpected decision {info['allowed']} for valid={info['token']['valid']}"
    return None


class TokensLoad(Load):
    def __init__(self, args: argparse.Namespace, port: int, data: dict[str, Any]) -> None:
        self.args, self.port, self.data = args, port, data
        self.cpo = {**auth(data["cpo_token"]), "Content-Type": "application/json"}
        self.total = int(data["tokens"])

    def ceiling(self, worker: int) -> Iterator[Request]:
        check = check_list(self.total, PAGE)
        while True:
            yield "ceiling", "GET", "/bench/ceiling/tokens", self.cpo, b"", check

    def sender_list(self, worker: int) -> Iterator[Request]:
        rng = random.Random(self.args.seed + worker)
        check = check_list(self.total, PAGE)
        while True:
            offset = rng.randrange(0, self.total - PAGE + 1)
            target = f"/ocpi/2.2.1/sender/tokens?limit={PAGE}&offset={offset}"
            yield "offset", "GET", target, self.cpo, b"", check

    def authorizations(self, worker: int) -> Iterator[Request]:
        rng = random.Random(self.args.seed + 1000 + worker)
        body = json.dumps(LOCATION).encode()
        while True:
            uid = f"{rng.randrange(1, self.total + 1):014d}"
            target = f"/ocpi/2.2.1/sender/tokens/{uid}/authorize"
            yield "authorize", "POST", target, self.cpo, body, check_authorize


async def measure(
    args: argparse.Namespace, port: int, data: dict[str, Any], server: Server
) -> dict[str, Phase]:
    load = TokensLoad(args, port, data)
    plan: list[tuple[str, Callable[[int], Iterator[Request]]]] = [
        ("ceiling", load.ceiling),
        ("list", load.sender_list),
        ("authorize", load.authorizations),
    ]
    phases = {}
    for name, requests in plan:
        print(f"- {name}: {args.warmup:g} s warm-up + {args.duration:g} s ...", flush=True)
        phase = await load.run(name, requests, server)
        phases[name] = phase
        print(f"  {phase.rate:,.0f} req/s, {len(phase.errors)} errors", flush=True)
    # The latency at the target load: an open loop at AUTHORIZE_TARGET requests/s, with the
    # machine probe beside it (did the CPU run at its speed meanwhile?).
    print(f"- authorize at {args.rate:g}/s: {args.warmup:g} s warm-up + {args.duration:g} s ...")
    with tempfile.TemporaryDirectory(prefix="ocpi-bench-probe-") as folder:
        probe = machine.Probe(args.warmup + args.duration, Path(folder) / "probe.json")
        phase = await load.run("authorize_at_rate", load.authorizations, server, rate=args.rate)
        MACHINE[phase.name] = probe.result()
    phases["authorize_at_rate"] = phase
    print(f"  {phase.rate:,.0f} req/s, {len(phase.errors)} errors", flush=True)
    return phases


# What the machine probe saw during a phase (bench.machine), by phase name.
MACHINE: dict[str, machine.Verdict | None] = {}


def untouched(phase: Phase, verdict: machine.Verdict) -> list[float]:
    """The latencies of the requests that no slowed-CPU episode overlapped (sorted)."""
    return sorted(s.seconds for s in phase.samples if not verdict.overlaps(s.at, s.at + s.seconds))


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.tokens", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--tokens", type=int, default=10_000, help="own tokens (10000)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per phase (15)")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds (3)")
    parser.add_argument("--concurrency", type=int, default=16, help="connections (16)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (4)")
    parser.add_argument("--reconnect", type=float, default=1.0, help="renew connections (1 s)")
    parser.add_argument("--db-name", default="ocpi_bench_tokens", help="database name")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument(
        "--rate",
        type=float,
        default=AUTHORIZE_TARGET,
        help=f"authorizations/s of the open-loop phase ({AUTHORIZE_TARGET:g})",
    )
    parser.add_argument("--stage", choices=("emsp", "cpo", "local"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--server-url", help=argparse.SUPPRESS)
    parser.add_argument("--outbound-token", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tokens < PAGE:
        parser.error(f"needs --tokens >= {PAGE}")
    args.client = "raw"
    args.cores = os.cpu_count() or 1
    return args


def stage(args: argparse.Namespace) -> int:
    if args.stage == "emsp":
        setup_emsp(args.out, args.tokens)
    elif args.stage == "cpo":
        setup_cpo(args.server_url, args.outbound_token)
    else:
        measure_local(args.out, args.tokens)
    return 0


def cpo_env(server: dict[str, str], db_name: str) -> dict[str, str]:
    env = dict(server)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "ocpi_platform.settings",
            "DATABASE_URL": f"postgres://postgres@{PG_HOST}:{PG_PORT}/{db_name}",
            "OCPI_PARTIES": f"{CPO_PARTY[0]}:{CPO_PARTY[1]}:CPO",
            "OCPI_PUBLIC_URL": f"http://{HOST}:{free_port()}",  # http loopback: calls allowed
            "OCPI_DATA_DIR": env["OCPI_DATA_DIR"] + "-cpo",
        }
    )
    return env


def report(
    phases: dict[str, Phase],
    pull: dict[str, Any],
    local: dict[str, Any],
    context: list[str],
    rate: float = AUTHORIZE_TARGET,
) -> int:
    ceiling, listing, authorize = phases["ceiling"], phases["list"], phases["authorize"]
    at_rate = phases["authorize_at_rate"]
    ratio = listing.rate / ceiling.rate if ceiling.rate else 0.0
    p99 = percentile(at_rate.latencies(), 0.99)
    verdicts = {
        "list": ratio >= LIST_TARGET,
        "authorize": authorize.rate >= AUTHORIZE_TARGET,
        # The offered load was served (a server falling behind answers fewer) within the p99.
        "at_rate": rate >= AUTHORIZE_TARGET
        and at_rate.rate >= 0.98 * rate
        and p99 <= AUTHORIZE_P99,
        "local": local["mean"] <= LOCAL_TARGET,
        "pull": pull["seconds"] <= PULL_TARGET and pull["stored"] == pull["expected"],
    }

    def ok(name: str) -> str:
        return "PASS" if verdicts[name] else "FAIL"

    print()
    for line in context:
        print(line)
    print(f"\n{'':<34}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}  target")
    for label, phase, target in (
        ("ceiling (precomputed page of 50)", ceiling, ""),
        ("sender list, limit 50", listing, f"{ratio:.0%} of ceiling (>= 50 %) {ok('list')}"),
        ("authorize, saturated", authorize, f">= 500/s {ok('authorize')}"),
        (f"authorize, {rate:,.0f}/s offered", at_rate, f"p99 <= 50 ms {ok('at_rate')}"),
    ):
        values = phase.latencies()
        print(
            f"{label:<34}{phase.rate:>8,.0f}{percentile(values, 0.5) * 1000:>9.1f}"
            f"{percentile(values, 0.99) * 1000:>9.1f}{len(phase.errors):>8}  {target}"
        )
        cpu = phase.cpu
        print(
            f"{'':<4}CPU s/s: client {cpu['client']:.2f}, gunicorn {cpu['gunicorn']:.2f}, "
            f"postgres {cpu['postgres']:.2f}, other {cpu['other']:.2f}"
        )
    verdict = MACHINE.get(at_rate.name)
    if verdict is None:
        print("machine: the probe gave no verdict")
    else:
        print(verdict.line())
        if verdict.episodes:
            calm = untouched(at_rate, verdict)
            print(
                f"{'':<4}p99 of the {len(calm):,} of {len(at_rate.samples):,} requests at "
                f"{rate:,.0f}/s that no episode overlapped: {percentile(calm, 0.99) * 1000:.1f} ms "
                f"(the verdict above counts them all)"
            )
    print(
        f"CPO local decision (ALWAYS, in process): mean {local['mean'] * 1000:.3f} ms, "
        f"p99 {local['p99'] * 1000:.3f} ms over {local['calls']:,} calls "
        f"(<= 1 ms) {ok('local')}"
    )
    print(
        f"pull of {pull['expected']:,} tokens over HTTP: {pull['seconds']:.1f} s, "
        f"{pull['pages']} pages, {pull['stored']:,} stored, {pull['rejected']} rejected "
        f"(<= 30 s) {ok('pull')}"
    )
    errors = sum(len(p.errors) for p in phases.values())
    if errors:
        print(f"\nINVALID RUN: {errors} failed responses. First ones:")
        for phase in phases.values():
            for message in phase.errors[:5]:
                print(f"  [{phase.name}] {message}")
        return 1
    return 0 if all(verdicts.values()) else 2


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.stage:
        return stage(args)

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="ocpi-bench-tokens-"))
    env = server_env(args.db_name, port, workdir)
    env["DJANGO_SETTINGS_MODULE"] = "bench.tokens_settings"
    cpo_db = args.db_name + "_cpo"
    cpo = cpo_env(env, cpo_db)
    server = Server(env, port, args.workers, args.threads, workdir / "gunicorn.log")
    me = [PYTHON, "-m", "bench.tokens", "--tokens", str(args.tokens)]
    try:
        for db in (args.db_name, cpo_db):
            pg_execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            pg_execute(f'CREATE DATABASE "{db}"')
        print(
            f"Databases {args.db_name} (eMSP, the server) and {cpo_db} (CPO): migrate", flush=True
        )
        run_checked([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], env, "migrate")
        run_checked([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cpo, "migrate")
        print(f"Data set: {args.tokens:,} tokens through kit.services.put", flush=True)
        out = workdir / "dataset.json"
        run_checked([*me, "--stage", "emsp", "--out", str(out)], env, "data set")
        data = json.loads(out.read_text())
        busy = machine_busy_seconds()
        time.sleep(1.0)
        load_before = machine_busy_seconds() - busy
        server.start()
        phases = asyncio.run(measure(args, port, data, server))

        # The pull, by the CPO database, from the running server.
        server_url = f"http://{HOST}:{port}"
        run_checked(
            [
                *me,
                "--stage",
                "cpo",
                "--server-url",
                server_url,
                "--outbound-token",
                data["cpo_token"],
            ],
            cpo,
            "CPO setup",
        )
        print(f"- pull of {args.tokens:,} tokens ...", flush=True)
        began = time.monotonic()
        result = subprocess.run(
            [PYTHON, "manage.py", "ocpi_pull", "tokens", "bench-emsp", "--full", "--json"],
            cwd=REPO, env=cpo, capture_output=True, text=True, check=False,
        )  # fmt: skip
        seconds = time.monotonic() - began
        if result.returncode != 0:
            print(result.stdout, result.stderr[-3000:])
            return 1
        summary = json.loads(result.stdout)
        pull = {**summary, "seconds": seconds, "expected": args.tokens}
        server.stop()

        print("- CPO local decision ...", flush=True)
        local_out = workdir / "local.json"
        run_checked([*me, "--stage", "local", "--out", str(local_out)], cpo, "local decision")
        local = json.loads(local_out.read_text())
        context = [
            f"Machine load before the run: {load_before:.2f} of {args.cores} cores busy"
            + ("  (WARNING: other processes use the CPU)" if load_before > 0.25 else ""),
            f"Data set: {data['tokens']:,} own tokens (avg. {data['avg_token_json']:.0f} bytes "
            f"of JSON), filled in {data['seconds']:.0f} s",
            f"Server: gunicorn, {args.workers} {server.worker_class} workers x {args.threads} "
            f"threads; client: raw asyncio, {args.concurrency} connections, "
            f"{args.warmup:g} s warm-up + {args.duration:g} s per phase",
        ]
        return report(phases, pull, local, context, rate=args.rate)
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
    finally:
        server.stop()
        for db in (args.db_name, cpo_db):
            with suppress(Exception):
                pg_execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
