"""End-to-end: two operators run the platform and connect their instances over real HTTP.

Instance A hosts NL/AAA CPO, instance B hosts DE/BBB EMSP. On A the partner is called "B", on B
it is called "A". Every test starts with no partner on either side (see ``conftest.fresh``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from .harness import Instance, Pair, free_port

pytestmark = pytest.mark.e2e

PARTIES = {
    "A": [{"role": "CPO", "country_code": "NL", "party_id": "AAA"}],
    "B": [{"role": "EMSP", "country_code": "DE", "party_id": "BBB"}],
}
GRACE = timedelta(seconds=2)  # OCPI_TOKEN_GRACE_SECONDS of both instances


# --- helpers ------------------------------------------------------------------------------------


def invite(inviter: Instance, joiner: Instance) -> dict[str, Any]:
    invitation = inviter.manage_json("ocpi_invite", joiner.name)
    assert invitation["name"] == joiner.name
    assert invitation["versions_url"] == inviter.versions_url
    assert 0 < len(invitation["token_a"]) <= 64
    return invitation


def connect(
    joiner: Instance, inviter_name: str, versions_url: str, token_a: str, *, ok: bool = True
) -> Any:
    return joiner.manage_json(
        "ocpi_connect", inviter_name,
        "--versions-url", versions_url, f"--token-a={token_a}", "--wait",
        ok=ok,
    )  # fmt: skip


def register(inviter: Instance, joiner: Instance) -> dict[str, Any]:
    """The inviter issues token A, the joiner registers with it; both end up REGISTERED."""
    invitation = invite(inviter, joiner)
    job = connect(joiner, inviter.name, invitation["versions_url"], invitation["token_a"])
    assert job["kind"] == "CONNECT"
    assert job["state"] == "SUCCEEDED", job
    assert job["partner"]["state"] == "REGISTERED", job
    return invitation


def assert_registered(viewer: Instance, other: Instance, *, initiated_by: str) -> dict[str, Any]:
    """``ocpi_partners`` of ``viewer`` shows ``other`` registered, with its roles and endpoints."""
    partner = viewer.partners()[other.name]
    context = f"{viewer.name} sees {partner}"
    assert partner["state"] == "REGISTERED", context
    assert partner["status"] == "CONNECTED", context
    assert partner["version"] == "2.2.1", context
    assert partner["initiated_by"] == initiated_by, context
    assert partner["roles"] == PARTIES[other.name], context
    assert partner["versions_url"] == other.versions_url, context
    assert partner["failure_reason"] is None, context
    assert partner["registered_at"], context
    assert {
        "identifier": "credentials",
        "role": "SENDER",
        "url": other.credentials_url,
    } in partner["endpoints"], context
    return partner


# A web process reuses a resolved token for OCPI_AUTH_CACHE_SECONDS (2 s by default): a token
# revoked by another process is refused there within that time.
AUTH_CACHE_SECONDS = 2.0


def assert_refused_soon(call: Callable[[], httpx.Response]) -> None:
    """The token is refused (401) at the latest once the other processes' caches expired."""
    deadline = time.monotonic() + AUTH_CACHE_SECONDS + 1.0
    response = call()
    while response.status_code != 401 and time.monotonic() < deadline:
        time.sleep(0.2)
        response = call()
    assert_unauthorized(response)


def assert_unauthorized(response: httpx.Response) -> None:
    """HTTP 401 with an OCPI envelope (status_code 2xxx and a timestamp)."""
    assert response.status_code == 401, (response.status_code, response.text)
    body = response.json()
    assert isinstance(body["status_code"], int), body
    assert 2000 <= body["status_code"] < 3000, body
    assert body["timestamp"].endswith("Z"), body
    assert body.get("status_message"), body
    assert "data" not in body or body["data"] is None, body


def assert_ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, (response.status_code, response.text)
    body = response.json()
    assert body["status_code"] == 1000, body
    assert body["timestamp"].endswith("Z"), body
    return body


def assert_talk(a: Instance, b: Instance) -> None:
    """Each side reaches the other with its current token (credentials GET both ways)."""
    for caller, callee in ((a, b), (b, a)):
        token = caller.outbound_token(callee.name)
        assert token, f"{caller.name} holds no token for {callee.name}"
        body = assert_ok(callee.get(callee.credentials_url, token))
        assert body["data"]["token"] == token
        assert body["data"]["url"] == callee.versions_url
        roles = [
            {k: r[k] for k in ("role", "country_code", "party_id")} for r in body["data"]["roles"]
        ]
        assert roles == PARTIES[callee.name]


def refresh_ok(instance: Instance, partner: str) -> None:
    job = instance.manage_json("ocpi_refresh", partner, "--wait")
    assert job["state"] == "SUCCEEDED", job
    assert job["partner"]["state"] == "REGISTERED", job


def event_kinds(instance: Instance, partner: str) -> list[str]:
    return [e["kind"] for e in instance.events(partner)]


# --- 1 and 2: registration in both directions -------------------------------------------------


@pytest.mark.parametrize("direction", ["A-invites-B", "B-invites-A"])
def test_invite_then_register(fresh: Pair, direction: str) -> None:
    inviter, joiner = (fresh.a, fresh.b) if direction == "A-invites-B" else (fresh.b, fresh.a)

    invitation = invite(inviter, joiner)
    token_a = invitation["token_a"]
    assert inviter.partners()[joiner.name]["state"] == "INVITED"

    # Before registration token A opens the versions list and the version details.
    ids = {"X-Request-ID": "e2e-request-1", "X-Correlation-ID": "e2e-correlation-1"}
    response = inviter.get(invitation["versions_url"], token_a, headers=ids)
    body = assert_ok(response)
    assert body["data"] == [{"version": "2.2.1", "url": inviter.details_url}]
    assert response.headers["X-Request-ID"] == "e2e-request-1"
    assert response.headers["X-Correlation-ID"] == "e2e-correlation-1"
    body = assert_ok(inviter.get(inviter.details_url, token_a))
    assert body["data"]["version"] == "2.2.1"
    assert {
        "identifier": "credentials",
        "role": "SENDER",
        "url": inviter.credentials_url,
    } in body["data"]["endpoints"]

    # Without a token: 401 in an envelope; request and correlation ids are made up when absent.
    response = inviter.get("/ocpi/versions")
    assert_unauthorized(response)
    assert response.headers["X-Request-ID"]
    assert response.headers["X-Correlation-ID"]

    job = connect(joiner, inviter.name, invitation["versions_url"], token_a)
    assert job["state"] == "SUCCEEDED", job
    assert job["message"], job

    assert_registered(inviter, joiner, initiated_by="PARTNER")
    assert_registered(joiner, inviter, initiated_by="US")

    # Token A is spent: 401 with an envelope (ids echoed on errors too).
    response = inviter.get(inviter.versions_url, token_a, headers=ids)
    assert_unauthorized(response)
    assert response.headers["X-Request-ID"] == "e2e-request-1"
    assert response.headers["X-Correlation-ID"] == "e2e-correlation-1"
    assert not inviter.active_inbound_tokens(joiner.name, kind="A")

    # The tokens exchanged at registration work both ways.
    assert_talk(inviter, joiner)
    assert len(inviter.active_inbound_tokens(joiner.name, kind="C")) == 1
    assert len(joiner.active_inbound_tokens(inviter.name, kind="C")) == 1
    assert "registered" in event_kinds(inviter, joiner.name)
    assert "registered" in event_kinds(joiner, inviter.name)


# --- 3: rotation ----------------------------------------------------------------------------


def test_rotate_from_either_side(fresh: Pair) -> None:
    a, b = fresh.a, fresh.b
    register(a, b)
    replaced: list[tuple[Instance, str]] = []  # (where the token is presented, token)

    for rotator, other in ((b, a), (a, b)):
        old_to_other = rotator.outbound_token(other.name)
        old_to_rotator = other.outbound_token(rotator.name)

        started = datetime.now(UTC)
        job = rotator.manage_json("ocpi_rotate", other.name, "--wait")
        # The replaced tokens are presented at once: accepted until their grace period ends.
        presented = []
        for where, token in ((other, old_to_other), (rotator, old_to_rotator)):
            sent = datetime.now(UTC)
            response = where.get(where.versions_url, token)
            presented.append((where, token, sent, response, datetime.now(UTC)))
        assert job["kind"] == "ROTATE", job
        assert job["state"] == "SUCCEEDED", job
        assert job["partner"]["state"] == "REGISTERED", job

        # Both tokens were replaced, and the new ones work at once.
        new_to_other = rotator.outbound_token(other.name)
        new_to_rotator = other.outbound_token(rotator.name)
        assert new_to_other not in (None, old_to_other)
        assert new_to_rotator not in (None, old_to_rotator)
        assert_ok(other.get(other.versions_url, new_to_other))
        assert_ok(rotator.get(rotator.versions_url, new_to_rotator))
        assert_talk(a, b)

        # The replaced tokens got a grace period of 2 s (not revoked), and were accepted
        # during it: answered before it ended, a request must succeed; sent after it ended, it
        # must be refused (on a loaded machine one may be sent in time and answered late).
        for where, token, sent, response, answered in presented:
            row = where.inbound_token_row(token)
            assert row is not None
            assert row["revoked_at"] is None, row
            assert row["expires_at"] is not None, row
            assert started + GRACE <= row["expires_at"] <= sent + GRACE, (started, sent, row)
            if answered < row["expires_at"]:
                assert_ok(response)
            elif sent > row["expires_at"]:
                assert_unauthorized(response)
            else:
                assert response.status_code in (200, 401), response.text
            replaced.append((where, token))

        assert "rotated" in event_kinds(rotator, other.name)
        assert "rotated" in event_kinds(other, rotator.name)

        # Both sides still talk: refresh calls the other's versions and details.
        refresh_ok(a, "B")
        refresh_ok(b, "A")

    # After the grace period exactly one regular token is accepted on each side.
    time.sleep(GRACE.total_seconds() + 0.3)
    assert len(a.active_inbound_tokens("B", kind="C")) == 1
    assert len(b.active_inbound_tokens("A", kind="C")) == 1
    for where, token in replaced:
        assert_unauthorized(where.get(where.versions_url, token))
    assert_talk(a, b)
    refresh_ok(a, "B")
    refresh_ok(b, "A")
    assert_registered(a, b, initiated_by="PARTNER")
    assert_registered(b, a, initiated_by="US")


# --- 4: unregistering ---------------------------------------------------------------------------


def test_unregister(fresh: Pair) -> None:
    a, b = fresh.a, fresh.b
    register(a, b)
    a_to_b, b_to_a = a.outbound_token("B"), b.outbound_token("A")
    assert a_to_b
    assert b_to_a
    assert_ok(b.get(b.versions_url, a_to_b))
    assert_ok(a.get(a.versions_url, b_to_a))

    job = a.manage_json("ocpi_unregister", "B", "--wait")
    assert job["kind"] == "UNREGISTER", job
    assert job["state"] == "SUCCEEDED", job

    for viewer, other in ((a, "B"), (b, "A")):
        partner = viewer.partners()[other]
        assert partner["state"] == "UNREGISTERED", (viewer.name, partner)
        assert partner["status"] == "OFFLINE", (viewer.name, partner)
        assert partner["roles"] == [], (viewer.name, partner)
        assert viewer.outbound_token(other) is None
        assert not viewer.active_inbound_tokens(other)
        assert "unregistered" in event_kinds(viewer, other)

    # The old tokens are refused, on every endpoint (by every web process within the cache time).
    assert_refused_soon(lambda: b.get(b.versions_url, a_to_b))
    assert_refused_soon(lambda: b.get(b.credentials_url, a_to_b))
    assert_refused_soon(lambda: a.get(a.versions_url, b_to_a))
    assert_refused_soon(lambda: a.get(a.credentials_url, b_to_a))

    # Operations need a registered partner.
    for instance, other, command in (
        (a, "B", "ocpi_refresh"),
        (b, "A", "ocpi_refresh"),
        (b, "A", "ocpi_rotate"),
    ):
        result = instance.manage_fails(command, other, "--wait")
        assert "not registered" in result.stderr, instance.describe(result)

    # The parties are free again: the pair registers anew, the other way round, same names.
    register(b, a)
    assert_registered(b, a, initiated_by="PARTNER")
    assert_registered(a, b, initiated_by="US")
    assert_talk(a, b)


# --- 5: failures --------------------------------------------------------------------------------


def test_connect_failures_and_reinvite(fresh: Pair) -> None:
    a, b = fresh.a, fresh.b

    # Nobody listens at the versions URL: the connect fails and says why.
    closed = f"http://127.0.0.1:{free_port()}/ocpi/versions"
    job = connect(a, "X", closed, "abc", ok=False)
    assert job["state"] == "FAILED", job
    assert "versions" in job["message"], job
    assert closed in job["message"], job
    partner = a.partners()["X"]
    assert partner["state"] == "FAILED", partner
    assert "versions" in partner["failure_reason"], partner
    assert closed in partner["failure_reason"], partner
    result = a.manage_fails(
        "ocpi_connect", "X", "--versions-url", closed, "--token-a", "abc", "--wait"
    )
    assert "versions" in result.stderr, a.describe(result)

    # A live platform that does not know the token: HTTP 401 is reported.
    invitation = invite(a, b)
    job = connect(b, "A", a.versions_url, "not-the-token-a", ok=False)
    assert job["state"] == "FAILED", job
    assert "HTTP 401" in job["message"], job
    assert "HTTP 401" in b.partners()["A"]["failure_reason"]
    assert a.partners()["B"]["state"] == "INVITED"

    # A registration that fails on the inviter's side (its call back to the partner fails)...
    offer = {
        "token": "a-token-b-nobody-will-accept",
        "url": closed,
        "roles": [
            {
                "role": "EMSP",
                "country_code": "DE",
                "party_id": "BBB",
                "business_details": {"name": "Beta Mobility"},
            }
        ],
    }
    response = a.post(a.credentials_url, invitation["token_a"], offer)
    assert response.status_code == 200, response.text
    assert response.json()["status_code"] == 3001, response.text
    partner = a.partners()["B"]
    assert partner["state"] == "FAILED", partner
    assert "versions" in partner["failure_reason"], partner
    # ...leaves token A usable for a retry.
    assert_ok(a.get(a.versions_url, invitation["token_a"]))

    # Re-inviting after the failures works: the old token A is revoked, the new one registers.
    again = invite(a, b)
    assert again["token_a"] != invitation["token_a"]
    assert a.partners()["B"]["state"] == "INVITED"
    assert a.partners()["B"]["failure_reason"] is None
    assert_unauthorized(a.get(a.versions_url, invitation["token_a"]))
    job = connect(b, "A", again["versions_url"], again["token_a"])
    assert job["state"] == "SUCCEEDED", job
    assert_registered(a, b, initiated_by="PARTNER")
    assert_registered(b, a, initiated_by="US")
    assert_talk(a, b)

    # A party belongs to one connection: a second invitation on B cannot take NL/AAA CPO
    # (already registered as "A" there); the failed connection "X" on A is reused for it.
    assert a.partners()["X"]["state"] == "FAILED"
    second = b.manage_json("ocpi_invite", "second")
    job = connect(a, "X", second["versions_url"], second["token_a"], ok=False)
    assert job["state"] == "FAILED", job
    assert "already registered" in job["message"], job
    assert b.partners()["second"]["state"] == "INVITED"
    assert_registered(a, b, initiated_by="PARTNER")
    assert_registered(b, a, initiated_by="US")


# --- 6: a partner that goes away and comes back ---------------------------------------------


def test_partner_stopped_and_started(fresh: Pair) -> None:
    a, b = fresh.a, fresh.b
    register(a, b)

    b.stop()
    result = a.manage_fails("ocpi_refresh", "B", "--wait", "--json")
    message = result.stderr.lower()
    assert "connect" in message or "unreachable" in message, a.describe(result)
    assert b.versions_url in result.stderr, a.describe(result)
    # A failed refresh or rotation does not end the connection, nor change the tokens.
    token = a.outbound_token("B")
    result = a.manage_fails("ocpi_rotate", "B", "--wait")
    assert "connect" in result.stderr.lower(), a.describe(result)
    assert a.outbound_token("B") == token
    assert a.partners()["B"]["state"] == "REGISTERED"
    assert "refresh_failed" in event_kinds(a, "B")

    b.start()
    refresh_ok(a, "B")
    refresh_ok(b, "A")
    assert_talk(a, b)
    assert_registered(a, b, initiated_by="PARTNER")
    assert_registered(b, a, initiated_by="US")
