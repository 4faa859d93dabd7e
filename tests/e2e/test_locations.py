"""End-to-end: a CPO (A) shares its locations with an eMSP (B) over real HTTP.

Instance A hosts NL/AAA CPO (outbox backoff 0.5, 1, 1, 2 s; pages of 5), instance B hosts
DE/BBB EMSP. On A the partner is called "B", on B it is called "A". The tests are scenarios that
run in order on one pair (``conftest.locations_pair``), each starting where the previous ended:

1. A imports 12 locations, then the two register: the registration pushes them all to B.
2. B pulls A's locations, all 3 pages.
3. A status change on A reaches B.
4. B goes down; A's changes wait in the outbox, folded, and arrive when B is back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import LOCATIONS_PAGE_LIMIT
from .harness import REPO, Instance, Pair, poll

pytestmark = pytest.mark.e2e

EXAMPLE = REPO / "tests" / "fixtures" / "ocpi" / "location_example.json"
CC, PID = "NL", "AAA"  # A's CPO party
IDS = [f"LOC{n}" for n in range(1, 13)]
RECEIVER = "/ocpi/2.2.1/receiver/locations"
SENDER = "/ocpi/2.2.1/sender/locations"
TIMEOUT = 20.0  # for anything that travels between the instances


# --- helpers ------------------------------------------------------------------------------------


def own_location(location_id: str) -> dict[str, Any]:
    """The spec's example location, as one of A's (same EVSEs 3256 and 3257)."""
    data: dict[str, Any] = json.loads(EXAMPLE.read_text())
    data.update(country_code=CC, party_id=PID, id=location_id, name=f"Gent Zuid {location_id}")
    return data


def import_locations(a: Instance, locations: list[dict[str, Any]], name: str) -> dict[str, Any]:
    path = Path(a.dir) / name
    path.write_text(json.dumps(locations))
    result = a.manage_json("ocpi_import_locations", str(path))
    assert result["created"] == len(locations), result
    assert result["failed"] == 0, result
    return result


def register(inviter: Instance, joiner: Instance) -> None:
    invitation = inviter.manage_json("ocpi_invite", joiner.name)
    job = joiner.manage_json(
        "ocpi_connect", inviter.name,
        "--versions-url", invitation["versions_url"],
        f"--token-a={invitation['token_a']}", "--wait",
    )  # fmt: skip
    assert job["state"] == "SUCCEEDED", job
    assert job["partner"]["state"] == "REGISTERED", job


def own_documents(a: Instance) -> dict[str, dict[str, Any]]:
    """A's own locations as stored (rendered OCPI JSON), by id."""
    rows = a.query(
        "SELECT location_id, ocpi_json FROM locations_location WHERE partner_id IS NULL ORDER BY id"
    )
    return {r["location_id"]: json.loads(r["ocpi_json"]) for r in rows}


def copies(b: Instance, partner: str = "A") -> dict[str, dict[str, Any]]:
    """B's copies of the partner's locations (rendered OCPI JSON), by id."""
    rows = b.query(
        "SELECT l.location_id, l.ocpi_json FROM locations_location l "
        "JOIN credentials_partner p ON p.id = l.partner_id WHERE p.name = %s ORDER BY l.id",
        [partner],
    )
    return {r["location_id"]: json.loads(r["ocpi_json"]) for r in rows if r["ocpi_json"]}


def deliveries(a: Instance, partner: str = "B", *, after: int = 0) -> list[dict[str, Any]]:
    """A's outbox rows for the partner, oldest first."""
    return a.query(
        "SELECT d.id, d.key, d.path, d.method, d.state, d.attempts, d.changes, d.last_error, "
        "d.http_status, d.ocpi_status, d.body FROM outbox_delivery d "
        "JOIN credentials_partner p ON p.id = d.partner_id WHERE p.name = %s AND d.id > %s "
        "ORDER BY d.id",
        [partner, after],
    )


def sync_row(b: Instance, partner: str = "A") -> dict[str, Any] | None:
    rows = b.query(
        "SELECT s.* FROM kit_modulesync s JOIN credentials_partner p "
        "ON p.id = s.partner_id WHERE p.name = %s AND s.module = 'locations'",
        [partner],
    )
    return rows[0] if rows else None


def set_statuses(a: Instance, changes: list[tuple[str, str, str]]) -> None:
    """Status changes of A's EVSEs, (location id, EVSE uid, status), each its own transaction."""
    a.shell(
        "from locations import services\n"
        "from locations.paths import ObjectPath\n"
        f"for location_id, uid, status in {changes!r}:\n"
        f"    services.set_evse_status(ObjectPath({CC!r}, {PID!r}, location_id, uid), status)\n"
    )


def evse(document: dict[str, Any], uid: str) -> dict[str, Any]:
    return next(e for e in document["evses"] if e["uid"] == uid)


def in_sync(a: Instance, b: Instance) -> bool:
    """B holds exactly A's locations, each equal to A's document."""
    return copies(b) == own_documents(a)


def difference(a: Instance, b: Instance) -> str:
    ours, theirs = own_documents(a), copies(b)
    missing = sorted(set(ours) - set(theirs))
    differ = {
        k: {"A": ours[k], "B": theirs[k]}
        for k in sorted(set(ours) & set(theirs))
        if ours[k] != theirs[k]
    }
    return (
        f"B lacks {missing}, holds extra {sorted(set(theirs) - set(ours))}, differs on "
        f"{json.dumps(differ)[:3000]}\nA's outbox: {deliveries(a)[-5:]}\n{a.logs(lines=15)}"
        f"\n{b.logs(lines=15)}"
    )


def ok_data(response: httpx.Response) -> Any:
    assert response.status_code == 200, (response.status_code, response.text)
    body = response.json()
    assert body["status_code"] == 1000, body
    return body["data"]


# --- 1: registration pushes what A has --------------------------------------------------------


def test_registration_pushes_existing_locations(locations_pair: Pair) -> None:
    a, b = locations_pair.a, locations_pair.b
    import_locations(a, [own_location(i) for i in IDS], "locations.json")
    assert sorted(own_documents(a), key=lambda i: int(i[3:])) == IDS
    # The spec example round-trips: A's document is the file's location (timestamps kept).
    expected = own_location("LOC1")
    assert own_documents(a)["LOC1"] == expected
    assert deliveries(a) == []  # nobody to push to yet

    register(b, a)  # B invites, A registers with it

    # The module's endpoints were exchanged: A sends locations, B receives them.
    endpoints_of_a = b.partners()["A"]["endpoints"]
    assert {
        "identifier": "locations",
        "role": "SENDER",
        "url": f"{a.base_url}{SENDER}/",
    } in endpoints_of_a, endpoints_of_a
    endpoints_of_b = a.partners()["B"]["endpoints"]
    assert {
        "identifier": "locations",
        "role": "RECEIVER",
        "url": f"{b.base_url}{RECEIVER}/",
    } in endpoints_of_b, endpoints_of_b

    # The registration hook queues a PUT of each location; they all arrive, unchanged.
    poll(lambda: in_sync(a, b), timeout=TIMEOUT, what=lambda: difference(a, b))
    rows = poll(
        lambda: (
            (r := deliveries(a)) and len(r) == 12 and all(d["state"] == "SENT" for d in r) and r
        ),
        timeout=TIMEOUT,
        what=lambda: f"12 deliveries SENT: {deliveries(a)}",
    )
    assert [d["key"] for d in rows] == [f"{CC}/{PID}/{i}" for i in IDS], rows
    assert {d["method"] for d in rows} == {"PUT"}, rows
    assert {d["http_status"] for d in rows} <= {200, 201}, rows
    assert {d["ocpi_status"] for d in rows} == {1000}, rows
    assert [d["body"] for d in rows] == list(own_documents(a).values())

    # B also pulled A's locations on its own after the registration (the same hook, as eMSP).
    row = poll(
        lambda: (s := sync_row(b)) and s["state"] in ("DONE", "FAILED") and s,
        timeout=TIMEOUT,
        what=lambda: f"B's first pull done: {sync_row(b)}",
    )
    assert row["state"] == "DONE", row
    assert (row["full"], row["pages"], row["received"], row["rejected"]) == (True, 3, 12, 0), row

    # B serves its copies to A (receiver GET, with the token A holds for B).
    token = a.outbound_token("B")
    assert token
    for location_id, document in own_documents(a).items():
        url = f"{RECEIVER}/{CC}/{PID}/{location_id}"
        assert ok_data(b.get(url, token)) == document
    assert (
        ok_data(b.get(f"{RECEIVER}/{CC}/{PID}/LOC1/3256/2", token))
        == expected["evses"][0]["connectors"][1]
    )


# --- 2: B pulls every page ----------------------------------------------------------------------


def test_pull_follows_pages(locations_pair: Pair) -> None:
    a, b = locations_pair.a, locations_pair.b

    # A's sender list, read as B reads it: 3 pages of at most 5, chained by Link headers.
    token = b.outbound_token("A")
    assert token
    url: str | None = f"{a.base_url}{SENDER}"
    pages: list[list[dict[str, Any]]] = []
    while url:
        response = a.get(url, token)
        pages.append(ok_data(response))
        assert response.headers["X-Total-Count"] == "12"
        assert response.headers["X-Limit"] == str(LOCATIONS_PAGE_LIMIT)
        link = response.headers.get("Link")
        url = link.split(">")[0].lstrip("<") if link else None
        assert url is None or url.startswith(a.base_url + SENDER), link
        assert len(pages) <= 3, "the Link chain does not end"
    assert [len(p) for p in pages] == [5, 5, 2]
    listed = [loc for page in pages for loc in page]
    assert listed == list(own_documents(a).values())

    summary = b.manage_json("ocpi_pull_locations", "A", "--full")
    assert summary["partner"] == "A", summary
    assert summary["state"] == "DONE", summary
    assert summary["full"] is True, summary
    assert (summary["pages"], summary["total"]) == (3, 12), summary
    assert (summary["received"], summary["stored"], summary["rejected"]) == (12, 12, 0), summary
    row = sync_row(b)
    assert row is not None
    assert (row["state"], row["pages"], row["received"], row["stored"]) == ("DONE", 3, 12, 12)
    assert row["synced_until"] is not None
    assert in_sync(a, b), difference(a, b)

    # Nothing changed since: an incremental pull (date_from) receives nothing.
    summary = b.manage_json("ocpi_pull_locations", "A")
    assert summary["state"] == "DONE", summary
    assert summary["full"] is False, summary
    assert (summary["received"], summary["total"]) == (0, 0), summary
    assert in_sync(a, b), difference(a, b)


# --- 3: a status change is pushed ---------------------------------------------------------------


def test_status_change_reaches_partner(locations_pair: Pair) -> None:
    a, b = locations_pair.a, locations_pair.b
    before = deliveries(a)[-1]["id"]

    set_statuses(a, [("LOC1", "3256", "CHARGING")])
    assert evse(own_documents(a)["LOC1"], "3256")["status"] == "CHARGING"

    poll(
        lambda: evse(copies(b)["LOC1"], "3256")["status"] == "CHARGING",
        timeout=TIMEOUT,
        what=lambda: difference(a, b),
    )
    # The whole document agrees, last_updated of the EVSE and of the location included.
    assert in_sync(a, b), difference(a, b)
    document = own_documents(a)["LOC1"]
    assert evse(document, "3256")["last_updated"] == document["last_updated"]
    assert document["last_updated"] > own_location("LOC1")["last_updated"]

    sent = poll(
        lambda: (r := deliveries(a, after=before)) and r[-1]["state"] == "SENT" and r,
        timeout=TIMEOUT,
        what=lambda: f"the PATCH is SENT: {deliveries(a, after=before)}",
    )
    assert len(sent) == 1, sent
    assert (sent[0]["method"], sent[0]["key"]) == ("PATCH", f"{CC}/{PID}/LOC1/3256"), sent
    assert sent[0]["body"] == {
        "status": "CHARGING",
        "last_updated": evse(document, "3256")["last_updated"],
    }, sent

    token = a.outbound_token("B")
    assert token
    assert ok_data(b.get(f"{RECEIVER}/{CC}/{PID}/LOC1/3256", token)) == evse(document, "3256")


# --- 4: the partner is down for a while ---------------------------------------------------------


def test_changes_wait_while_partner_is_down(locations_pair: Pair) -> None:
    a, b = locations_pair.a, locations_pair.b
    before = deliveries(a)[-1]["id"]
    rounds = [("CHARGING", "AVAILABLE"), ("AVAILABLE", "CHARGING"), ("BLOCKED", "INOPERATIVE")]
    rounds.append(("OUTOFORDER", "CHARGING"))  # the newest statuses
    changes = [
        (location_id, uid, status)
        for first, second in rounds
        for location_id, uid, status in (("LOC2", "3256", first), ("LOC3", "3257", second))
    ]

    b.stop()
    set_statuses(a, changes)
    new = own_location("LOC13")
    import_locations(a, [new], "new-location.json")

    # A keeps the changes: the oldest row was tried (connection refused) and waits for its
    # backoff, the rows behind it wait for their turn; a burst folds into few rows.
    def waiting() -> list[dict[str, Any]] | None:
        rows = deliveries(a, after=before)
        keys = {r["key"] for r in rows}
        if f"{CC}/{PID}/LOC13" not in keys or rows[0]["attempts"] < 2:
            return None
        return rows if {r["state"] for r in rows} == {"PENDING"} else None

    rows = poll(
        waiting,
        timeout=TIMEOUT,
        what=lambda: f"retried PENDING rows: {deliveries(a, after=before)}\n{a.logs('celery')}",
    )
    assert rows[0]["last_error"], rows[0]
    assert all(r["http_status"] is None for r in rows), rows
    assert sum(r["changes"] for r in rows) == len(changes) + 1, rows
    assert len(rows) < len(changes) + 1, rows
    assert {r["key"] for r in rows} == {
        f"{CC}/{PID}/LOC2/3256",
        f"{CC}/{PID}/LOC3/3257",
        f"{CC}/{PID}/LOC13",
    }, rows
    assert a.partners()["B"]["state"] == "REGISTERED"

    b.start()

    poll(lambda: in_sync(a, b), timeout=TIMEOUT, what=lambda: difference(a, b))
    theirs = copies(b)
    assert evse(theirs["LOC2"], "3256")["status"] == "OUTOFORDER"
    assert evse(theirs["LOC3"], "3257")["status"] == "CHARGING"
    assert theirs["LOC13"] == new
    rows = poll(
        lambda: (r := deliveries(a, after=before)) and all(d["state"] == "SENT" for d in r) and r,
        timeout=TIMEOUT,
        what=lambda: f"all SENT: {deliveries(a, after=before)}",
    )
    assert rows[0]["attempts"] >= 3, rows  # two failures at least, then the delivery
    assert {r["ocpi_status"] for r in rows} == {1000}, rows
    assert len(rows) < len(changes) + 1, rows
