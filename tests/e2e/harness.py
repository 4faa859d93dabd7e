"""Run one platform instance for the end-to-end tests: its own database, broker, web server and
Celery worker (and, when asked, Celery beat), all as real processes driven through subprocesses
and HTTP.

Nothing here uses the pytest-django test database: every instance gets a fresh PostgreSQL
database (dropped at teardown) and its own Redis database number as Celery broker.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from cryptography.fernet import Fernet
from psycopg import sql
from psycopg.rows import dict_row

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable  # the virtualenv's python (.venv/bin/python)
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_HOST = "127.0.0.1:5432"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
COMMAND_TIMEOUT = 120.0

# What each process logs once it is up (the web server answers HTTP instead).
READY_LINES = {"celery": b" ready.", "beat": b"beat: Starting..."}

# Tables of the credentials app, children first (reset between tests).
CREDENTIALS_TABLES = (
    "credentials_partnerevent",
    "credentials_partnerjob",
    "credentials_inboundtoken",
    "credentials_partnerendpoint",
    "credentials_partnerrole",
    "credentials_partner",
)

# Environment variables passed through from the test runner; everything else is set explicitly
# so that nothing of the pytest process (tests.settings sets DATABASE_URL, ...) leaks in.
PASSTHROUGH_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "USER")


_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now (the OS chooses it).

    Never the same port twice in a session, so two instances cannot be given the same one.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def auth_header(token: str) -> dict[str, str]:
    """OCPI 2.2.1 Authorization header: ``Token base64(token)``."""
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


def poll(
    check: Callable[[], Any],
    *,
    timeout: float,
    what: str | Callable[[], str],
    interval: float = 0.1,
) -> Any:
    """Call ``check`` until it returns something truthy (returned), else fail after ``timeout``.

    ``what`` describes the awaited condition; it may be a callable giving the details of the
    last state (called once, on failure).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what() if callable(what) else what}")
        time.sleep(interval)


def _has_exited(pid: int) -> bool:
    """True when the child exited; it is not reaped, so its pid (and group id) stay reserved."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _stop_group(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the process group of ``proc``, wait, SIGKILL what is left, then reap."""
    if proc.returncode is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while not _has_exited(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    # The leader is a zombie at worst (not reaped): its group id cannot have been reused yet.
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=timeout)


def _tail(path: Path, lines: int = 40, since: int = 0) -> str:
    if not path.exists():
        return f"({path.name}: no log)"
    data = path.read_bytes()[since:]
    text = data.decode("utf-8", "replace").splitlines()[-lines:]
    return f"--- {path.name} (last {len(text)} lines) ---\n" + "\n".join(text)


class Instance:
    """One platform as an operator runs it: web server + worker + database + broker.

    With ``beat``, Celery beat runs too (the periodic tasks of settings.CELERY_BEAT_SCHEDULE:
    outbox sweep, partner pings), with the database scheduler as configured; it starts and stops
    with the instance like the other processes.
    """

    def __init__(
        self,
        name: str,
        *,
        parties: str,
        business_name: str,
        redis_db: int,
        workdir: Path,
        env: Mapping[str, str] | None = None,
        beat: bool = False,
    ) -> None:
        self.name = name
        self.beat = beat
        self.parties = parties
        self.port = free_port()
        self.db_name = f"ocpi_e2e_{name.lower()}_{secrets.token_hex(4)}"
        self.redis_db = redis_db
        self.dir = workdir
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.hmac_key = secrets.token_urlsafe(32)
        self.fernet_key = Fernet.generate_key().decode()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._log_offsets: dict[str, int] = {}
        self.db_created = False
        self.env = {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}
        self.env.update(
            {
                "PYTHONPATH": str(REPO),
                "PYTHONUNBUFFERED": "1",
                "DJANGO_SETTINGS_MODULE": "ocpi_platform.settings",
                "OCPI_IGNORE_DOTENV": "1",
                "DATABASE_URL": f"postgres://postgres@{PG_HOST}/{self.db_name}",
                "CELERY_BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
                "PORT": str(self.port),
                "OCPI_PUBLIC_URL": self.base_url,
                "OCPI_PARTIES": parties,
                "OCPI_BUSINESS_NAME": business_name,
                "OCPI_DATA_DIR": str(self.data_dir),
                "OCPI_TOKEN_GRACE_SECONDS": "2",
                "OCPI_TOKEN_HMAC_KEY": self.hmac_key,
                "OCPI_TOKEN_ENCRYPTION_KEYS": self.fernet_key,
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
                "LOG_LEVEL": "INFO",
            }
        )
        self.env.update(env or {})  # per-instance settings (OCPI_PAGE_LIMIT, ...)

    def __repr__(self) -> str:
        return f"<Instance {self.name} {self.base_url} db={self.db_name}>"

    # --- addresses ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def versions_url(self) -> str:
        return f"{self.base_url}/ocpi/versions"

    @property
    def details_url(self) -> str:
        return f"{self.base_url}/ocpi/2.2.1"

    @property
    def credentials_url(self) -> str:
        # As our version details advertise it (module endpoint URLs end in '/').
        return f"{self.base_url}/ocpi/2.2.1/credentials/"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@{PG_HOST}/{self.db_name}"

    # --- database and broker -----------------------------------------------------------------

    def create_database(self) -> None:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.db_name)))
        self.db_created = True
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=self.redis_db)
        try:
            client.flushdb()
        finally:
            client.close()

    def drop_database(self) -> None:
        if not self.db_created:
            return
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(self.db_name)
                )
            )
        self.db_created = False
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=self.redis_db)
        try:
            client.flushdb()
        finally:
            client.close()

    def migrate_process(self) -> subprocess.Popen[bytes]:
        """Start ``manage.py migrate`` (several instances migrate in parallel)."""
        log = open(self.dir / "migrate.log", "wb")  # noqa: SIM115
        try:
            return subprocess.Popen(
                [PYTHON, "manage.py", "migrate", "--no-input"],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()

    def check_migrated(self, proc: subprocess.Popen[bytes]) -> None:
        try:
            code = proc.wait(timeout=COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            raise AssertionError(f"{self}: migrate timed out\n{self.logs('migrate')}") from None
        assert code == 0, f"{self}: migrate failed ({code})\n{self.logs('migrate')}"

    def query(self, statement: str, params: Iterable[Any] | Mapping[str, Any] = ()) -> list[dict]:
        """Rows of one SQL statement run on this instance's database."""
        with psycopg.connect(self.dsn, autocommit=True, row_factory=dict_row) as conn:
            cur = conn.execute(statement, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def reset(self) -> None:
        """Forget every partner (a clean slate between tests, as right after migrate).

        The instance runs meanwhile: its background writers (the journal's, the outbox sweep)
        may hold row locks of the tables the CASCADE reaches, and PostgreSQL may pick the
        TRUNCATE as a deadlock's victim. It is tried again then; the instance's writer that
        wins simply commits first."""
        statement = "TRUNCATE " + ", ".join(CREDENTIALS_TABLES) + " CASCADE"
        for attempt in range(5):
            try:
                self.query(statement)
                return
            except psycopg.errors.DeadlockDetected:
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    # --- tokens, as the operator (who holds the keys) can see them -----------------------------

    def outbound_token(self, partner: str) -> str | None:
        """The token this instance presents when it calls ``partner`` (decrypted)."""
        rows = self.query(
            "SELECT outbound_token_encrypted FROM credentials_partner WHERE name = %s", [partner]
        )
        assert rows, f"{self.name} has no partner {partner!r}"
        ciphertext = rows[0]["outbound_token_encrypted"]
        return (
            Fernet(self.fernet_key.encode()).decrypt(ciphertext.encode()).decode()
            if (ciphertext)
            else None
        )

    def inbound_token_row(self, token: str) -> dict | None:
        """The stored row of a token partners present to this instance (found by its HMAC)."""
        digest = hmac.new(self.hmac_key.encode(), token.encode(), hashlib.sha256).hexdigest()
        rows = self.query("SELECT * FROM credentials_inboundtoken WHERE digest = %s", [digest])
        return rows[0] if rows else None

    def active_inbound_tokens(self, partner: str, kind: str | None = None) -> list[dict]:
        """Inbound tokens of ``partner`` that are accepted right now (kind 'A' or 'C')."""
        statement = (
            "SELECT t.* FROM credentials_inboundtoken t JOIN credentials_partner p "
            "ON p.id = t.partner_id WHERE p.name = %s AND t.revoked_at IS NULL "
            "AND (t.expires_at IS NULL OR t.expires_at > now())"
        )
        params: list[Any] = [partner]
        if kind:
            statement += " AND t.kind = %s"
            params.append(kind)
        return self.query(statement + " ORDER BY t.created_at", params)

    def events(self, partner: str) -> list[dict]:
        return self.query(
            "SELECT e.kind, e.message, e.created_at FROM credentials_partnerevent e "
            "JOIN credentials_partner p ON p.id = e.partner_id WHERE p.name = %s "
            "ORDER BY e.created_at, e.id",
            [partner],
        )

    # --- processes ---------------------------------------------------------------------------

    def _spawn(self, kind: str, argv: list[str]) -> None:
        path = self.dir / f"{kind}.log"
        with open(path, "ab") as log:
            self._log_offsets[kind] = log.tell()
            self.procs[kind] = subprocess.Popen(
                argv,
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() signals the whole group
            )

    def spawn(self) -> None:
        """Start the web server, the worker (and beat) without waiting (see ``wait_ready``)."""
        assert not self.running, f"{self} is already running"
        self._spawn(
            "gunicorn",
            [
                PYTHON, "-m", "gunicorn", "ocpi_platform.wsgi",
                "--bind", f"127.0.0.1:{self.port}",
                "--workers", "1", "--threads", "4",
                "--graceful-timeout", "5",
                "--access-logfile", "-",
            ],
        )  # fmt: skip
        self.spawn_worker()
        if self.beat:
            # The DatabaseScheduler of the settings: no schedule file, no pid file.
            self._spawn(
                "beat",
                [PYTHON, "-m", "celery", "-A", "ocpi_platform", "beat", "--loglevel", "INFO"],
            )

    def spawn_worker(self) -> None:
        """Start the Celery worker alone (``spawn`` does it; a test may kill and restart it)."""
        self._spawn(
            "celery",
            [
                PYTHON, "-m", "celery", "-A", "ocpi_platform", "worker",
                "--loglevel", "INFO", "--concurrency", "2",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
                "--hostname", f"e2e-{self.name.lower()}@%h",
            ],
        )  # fmt: skip

    def signal(self, kind: str, signum: int) -> None:
        """Send ``signum`` to the process group of one process (``gunicorn``, ``celery``, ...)."""
        os.killpg(self.procs[kind].pid, signum)

    def kill(self, kind: str) -> None:
        """SIGKILL one process group, as a crash or an OOM kill would, and reap it."""
        proc = self.procs.pop(kind)
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until GET /ocpi/versions answers 401 (no token), the worker logged 'ready.' and beat
        (when it runs) logged 'beat: Starting...'."""
        deadline = time.monotonic() + timeout
        # Process kind -> ready; the web server is ready when it answers.
        ready = dict.fromkeys(self.procs, False)
        while not all(ready.values()):
            for kind, proc in self.procs.items():
                if _has_exited(proc.pid):
                    raise AssertionError(f"{self}: {kind} exited during start\n{self.logs()}")
            for kind in [k for k, done in ready.items() if not done]:
                if kind == "gunicorn":
                    with suppress(httpx.HTTPError):
                        ready[kind] = httpx.get(self.versions_url, timeout=1).status_code == 401
                else:
                    log = (self.dir / f"{kind}.log").read_bytes()[self._log_offsets[kind] :]
                    ready[kind] = READY_LINES[kind] in log
            if time.monotonic() > deadline:
                states = ", ".join(f"{k}={'ready' if v else 'not ready'}" for k, v in ready.items())
                raise AssertionError(f"{self} not ready after {timeout}s ({states})\n{self.logs()}")
            if not all(ready.values()):
                time.sleep(0.1)

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def stop(self) -> None:
        """SIGTERM every process group (web server, worker, beat), wait, SIGKILL what is left."""
        procs, self.procs = self.procs, {}
        for proc in procs.values():
            if proc.returncode is None:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            _stop_group(proc)

    @property
    def running(self) -> bool:
        return bool(self.procs) and not any(_has_exited(p.pid) for p in self.procs.values())

    def logs(self, *kinds: str, lines: int = 40) -> str:
        kinds = kinds or ("gunicorn", "celery", *(("beat",) if self.beat else ()))
        return "\n".join(_tail(self.dir / f"{k}.log", lines) for k in kinds)

    # --- management commands -----------------------------------------------------------------

    def manage(
        self, *args: str, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def describe(self, result: subprocess.CompletedProcess[str]) -> str:
        """Everything needed to understand a failed command: output and the instance's logs."""
        return (
            f"{self.name}$ manage.py {' '.join(result.args[2:])} -> exit {result.returncode}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr[-4000:]}\n"
            f"{self.logs()}"
        )

    def manage_ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.manage(*args)
        assert result.returncode == 0, self.describe(result)
        return result

    def manage_json(self, *args: str, ok: bool = True) -> Any:
        """Run a command with --json and parse its stdout (logs go to stderr)."""
        result = self.manage(*args, "--json")
        if ok:
            assert result.returncode == 0, self.describe(result)
        else:
            assert result.returncode != 0, f"expected a failure\n{self.describe(result)}"
        try:
            return json.loads(result.stdout)
        except ValueError:
            raise AssertionError(f"stdout is not JSON\n{self.describe(result)}") from None

    def manage_fails(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.manage(*args)
        assert result.returncode != 0, f"expected a failure\n{self.describe(result)}"
        return result

    def shell(self, code: str, *, timeout: float = COMMAND_TIMEOUT) -> str:
        """Run Python ``code`` with ``manage.py shell -c`` (the operator's way in); its stdout."""
        result = self.manage("shell", "-c", code, timeout=timeout)
        assert result.returncode == 0, self.describe(result)
        return result.stdout

    def shell_json(self, code: str) -> Any:
        """Run ``code``, which prints one JSON value as its last line of output; that value."""
        stdout = self.shell(code)
        lines = stdout.strip().splitlines()
        try:
            return json.loads(lines[-1])
        except (IndexError, ValueError):
            raise AssertionError(f"{self.name}: no JSON in the output\n{stdout}") from None

    def partners(self) -> dict[str, dict[str, Any]]:
        """``ocpi_partners --json``, by name."""
        return {p["name"]: p for p in self.manage_json("ocpi_partners")}

    # --- HTTP --------------------------------------------------------------------------------

    def get(
        self, path_or_url: str, token: str | None = None, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        url = path_or_url if path_or_url.startswith("http") else self.base_url + path_or_url
        sent = dict(headers or {})
        if token is not None:
            sent.update(auth_header(token))
        return httpx.get(url, headers=sent, timeout=10)

    def post(self, path_or_url: str, token: str, body: Any) -> httpx.Response:
        url = path_or_url if path_or_url.startswith("http") else self.base_url + path_or_url
        return httpx.post(url, headers=auth_header(token), json=body, timeout=30)


@dataclass(frozen=True)
class Pair:
    """Instance A (NL/AAA CPO) and instance B (DE/BBB EMSP)."""

    a: Instance
    b: Instance
