"""End-to-end: an eMSP (B) shares its tokens with a CPO (A) over real HTTP; A authorizes.

Instance A hosts NL/AAA CPO, instance B hosts DE/BBB EMSP (pages of 5 on B, short outbox
backoff). On A the partner is called "B", on B it is called "A". The tests run in order on one
pair, each starting where the previous ended:

1. B imports 12 tokens (every third whitelisted NEVER), then the two register: the
   registration pushes them all to A (PUT), unchanged.
2. A loses its copies and pulls B's tokens back, all 3 pages.
3. Blocking a token on B reaches A within seconds (a PATCH of ``valid``).
4. A's charge point system authorizes: an ALWAYS token from the local copy, a NEVER token at
   B in real time (with an authorization_reference), the blocked NEVER token is BLOCKED by B.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Spec, _run_pair
from .harness import REPO, Instance, Pair, poll
from .test_locations import register

pytestmark = pytest.mark.e2e

EXAMPLE = REPO / "tests" / "fixtures" / "ocpi" / "token_example_2_full_rfid.json"
CC, PID = "DE", "BBB"  # B's eMSP party
UIDS = [f"UID{n:02d}" for n in range(1, 13)]
NEVER = [uid for n, uid in enumerate(UIDS, 1) if n % 3 == 0]
PAGE_LIMIT = 5
TIMEOUT = 20.0
BACKOFF = "0.5,1,1,2"


@pytest.fixture(scope="module")
def tokens_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    yield from _run_pair(
        tmp_path_factory,
        [
            Spec("A", "NL:AAA:CPO", "Alpha Charging", 5, {"OCPI_OUTBOX_BACKOFF": BACKOFF}),
            Spec(
                "B",
                "DE:BBB:EMSP",
                "Beta Mobility",
                6,
                {"OCPI_OUTBOX_BACKOFF": BACKOFF, "OCPI_PAGE_LIMIT": str(PAGE_LIMIT)},
            ),
        ],
    )


def own_token(uid: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EXAMPLE.read_text())
    data.update(
        country_code=CC,
        party_id=PID,
        uid=uid,
        contract_id=f"DE8ACC{uid}",
        whitelist="NEVER" if uid in NEVER else "ALWAYS",
    )
    return data


def own_documents(b: Instance) -> dict[str, dict[str, Any]]:
    rows = b.query(
        "SELECT object_id, ocpi_json FROM tokens_token WHERE partner_id IS NULL ORDER BY id"
    )
    return {r["object_id"]: json.loads(r["ocpi_json"]) for r in rows}


def copies(a: Instance) -> dict[str, dict[str, Any]]:
    rows = a.query(
        "SELECT t.object_id, t.ocpi_json FROM tokens_token t "
        "JOIN credentials_partner p ON p.id = t.partner_id WHERE p.name = 'B' ORDER BY t.id"
    )
    return {r["object_id"]: json.loads(r["ocpi_json"]) for r in rows}


def in_sync(a: Instance, b: Instance) -> bool:
    return copies(a) == own_documents(b)


def test_registration_pushes_every_token(tokens_pair: Pair) -> None:
    a, b = tokens_pair.a, tokens_pair.b
    path = Path(b.dir) / "tokens.json"
    path.write_text(json.dumps([own_token(uid) for uid in UIDS]))
    result = b.manage_json("ocpi_import_tokens", str(path))
    assert (result["created"], result["failed"]) == (12, 0), result
    assert own_documents(b)["UID01"] == own_token("UID01")  # round-trips, timestamps kept

    register(a, b)  # A invites, B registers with it

    endpoints_of_a = b.partners()["A"]["endpoints"]
    assert {
        "identifier": "tokens",
        "role": "RECEIVER",
        "url": f"{a.base_url}/ocpi/2.2.1/receiver/tokens/",
    } in endpoints_of_a, endpoints_of_a
    poll(lambda: in_sync(a, b), timeout=TIMEOUT, what=lambda: f"A holds {sorted(copies(a))}")

    def deliveries() -> list[dict[str, Any]]:
        return b.query("SELECT method, state FROM outbox_delivery WHERE module = 'tokens'")

    poll(
        lambda: {(d["method"], d["state"]) for d in deliveries()} == {("PUT", "SENT")},
        timeout=TIMEOUT,
        what=lambda: f"every PUT SENT: {deliveries()}",
    )
    assert len(deliveries()) == 12


def test_pull_brings_every_token_back(tokens_pair: Pair) -> None:
    a, b = tokens_pair.a, tokens_pair.b
    a.query("DELETE FROM tokens_token WHERE partner_id IS NOT NULL RETURNING id")
    assert copies(a) == {}
    summary = a.manage_json("ocpi_pull", "tokens", "B", "--full")
    assert summary["state"] == "DONE", summary
    assert (summary["pages"], summary["total"]) == (3, 12), summary
    assert (summary["received"], summary["stored"], summary["rejected"]) == (12, 12, 0), summary
    assert in_sync(a, b)


def test_blocking_reaches_the_cpo_within_seconds(tokens_pair: Pair) -> None:
    a, b = tokens_pair.a, tokens_pair.b
    blocked = NEVER[0]
    started = time.monotonic()
    b.shell(
        "from tokens.models import Token; from tokens.services import set_valid; "
        f"set_valid(Token.objects.ours().get(object_id={blocked!r}), False)"
    )
    poll(
        lambda: copies(a)[blocked]["valid"] is False,
        timeout=10.0,
        what=lambda: f"A's copy of {blocked}: {copies(a)[blocked]}",
    )
    elapsed = time.monotonic() - started
    assert in_sync(a, b)
    (row,) = b.query(
        "SELECT method, body FROM outbox_delivery WHERE module = 'tokens' AND method = 'PATCH'"
    )
    assert set(row["body"]) == {"valid", "last_updated"}, row
    print(f"blocking reached the CPO in {elapsed:.1f} s (including the shell's start)")


def test_the_cpo_authorizes_locally_and_in_real_time(tokens_pair: Pair) -> None:
    a = tokens_pair.a
    local = a.manage_json("ocpi_authorize", "UID01", "--location", "LOC1")
    assert local["source"] == "local copy", local
    assert local["authorization_info"]["allowed"] == "ALLOWED", local

    live_uid = NEVER[1]
    live = a.manage_json("ocpi_authorize", live_uid, "--location", "LOC1", "--evse", "E1")
    assert (live["source"], live["whitelist"]) == ("eMSP", "NEVER"), live
    info = live["authorization_info"]
    assert info["allowed"] == "ALLOWED", live
    assert info["authorization_reference"], live
    assert info["location"] == {"location_id": "LOC1", "evse_uids": ["E1"]}, live
    assert info["token"]["uid"] == live_uid, live

    blocked = a.manage_json("ocpi_authorize", NEVER[0], ok=False)
    assert (blocked["source"], blocked["authorization_info"]["allowed"]) == ("eMSP", "BLOCKED")

    unknown = a.manage_json("ocpi_authorize", "NOPE", "--party", f"{CC}/{PID}", ok=False)
    assert (unknown["source"], unknown["authorization_info"]) == ("eMSP", None), unknown
