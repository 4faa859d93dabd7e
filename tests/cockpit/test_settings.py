"""Settings derived from the instance: cookie names, HTTPS hardening, quiet starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def settings_of(**env: str) -> dict[str, object]:
    """The settings of a fresh process with this environment (production settings module)."""
    code = (
        "import json; from django.conf import settings as s; print(json.dumps({k: getattr(s, k)"
        " for k in ('SESSION_COOKIE_NAME', 'CSRF_COOKIE_NAME', 'SECURE_SSL_REDIRECT',"
        " 'SECURE_HSTS_SECONDS', 'CELERY_BROKER_URL', 'SILENCED_SYSTEM_CHECKS')}))"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OCPI_", "DJANGO_"))}
    base.pop("DATABASE_URL", None)
    base.pop("CELERY_BROKER_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={
            **base,
            "DJANGO_SETTINGS_MODULE": "ocpi_platform.settings",
            "OCPI_IGNORE_DOTENV": "1",
            "OCPI_DATA_DIR": "/tmp/cockpit-settings-test",  # noqa: S108
            **env,
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("env", "session", "csrf"),
    [
        ({"PORT": "8001"}, "ocpi_127_0_0_1_8001_sessionid", "ocpi_127_0_0_1_8001_csrftoken"),
        ({"PORT": "8002"}, "ocpi_127_0_0_1_8002_sessionid", "ocpi_127_0_0_1_8002_csrftoken"),
        (
            {"OCPI_PUBLIC_URL": "https://ocpi.example.com"},
            "ocpi_ocpi_example_com_sessionid",
            "ocpi_ocpi_example_com_csrftoken",
        ),
        ({"PORT": "8001", "OCPI_COOKIE_PREFIX": "cpo"}, "cpo_sessionid", "cpo_csrftoken"),
    ],
)
def test_cookie_names_differ_per_instance(env, session, csrf):
    values = settings_of(**env)
    assert (values["SESSION_COOKIE_NAME"], values["CSRF_COOKIE_NAME"]) == (session, csrf)


def test_https_public_url_turns_on_hsts_and_the_redirect():
    secure = settings_of(OCPI_PUBLIC_URL="https://ocpi.example.com")
    assert secure["SECURE_SSL_REDIRECT"] is True
    assert secure["SECURE_HSTS_SECONDS"] == 31_536_000
    plain = settings_of(PORT="8001")
    assert (plain["SECURE_SSL_REDIRECT"], plain["SECURE_HSTS_SECONDS"]) == (False, 0)
    off = settings_of(
        OCPI_PUBLIC_URL="https://ocpi.example.com",
        DJANGO_SECURE_SSL_REDIRECT="0",
        DJANGO_SECURE_HSTS_SECONDS="0",
    )
    assert (off["SECURE_SSL_REDIRECT"], off["SECURE_HSTS_SECONDS"]) == (False, 0)


def test_the_embedded_setup_starts_quietly():
    values = settings_of(PORT="8001")
    assert values["CELERY_BROKER_URL"] == "filesystem://localhost/"  # kombu: a host, no warning
    assert values["SILENCED_SYSTEM_CHECKS"] == ["models.W040"]  # SQLite has no covering index


def test_check_deploy_has_no_hsts_or_ssl_redirect_warning():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCPI_", "DJANGO_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        DJANGO_SETTINGS_MODULE="ocpi_platform.settings",
        OCPI_IGNORE_DOTENV="1",
        OCPI_DATA_DIR="/tmp/cockpit-settings-test",  # noqa: S108
        OCPI_PUBLIC_URL="https://ocpi.example.com",
        DJANGO_SECRET_KEY="k3y-" + "".join(chr(65 + i % 26) for i in range(60)),
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    assert "security.W004" not in output  # HSTS
    assert "security.W008" not in output  # SSL redirect
    assert "security.W009" not in output  # the secret key given above is a real one
