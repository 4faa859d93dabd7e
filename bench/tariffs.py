"""Benchmark of the tariffs sender list (the kit's sender) against its precomputed-bytes ceiling.

Run from the repository root::

    .venv/bin/python -m bench.tariffs [--tariffs N] [--duration S] [--concurrency C] [...]

Like ``bench.locations`` (whose server, client, load phases and options it uses; see there):
a fresh PostgreSQL database, N of our own tariffs (NL/BEN) made from the spec's example tariffs
and stored through ``kit.services.put`` (the real write path), last_updated spread over a year;
gunicorn as ``make web``; then, each after a warm-up, ``/bench/ceiling/tariffs`` (the same
server returning a precomputed page of 50 tariffs) and the sender list ``limit=50`` at random
offsets, a quarter with a random ``date_from``; every response checked. Prints requests/s,
p50/p99 and the list's ratio to the ceiling, PASS when it is at least 50 %.

Exit status: 0 valid and on target, 1 invalid (errors, setup failed), 2 below target, 130
interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.locations import (
    LIST_TARGET,
    PAGE,
    PYTHON,
    REPO,
    Load,
    Phase,
    Request,
    Server,
    free_port,
    percentile,
    pg_execute,
    run_checked,
    server_env,
)

OUR_PARTY = ("NL", "BEN")
EXAMPLES = sorted(
    p
    for p in (REPO / "tests" / "fixtures" / "ocpi").glob("tariff_*.json")
    if p.name != "tariff_put_example.json"
)


def _put_tariffs(indexes: range, seed: int, now: datetime) -> None:
    from django.db import connection

    from kit import services, spec_of
    from kit.spec import ObjectKey

    spec = spec_of("tariffs")
    examples = [json.loads(p.read_text()) for p in EXAMPLES]
    try:
        for index in indexes:
            rng = random.Random(f"{seed}/{index}")
            data = dict(examples[index % len(examples)])
            stamp = now - timedelta(seconds=rng.randrange(365 * 86400))
            data.update(
                country_code=OUR_PARTY[0],
                party_id=OUR_PARTY[1],
                id=f"TAR{index:06d}",
                last_updated=stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            key = ObjectKey(*OUR_PARTY, data["id"])
            services.put(spec, key, data, owner=None, keep_timestamp=True)
    finally:
        connection.close()


def setup_dataset(out: Path, tariffs: int, seed: int) -> None:
    import multiprocessing

    import django

    django.setup()
    from django.db import connection

    from ocpi_platform.ocpi.types import format_datetime
    from tariffs.models import Tariff

    started = time.monotonic()
    emsp_token = _emsp_token()
    now = datetime.now(UTC).replace(microsecond=0)
    jobs = max(1, os.cpu_count() or 1)
    connection.close()
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        pool.starmap(_put_tariffs, [(range(k, tariffs, jobs), seed, now) for k in range(jobs)])
    rng = random.Random(seed)
    stamps = sorted(Tariff.objects.ours().values_list("last_updated", flat=True))
    date_from: list[tuple[str, int]] = []
    for _ in range(200):
        moment = stamps[rng.randrange(0, max(1, len(stamps) - PAGE))]
        date_from.append(
            (format_datetime(moment), len(stamps) - bisect.bisect_left(stamps, moment))
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        cursor.execute("SELECT avg(length(ocpi_json)) FROM tariffs_tariff WHERE partner_id IS NULL")
        avg_json = float(cursor.fetchone()[0] or 0)
    out.write_text(
        json.dumps(
            {
                "tariffs": Tariff.objects.ours().count(),
                "avg_json": avg_json,
                "emsp_token": emsp_token,
                "cpo_token": emsp_token,
                "date_from": date_from,
                "seconds": time.monotonic() - started,
            }
        )
    )


def _emsp_token() -> str:
    import secrets

    from credentials import tokens
    from credentials.models import ConnectionStatus, Initiative, Partner, PartnerRole, PartnerState
    from ocpi_platform.ocpi.principal import TokenKind

    row = Partner.objects.create(
        name="bench-emsp",
        state=PartnerState.REGISTERED,
        initiated_by=Initiative.PARTNER,
        versions_url="http://bench-emsp.invalid/ocpi/versions",
        version="2.2.1",
        status=ConnectionStatus.CONNECTED,
    )
    tokens.set_outbound_token(row, secrets.token_urlsafe(32))
    row.save()
    PartnerRole.objects.create(
        partner=row, role="EMSP", country_code="DE", party_id="EMS", business_details={}
    )
    _, token = tokens.issue_inbound_token(row, TokenKind.REGULAR)
    return token


class TariffLoad(Load):
    def __init__(self, args: argparse.Namespace, port: int, data: dict[str, Any]) -> None:
        super().__init__(args, port, {**data, "locations": data["tariffs"]})

    LIST_PATH = "/ocpi/2.2.1/sender/tariffs"
    CEILING_PATH = "/bench/ceiling/tariffs"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.tariffs", description=__doc__)
    parser.add_argument("--tariffs", type=int, default=10_000, help="own tariffs (10000)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per phase (15)")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per phase (3)")
    parser.add_argument("--concurrency", type=int, default=16, help="connections (16)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (4)")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--reconnect", type=float, default=1.0, help="renew connections (1 s)")
    parser.add_argument("--db-name", default="ocpi_bench_tariffs")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--setup-into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tariffs < PAGE:
        parser.error(f"needs --tariffs >= {PAGE}")
    args.cores = os.cpu_count() or 1
    return args


def report(phases: dict[str, Phase]) -> int:
    ceiling, listing = phases["ceiling"], phases["list"]
    ratio = listing.rate / ceiling.rate if ceiling.rate else 0.0
    print(f"\n{'':<34}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'CPU gunicorn':>14}")
    for label, phase in (
        ("ceiling (precomputed page of 50)", ceiling),
        ("tariffs list, 50", listing),
    ):
        values = phase.latencies()
        print(
            f"{label:<34}{phase.rate:>8,.0f}{percentile(values, 0.5) * 1000:>9.1f}"
            f"{percentile(values, 0.99) * 1000:>9.1f}{len(phase.errors):>8}"
            f"{phase.cpu.get('gunicorn', 0):>14.2f}"
        )
    errors = [e for p in phases.values() for e in p.errors]
    if errors:
        print(f"INVALID RUN: {len(errors)} failed responses, e.g. {errors[:3]}")
        return 1
    ok = ratio >= LIST_TARGET
    print(f"\nTariffs sender list at {ratio:.0%} of the ceiling (target 50 %): "
          f"{'PASS' if ok else 'FAIL'}.")  # fmt: skip
    return 0 if ok else 2


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.setup_into is not None:
        setup_dataset(args.setup_into, args.tariffs, args.seed)
        return 0

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)  # ends like Ctrl-C: the database is dropped
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="ocpi-bench-tariffs-"))
    env = server_env(args.db_name, port, workdir)
    server = Server(env, port, args.workers, args.threads, workdir / "gunicorn.log")
    try:
        pg_execute(f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')
        pg_execute(f'CREATE DATABASE "{args.db_name}"')
        run_checked([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], env, "migrate")
        out = workdir / "dataset.json"
        print(f"Data set: {args.tariffs:,} tariffs through kit.services.put", flush=True)
        argv_setup = [PYTHON, "-m", "bench.tariffs", "--setup-into", str(out)]
        run_checked([*argv_setup, "--tariffs", str(args.tariffs), "--seed", str(args.seed)],
                    env, "data set setup")  # fmt: skip
        data: dict[str, Any] = json.loads(out.read_text())
        print(
            f"  {data['tariffs']:,} tariffs, avg. {data['avg_json']:,.0f} bytes of JSON, "
            f"filled in {data['seconds']:.0f} s; gunicorn {args.workers} x {args.threads}",
            flush=True,
        )
        server.start()
        load = TariffLoad(args, port, data)
        phases: dict[str, Phase] = {}
        plan: list[tuple[str, Callable[[int], Iterator[Request]]]] = [
            ("ceiling", load.ceiling),
            ("list", load.sender_list),
        ]
        for name, requests in plan:
            print(f"- {name}: {args.warmup:g} s warm-up + {args.duration:g} s ...", flush=True)
            phases[name] = asyncio.run(load.run(name, requests, server))
        return report(phases)
    except KeyboardInterrupt:
        return 130
    finally:
        server.stop()
        with suppress(Exception):
            pg_execute(f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
