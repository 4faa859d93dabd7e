"""ocpi_connect: a token A of only spaces is refused as empty, not as a token with spaces."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from credentials.models import Partner

pytestmark = pytest.mark.django_db

URL = "https://partner.test/ocpi/versions"


def connect(*args: str, **kwargs) -> None:
    call_command(
        "ocpi_connect", "acme", "--versions-url", URL, "--json", *args, stdout=io.StringIO(),
        **kwargs,
    )  # fmt: skip


@pytest.mark.parametrize("line", ["\n", "   \n", " \t \r\n", "   "])
def test_a_line_of_only_spaces_on_standard_input_is_empty(line):
    with pytest.raises(CommandError, match="the line is empty") as refused:
        connect("--token-a-stdin", stdin=io.StringIO(line))
    assert "spaces" not in str(refused.value)
    assert not Partner.objects.exists()


def test_an_environment_variable_of_only_spaces_is_empty(monkeypatch):
    monkeypatch.setenv("OCPI_TOKEN_A", "   ")
    with pytest.raises(CommandError, match="Token A is empty"):
        connect()
    assert not Partner.objects.exists()
