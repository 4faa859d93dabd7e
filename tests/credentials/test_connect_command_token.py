"""ocpi_connect takes token A from standard input or OCPI_TOKEN_A, so that it stays out of the
shell history and of ps; --token-a VALUE still works (discouraged, and the help says so)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from credentials import tokens
from credentials.management.commands.ocpi_connect import Command
from credentials.models import Partner

pytestmark = pytest.mark.django_db

URL = "https://partner.test/ocpi/versions"


def connect(*args: str, **kwargs) -> dict:
    out = io.StringIO()
    call_command(
        "ocpi_connect", "acme", "--versions-url", URL, "--json", *args, stdout=out, **kwargs
    )
    return json.loads(out.getvalue())


def token_of_acme() -> str | None:
    return tokens.outbound_token(Partner.objects.get(name="acme"))


def test_token_a_from_standard_input(monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.delenv("OCPI_TOKEN_A", raising=False)
    with django_capture_on_commit_callbacks():
        result = connect("--token-a-stdin", stdin=io.StringIO("token-from-stdin\nignored\n"))

    assert result["kind"] == "CONNECT"
    assert token_of_acme() == "token-from-stdin"


def test_token_a_from_standard_input_with_crlf(monkeypatch, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        connect("--token-a-stdin", stdin=io.StringIO("tok-crlf\r\n"))

    assert token_of_acme() == "tok-crlf"


def test_empty_standard_input_is_refused(monkeypatch):
    with pytest.raises(CommandError, match="No token A on standard input"):
        connect("--token-a-stdin", stdin=io.StringIO(""))
    assert not Partner.objects.exists()


def test_token_a_from_the_environment(monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setenv("OCPI_TOKEN_A", "token-from-env")
    with django_capture_on_commit_callbacks():
        connect()

    assert token_of_acme() == "token-from-env"


def test_the_option_still_works_and_wins_over_the_environment(
    monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setenv("OCPI_TOKEN_A", "token-from-env")
    with django_capture_on_commit_callbacks():
        connect("--token-a=token-on-the-command-line")

    assert token_of_acme() == "token-on-the-command-line"


def test_without_any_token_a_the_command_says_where_to_put_it(monkeypatch):
    monkeypatch.delenv("OCPI_TOKEN_A", raising=False)
    with pytest.raises(CommandError, match=r"--token-a-stdin .* OCPI_TOKEN_A"):
        connect()


def test_the_help_recommends_stdin_and_the_environment_and_discourages_the_option():
    text = Command().create_parser("manage.py", "ocpi_connect").format_help()
    flat = " ".join(text.split())

    assert "--token-a-stdin" in flat
    assert "OCPI_TOKEN_A" in flat
    assert "Discouraged: visible in the shell history and in ps" in flat
