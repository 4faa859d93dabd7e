"""The CPU cost of a delivery: one drain of N rows to one loopback partner, in this process.

Deterministic A/B of the push's own cost (the machine is shared, wall-clock figures are noisy)::

    .venv/bin/python -m bench.drain_cost setup            # database ocpi_bench_drain + a partner
    .venv/bin/python -m bench.drain_cost run --rows 2000 [--profile]   # wall time, CPU, cProfile
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=functools_reduce \\
        .venv/bin/python -m bench.drain_cost run --rows 500       # instructions per delivery

``setup`` creates the database with one registered partner (``bench.fanout``'s data set: 10
locations, one partner) and keeps the secrets in ``var/bench/ocpi_bench_drain.json``. ``run``
starts the loopback partner (``bench.fanout``'s asyncio server, another process: not under
valgrind), writes ``--rows`` PATCH rows, warms the client up with one drain of 50, then drains
the rest inside ``functools.reduce`` (what callgrind's ``--toggle-collect`` counts) and prints
the figures. ``--partners K`` spreads the rows over K partners and drains them with one
``deliver_many`` run (the worker's path, partners concurrently).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path

from bench.fanout import OUR_PARTY, Proc
from bench.locations import PYTHON, REPO, free_port, pg_execute, run_checked, server_env

DB_NAME = "ocpi_bench_drain"


def state_path() -> Path:
    return REPO / "var" / "bench" / f"{DB_NAME}.json"


def setup(partners: int) -> None:
    env = server_env(DB_NAME, free_port(), REPO / "var" / "bench" / "drain")
    env["OCPI_PARTIES"] = f"{OUR_PARTY[0]}:{OUR_PARTY[1]}:CPO"
    ports = [free_port() for _ in range(partners)]
    pg_execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    pg_execute(f'CREATE DATABASE "{DB_NAME}"')
    run_checked([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], env, "migrate")
    os.environ.update(env)
    import django

    django.setup()
    from bench.fanout import setup_dataset

    data = setup_dataset(partners, 10, ports, 2024)
    state_path().parent.mkdir(parents=True, exist_ok=True)
    state_path().write_text(json.dumps({"env": env, "data": data, "ports": ports}))
    print(f"{DB_NAME}: {partners} partners on ports {ports[0]}..{ports[-1]}")


def write_rows(partner_ids: list[int], evses: list[str], rows: int) -> None:
    from bench.fanout import status_rows
    from outbox.models import Delivery

    Delivery.objects.bulk_create(status_rows(partner_ids, evses, rows))


def run(rows: int, profile: bool, partners: int, rounds: int = 1) -> None:
    state = json.loads(state_path().read_text())
    os.environ.update(state["env"])
    # One drain sends everything, however slow (under valgrind): no time budget.
    os.environ["OCPI_OUTBOX_DRAIN_SECONDS"] = "3600"
    import django

    django.setup()
    from outbox import services, tasks
    from outbox.models import Delivery, DeliveryState

    ports_file = REPO / "var" / "bench" / "drain-ports.json"
    ports_file.write_text(json.dumps({"ports": state["ports"], "control": free_port()}))
    log = REPO / "var" / "bench" / "drain-partners.log"
    log.write_text("")
    server = Proc(
        "partners",
        [PYTHON, "-m", "bench.fanout", "--partners-server", str(ports_file)],
        {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"},
        log,
    )
    try:
        server.wait_for(b"partners ready")
        Delivery.objects.all().delete()
        ids = state["data"]["partner_ids"][:partners]
        evses = state["data"]["evses"]
        write_rows(ids, evses, 50 * len(ids))
        for pid in ids:
            services.drain(pid)  # warm: the pooled clients and their connections
        if rounds == 1:
            write_rows(ids, evses, rows)

        def work(total: int, __: int) -> int:
            if rounds > 1:  # small drains: a few rows per partner each time
                write_rows(ids, evses, rows // rounds)
            if len(ids) == 1:
                return total + services.drain(ids[0])
            return total + int(tasks.deliver_many(partner_ids=ids))

        prof = cProfile.Profile() if profile else None
        started, cpu = time.monotonic(), time.process_time()
        if prof is not None:
            prof.enable()
        sent = functools.reduce(work, range(rounds), 0)
        if prof is not None:
            prof.disable()
        seconds, cpu = time.monotonic() - started, time.process_time() - cpu
        left = Delivery.objects.exclude(state=DeliveryState.SENT).count()
        print(
            f"{sent} of {rows} rows sent ({left} not SENT) to {len(ids)} partners in "
            f"{seconds:.2f} s = {sent / max(seconds, 1e-9):,.0f}/s; "
            f"{cpu / max(sent, 1) * 1000:.3f} ms CPU each (this process)"
        )
        if prof is not None:
            out = io.StringIO()
            prof.dump_stats(str(REPO / "var" / "bench" / "drain.prof"))
            stats = pstats.Stats(prof, stream=out)
            stats.sort_stats("cumulative").print_stats(60)
            stats.sort_stats("tottime").print_stats(30)
            print(out.getvalue())
    finally:
        server.stop()
        from django.db import connections

        from journal import recorder

        recorder.flush()
        connections.close_all()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drain_cost", description=__doc__)
    parser.add_argument("what", choices=["setup", "run"])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--partners", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--rounds", type=int, default=1, help="write and drain rows/rounds rows, rounds times"
    )
    args = parser.parse_args(argv)
    if args.what == "setup":
        setup(max(args.partners, 10))
    else:
        run(args.rows, args.profile, args.partners, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
