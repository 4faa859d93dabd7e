"""scripts/run.sh stops everything it started when its process group gets SIGTERM, even twice
(make forwards the signal once more): 30 s later no process of the platform runs.

Runs the real script (embedded setup: SQLite and the filesystem broker in a temporary data
folder, a free loopback port). Every process it starts inherits a marker variable, found in
/proc/<pid>/environ. Never installs anything: skipped when the venv's stamp for the runtime
requirements is missing (scripts/bootstrap.sh would run pip).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 90.0
STOP_WITHIN = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def marked(marker: str) -> dict[int, str]:
    """pid -> command line of every process whose environment carries the marker."""
    needle = marker.encode()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes():
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":  # a zombie runs nothing
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        found[int(entry.name)] = cmdline.strip()
    return found


def runtime_installed() -> bool:
    digest = hashlib.sha256((REPO / "requirements.txt").read_bytes()).hexdigest()[:16]
    return (REPO / ".venv" / f".installed-run-{digest}").exists()


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
@pytest.mark.skipif(not runtime_installed(), reason="the venv would be installed (pip)")
def test_sigterm_twice_to_the_process_group_stops_every_process(tmp_path):
    marker = f"OCPI_RUN_SH_TEST={uuid.uuid4().hex}"
    port = free_port()
    data_dir = (tmp_path / "data").resolve()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "OCPI_LOCK_URL")
        and not k.startswith(("DJANGO_", "PYTEST", "OCPI_"))
    }
    name, value = marker.split("=", 1)
    env.update(
        {
            name: value,
            "OCPI_IGNORE_DOTENV": "1",
            "OCPI_DATA_DIR": str(data_dir),
            "PORT": str(port),
            "OCPI_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "OCPI_PARTIES": "NL:RUN:CPO",
        }
    )
    log = (tmp_path / "run.log").open("wb")
    process = subprocess.Popen(
        [str(REPO / "scripts" / "run.sh")],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as under a terminal or make
    )

    def output() -> str:
        log.flush()
        return (tmp_path / "run.log").read_text(errors="replace")[-6000:]

    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, f"run.sh exited early\n{output()}"
            assert time.monotonic() < deadline, f"not up within {START_TIMEOUT} s\n{output()}"
            running = " ".join(marked(marker).values())
            try:
                web_up = httpx.get(f"http://127.0.0.1:{port}/ocpi/versions", timeout=2).status_code
            except httpx.HTTPError:
                web_up = 0
            if web_up and " worker " in running and " beat " in running:
                break
            time.sleep(0.5)
        time.sleep(1.0)  # beat and the worker past their start-up

        # A terminal or service manager signals the group; make passes the signal on at once.
        stopped_at = time.monotonic()
        os.killpg(process.pid, signal.SIGTERM)
        time.sleep(0.001)  # lands while the script handles the first one (two would merge)
        os.killpg(process.pid, signal.SIGTERM)

        # The script exits only once everything it started is gone, and within the time.
        try:
            code = process.wait(STOP_WITHIN)
        except subprocess.TimeoutExpired:
            pytest.fail(f"run.sh still runs {STOP_WITHIN} s after SIGTERM\n{output()}")
        time.sleep(0.5)  # what exited with it is reaped by now
        left = marked(marker)
        assert left == {}, f"left running when run.sh exited: {left}\n{output()}"
        assert code == 143, output()
        assert time.monotonic() - stopped_at < STOP_WITHIN
    finally:
        for pid in marked(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
            process.wait(5)
        log.close()
