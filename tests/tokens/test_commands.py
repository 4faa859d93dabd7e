"""manage.py ocpi_import_tokens and ocpi_authorize."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import httpx
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ocpi_platform.ocpi.client import use_transport
from tests.conftest import RegisteredPartner
from tokens.models import Token

from .conftest import example, partner_token, token_data

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_import_stores_ours_and_reports_the_bad_ones(tmp_path: Path) -> None:
    good = [token_data("T1"), token_data("T2", type="APP_USER")]
    bad = token_data("T3", whitelist="SOMETIMES")
    envelope = {"data": [*good, bad, "text"], "status_code": 1000, "timestamp": "x"}
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(envelope))
    with pytest.raises(CommandError, match="2 of 4"):
        call_command("ocpi_import_tokens", str(path), "--json", stdout=(out := StringIO()))
    summary = json.loads(out.getvalue())
    assert (summary["created"], summary["updated"], summary["failed"]) == (2, 0, 2)
    assert "whitelist" in summary["tokens"][2]["error"]
    stored = Token.objects.ours().order_by("id")
    assert [(t.object_id, t.object_type) for t in stored] == [("T1", "RFID"), ("T2", "APP_USER")]
    assert json.loads(stored[0].ocpi_json) == good[0]  # the file's last_updated is kept


def test_import_of_a_missing_file_fails(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="1 of 1"):
        run("ocpi_import_tokens", str(tmp_path / "nope.json"))


def test_authorize_prints_the_local_decision(emsp: RegisteredPartner) -> None:
    partner_token(emsp, whitelist="ALWAYS")
    text = run("ocpi_authorize", "TOKEN1", "--location", "LOC1", "--evse", "E1")
    assert "allowed: ALLOWED" in text
    assert "source: local copy" in text
    out = StringIO()
    call_command("ocpi_authorize", "TOKEN1", "--json", stdout=out)
    assert json.loads(out.getvalue())["source"] == "local copy"


def test_authorize_asks_the_emsp_and_exits_1_when_not_allowed(emsp: RegisteredPartner) -> None:
    partner_token(emsp, whitelist="NEVER")
    data = {"allowed": "NO_CREDIT", "token": example()}

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": data, "status_code": 1000, "timestamp": "x"})

    out = StringIO()
    with use_transport(httpx.MockTransport(answer)), pytest.raises(SystemExit) as exit_:
        call_command("ocpi_authorize", "TOKEN1", "--json", stdout=out)
    assert exit_.value.code == 1
    result = json.loads(out.getvalue())
    assert (result["source"], result["authorization_info"]["allowed"]) == ("eMSP", "NO_CREDIT")


def test_authorize_checks_its_arguments() -> None:
    with pytest.raises(CommandError, match="--evse needs --location"):
        run("ocpi_authorize", "X", "--evse", "E1")
    with pytest.raises(CommandError, match="COUNTRY/PARTY"):
        run("ocpi_authorize", "X", "--party", "DETNM")
