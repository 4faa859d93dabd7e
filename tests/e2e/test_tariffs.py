"""End-to-end: a CPO (A) shares its tariffs with an eMSP (B) over real HTTP (the kit).

1. A imports every spec example tariff, then the two register: the registration pushes them all
   to B, unchanged.
2. B pulls A's tariffs, every page (X-Total-Count, Link), and holds A's documents.
3. A changes one tariff and deletes another: B gets the PUT and the DELETE.
4. B loses its copies; a full pull brings them back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .harness import REPO, Instance, Pair, poll
from .test_locations import register

pytestmark = pytest.mark.e2e

FIXTURES = REPO / "tests" / "fixtures" / "ocpi"
NAMES = sorted(
    p.name for p in FIXTURES.glob("tariff_*.json") if p.name != "tariff_put_example.json"
)
CC, PID = "NL", "AAA"
TIMEOUT = 20.0


def own_tariff(name: str, tariff_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    data.update(country_code=CC, party_id=PID, id=tariff_id)
    return data


def own_documents(a: Instance) -> dict[str, dict[str, Any]]:
    rows = a.query(
        "SELECT object_id, ocpi_json FROM tariffs_tariff WHERE partner_id IS NULL ORDER BY id"
    )
    return {r["object_id"]: json.loads(r["ocpi_json"]) for r in rows}


def copies(b: Instance) -> dict[str, dict[str, Any]]:
    rows = b.query(
        "SELECT t.object_id, t.ocpi_json FROM tariffs_tariff t JOIN credentials_partner p "
        "ON p.id = t.partner_id WHERE p.name = 'A' ORDER BY t.id"
    )
    return {r["object_id"]: json.loads(r["ocpi_json"]) for r in rows}


def in_sync(a: Instance, b: Instance) -> bool:
    return copies(b) == own_documents(a)


def difference(a: Instance, b: Instance) -> str:
    ours, theirs = own_documents(a), copies(b)
    return (
        f"A has {sorted(ours)}, B has {sorted(theirs)}; differ on "
        f"{[k for k in ours if k in theirs and ours[k] != theirs[k]]}\n"
        f"{a.logs(lines=15)}\n{b.logs(lines=15)}"
    )


def test_registration_pushes_the_tariffs(tariffs_pair: Pair) -> None:
    a, b = tariffs_pair.a, tariffs_pair.b
    tariffs = [own_tariff(name, f"T{n}") for n, name in enumerate(NAMES)]
    path = Path(a.dir) / "tariffs.json"
    path.write_text(json.dumps(tariffs))
    result = a.manage_json("ocpi_import_tariffs", str(path))
    assert (result["created"], result["failed"]) == (len(tariffs), 0), result
    assert list(own_documents(a).values()) == tariffs  # each example round-trips

    register(b, a)

    endpoints = b.partners()["A"]["endpoints"]
    assert any(e["identifier"] == "tariffs" and e["role"] == "SENDER" for e in endpoints)
    poll(lambda: in_sync(a, b), timeout=TIMEOUT, what=lambda: difference(a, b))


def test_pull_follows_pages_and_stores_every_tariff(tariffs_pair: Pair) -> None:
    a, b = tariffs_pair.a, tariffs_pair.b
    summary = b.manage_json("ocpi_pull", "tariffs", "A", "--full")
    assert summary["state"] == "DONE", summary
    pages = -(-len(NAMES) // 5)
    assert (summary["pages"], summary["total"]) == (pages, len(NAMES)), summary
    assert (summary["received"], summary["stored"], summary["rejected"]) == (
        len(NAMES),
        len(NAMES),
        0,
    ), summary
    assert in_sync(a, b), difference(a, b)


def test_a_change_and_a_removal_reach_the_emsp(tariffs_pair: Pair) -> None:
    a, b = tariffs_pair.a, tariffs_pair.b
    a.shell(
        "import json\n"
        "from kit import services, spec_of\n"
        "from kit.spec import ObjectKey\n"
        "spec = spec_of('tariffs')\n"
        f"data = json.loads({json.dumps(json.dumps(own_tariff(NAMES[0], 'T0')))})\n"
        "data['currency'] = 'USD'\n"
        f"services.put(spec, ObjectKey({CC!r}, {PID!r}, 'T0'), data, owner=None)\n"
        f"services.delete(spec, ObjectKey({CC!r}, {PID!r}, 'T1'), owner=None)\n"
    )
    poll(
        lambda: (c := copies(b)) and "T1" not in c and c["T0"]["currency"] == "USD",
        timeout=TIMEOUT,
        what=lambda: difference(a, b),
    )
    assert in_sync(a, b), difference(a, b)


def test_a_full_pull_brings_back_lost_copies(tariffs_pair: Pair) -> None:
    a, b = tariffs_pair.a, tariffs_pair.b
    b.query("DELETE FROM tariffs_tariff WHERE partner_id IS NOT NULL")
    assert copies(b) == {}
    summary = b.manage_json("ocpi_pull", "tariffs", "A", "--full")
    assert summary["state"] == "DONE", summary
    assert in_sync(a, b), difference(a, b)
