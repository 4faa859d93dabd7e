"""scripts/run.sh stops everything it started: on SIGTERM to its process group, even twice (make
passes the signal on), gracefully; on a second Ctrl-C in a terminal, at once (SIGKILL); when one
of its processes dies. In each case it exits only when no process it started runs any more.

Runs the real script (embedded setup: SQLite and the filesystem broker in a temporary data
folder, a free loopback port). Every process it starts inherits a marker variable, found in
/proc/<pid>/environ. Never installs anything: skipped when the venv's stamp for the runtime
requirements is missing (scripts/bootstrap.sh would run pip).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


TRAMPOLINE = (
    "import fcntl, os, sys, termios; "
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0); "  # the pseudo-terminal becomes the controlling one
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


def script_env(marker: str, port: int, data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "OCPI_LOCK_URL")
        and k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")
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
    return env


def wait_until_up(process: subprocess.Popen[bytes], marker: str, port: int, output) -> None:
    """Until the web server answers and the worker and beat run."""
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


def watch_stop(marker: str, within: float, output) -> float:
    """Poll until no marked process is left, at most `within` s; fail if run.sh exits while a
    process it started still runs. Returns the seconds it took."""
    started = time.monotonic()
    while True:
        running = marked(marker)
        if not running:
            return time.monotonic() - started
        script = [pid for pid, cmd in running.items() if "scripts/run.sh" in cmd]
        started_by_it = {
            pid: cmd
            for pid, cmd in running.items()
            if not cmd.startswith("make") and pid not in script
        }
        assert script or not started_by_it, (
            f"run.sh exited while these still ran: {started_by_it}\n{output()}"
        )
        assert time.monotonic() - started < within, (
            f"still running {within} s after the stop began: {running}\n{output()}"
        )
        time.sleep(0.05)


def kill_marked(marker: str) -> None:
    for pid in marked(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


needs_proc = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
needs_runtime = pytest.mark.skipif(
    not runtime_installed(), reason="the venv would be installed (pip)"
)


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    marker: str
    output: Callable[[], str]


@contextmanager
def run_script(tmp_path: Path) -> Iterator[Started]:
    """scripts/run.sh in its own process group (as under a terminal or make), up and answering;
    whatever is left of it is killed afterwards."""
    marker = f"OCPI_RUN_SH_TEST={uuid.uuid4().hex}"
    port = free_port()
    env = script_env(marker, port, (tmp_path / "data").resolve())
    log = (tmp_path / "run.log").open("wb")
    process = subprocess.Popen(
        [str(REPO / "scripts" / "run.sh")],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def output() -> str:
        log.flush()
        return (tmp_path / "run.log").read_text(errors="replace")[-6000:]

    try:
        wait_until_up(process, marker, port, output)
        yield Started(process, marker, output)
    finally:
        kill_marked(marker)
        if process.poll() is None:
            process.kill()
            process.wait(5)
        log.close()


def exit_code(started: Started) -> int:
    """The script's status: it exits only once everything it started is gone."""
    watch_stop(started.marker, STOP_WITHIN, started.output)
    try:
        return started.process.wait(5)
    except subprocess.TimeoutExpired:
        pytest.fail(f"run.sh still runs with nothing left to stop\n{started.output()}")


@needs_proc
@needs_runtime
def test_sigterm_twice_to_the_process_group_stops_every_process(tmp_path):
    with run_script(tmp_path) as started:
        # A terminal or service manager signals the group; make passes the signal on at once.
        os.killpg(started.process.pid, signal.SIGTERM)
        time.sleep(0.001)  # lands while the script handles the first one (two would merge)
        os.killpg(started.process.pid, signal.SIGTERM)

        assert exit_code(started) == 143, started.output()
        # The second SIGTERM came with the first (make passing it on): a graceful stop.
        assert "Killing at once." not in started.output()


@needs_proc
@needs_runtime
@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_ctrl_c_twice_under_a_terminal_kills_every_process_at_once(tmp_path):
    """`make run` in a terminal: Ctrl-C, and again 0.5 s later. The second one reaches the
    script (not a command it runs in the foreground), which kills everything and only then
    exits."""
    marker = f"OCPI_RUN_SH_TEST={uuid.uuid4().hex}"
    port = free_port()
    env = script_env(marker, port, (tmp_path / "data").resolve())
    master, slave = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-c", TRAMPOLINE, "make", "run"],
        cwd=REPO,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,  # a session of its own, led by make, on the pseudo-terminal
    )
    os.close(slave)
    received = bytearray()

    def read_terminal() -> None:  # drained, or the processes would block writing to it
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: no process has the terminal open any more
                return
            if not data:
                return
            received.extend(data)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()

    def output() -> str:
        return bytes(received).decode(errors="replace")[-6000:]

    try:
        wait_until_up(process, marker, port, output)

        os.write(master, b"\x03")
        time.sleep(0.5)
        os.write(master, b"\x03")

        took = watch_stop(marker, 10.0, output)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            pytest.fail(f"make still runs with nothing left to stop\n{output()}")
        reader.join(5)
        assert "Killing at once." in output(), output()
        assert "Error 130" in output(), output()  # make reports run.sh's status
        assert took < 10.0
    finally:
        kill_marked(marker)
        if process.poll() is None:
            process.kill()
            process.wait(5)
        os.close(master)


@needs_proc
@needs_runtime
def test_when_one_process_dies_the_others_are_stopped(tmp_path):
    with run_script(tmp_path) as started:
        beat = [pid for pid, cmd in marked(started.marker).items() if " beat " in cmd]
        assert len(beat) == 1, marked(started.marker)
        os.kill(beat[0], signal.SIGKILL)

        assert exit_code(started) == 128 + signal.SIGKILL, started.output()
        assert "The beat process exited (status 137); stopping the others." in started.output()
