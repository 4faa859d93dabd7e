"""Concurrent writes of one object: the newest last_updated wins, whatever the interleaving.

Real transactions on PostgreSQL: two writers in threads with their own connections. In most
rounds a third transaction holds the location row until both writers wait for it, so both
read what they compare only after that wait (a stamp read before it would be stale). The older
write may be answered "Updated." only when it really ran first: then the newer one overwrote it,
and the newer state is what is stored at the end of every round.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from locations import services
from locations.models import Connector, Evse, Location
from locations.paths import ObjectPath
from ocpi_platform.ocpi.types import format_datetime
from tests.concurrency import race
from tests.locations.conftest import example, own_location

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 20
BASE = datetime(2030, 1, 1, tzinfo=UTC)
LOCATION = ObjectPath("BE", "BEC", "LOC1")
EVSE = ObjectPath("BE", "BEC", "LOC1", "3256")
CONNECTOR = ObjectPath("BE", "BEC", "LOC1", "3256", "1")
UPDATED = "Updated."
STALE = services.Outcome(False, True, Location()).message


def stamps(round_: int) -> tuple[str, str]:
    """(older, newer), one second apart, later in every round."""
    older = BASE + timedelta(seconds=2 * round_)
    return format_datetime(older), format_datetime(older + timedelta(seconds=1))


def lock_location(path: ObjectPath = LOCATION) -> Callable[[], Any]:
    def lock() -> None:
        qs = Location.objects.ci(path.country_code, path.party_id, path.location_id)
        assert list(qs.select_for_update()), "nothing to lock"

    return lock


def answers(results: list[Any]) -> list[str]:
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r.message for r in results]


def check_answers(newer: str, older: str) -> None:
    assert newer in (UPDATED, "Created."), newer
    assert older in (UPDATED, "Created.", STALE), older


def store_copy(owner: int) -> None:
    services.put(LOCATION, example(), owner=owner)


def doc() -> dict[str, Any]:
    return json.loads(Location.objects.get().ocpi_json)


def doc_evse(uid: str = "3256") -> dict[str, Any]:
    return next(e for e in doc()["evses"] if e["uid"] == uid)


def contest(
    owner: int,
    write: Callable[[str, str, int], Any],
    stored: Callable[[], tuple[Any, ...]],
    expected: Callable[[str, str, int], tuple[Any, ...]],
    *,
    hold: bool = True,
) -> list[tuple[str, str]]:
    """ROUNDS rounds of ``write(value, stamp, round)`` by two writers, the newer and the
    older; after each, ``stored()`` must be ``expected(newer value, newer stamp, round)``."""
    seen = []
    for round_ in range(ROUNDS):
        old, new = stamps(round_)
        new_value, old_value = ("CHARGING", "BLOCKED") if round_ % 2 else ("BLOCKED", "CHARGING")
        results = race(
            partial(write, new_value, new, round_),
            partial(write, old_value, old, round_),
            hold=lock_location() if hold else None,
        )
        newer, older = answers(results)
        check_answers(newer, older)
        assert stored() == expected(new_value, new, round_), f"round {round_}: {older=}"
        seen.append((newer, older))
    return seen


def evse_state() -> tuple[Any, ...]:
    evse = Evse.objects.get(uid="3256")
    entry = doc_evse()
    return evse.status, format_datetime(evse.last_updated), entry["status"], entry["last_updated"]


def test_evse_status_patches_fast_path(cpo):
    owner = cpo.partner.pk
    store_copy(owner)

    def write(status: str, stamp: str, _: int) -> services.Outcome:
        return services.patch(EVSE, {"status": status, "last_updated": stamp}, owner=owner)

    seen = contest(owner, write, evse_state, lambda s, t, _: (s, t, s, t))
    assert any(older == STALE for _, older in seen)  # the race did happen


def test_evse_patches_general_path(cpo):
    owner = cpo.partner.pk
    store_copy(owner)

    def write(status: str, stamp: str, _: int) -> services.Outcome:
        body = {"status": status, "floor_level": status[:4], "last_updated": stamp}
        return services.patch(EVSE, body, owner=owner)

    def stored() -> tuple[Any, ...]:
        return (*evse_state(), Evse.objects.get(uid="3256").floor_level)

    contest(owner, write, stored, lambda s, t, _: (s, t, s, t, s[:4]))


def test_connector_patches(cpo):
    owner = cpo.partner.pk
    store_copy(owner)
    volts = {"CHARGING": 400, "BLOCKED": 230}

    def write(status: str, stamp: str, _: int) -> services.Outcome:
        body = {"max_voltage": volts[status], "last_updated": stamp}
        return services.patch(CONNECTOR, body, owner=owner)

    def stored() -> tuple[Any, ...]:
        connector = Connector.objects.get(evse__uid="3256", connector_id="1")
        entry = next(c for c in doc_evse()["connectors"] if c["id"] == "1")
        return (
            connector.max_voltage,
            format_datetime(connector.last_updated),
            entry["max_voltage"],
            entry["last_updated"],
        )

    contest(owner, write, stored, lambda s, t, _: (volts[s], t, volts[s], t))


def test_location_puts(cpo):
    owner = cpo.partner.pk
    store_copy(owner)

    def write(status: str, stamp: str, _: int) -> services.Outcome:
        data = example()
        data.update(name=status, last_updated=stamp)
        data["evses"][0].update(status=status, last_updated=stamp)
        return services.put(LOCATION, data, owner=owner)

    def stored() -> tuple[Any, ...]:
        location = Location.objects.get()
        d = doc()
        return location.name, format_datetime(location.last_updated), d["name"], *evse_state()

    contest(owner, write, stored, lambda s, t, _: (s, t, s, s, t, s, t))


def test_location_patches(cpo):
    owner = cpo.partner.pk
    store_copy(owner)

    def write(status: str, stamp: str, _: int) -> services.Outcome:
        return services.patch(LOCATION, {"name": status, "last_updated": stamp}, owner=owner)

    def stored() -> tuple[Any, ...]:
        location = Location.objects.get()
        return location.name, format_datetime(location.last_updated), doc()["name"]

    contest(owner, write, stored, lambda s, t, _: (s, t, s))


def test_evse_puts_and_a_status_patch(cpo):
    """The EVSE PUT (general path) and a status PATCH (fast path) of the same EVSE."""
    owner = cpo.partner.pk
    store_copy(owner)
    evse = example()["evses"][0]

    def write(status: str, stamp: str, round_: int) -> services.Outcome:
        if (status == "CHARGING") == bool(round_ % 4 < 2):  # the PUT is newer in half the rounds
            return services.put(
                EVSE, {**evse, "status": status, "last_updated": stamp}, owner=owner
            )
        return services.patch(EVSE, {"status": status, "last_updated": stamp}, owner=owner)

    contest(owner, write, evse_state, lambda s, t, _: (s, t, s, t))


def test_two_puts_of_a_new_location_one_creates_the_other_compares(cpo):
    """No row to lock yet: both insert; the loser must compare, not fail on the unique key.
    A third transaction inserts the same key, uncommitted, until both writers wait on it."""
    owner = cpo.partner.pk
    for round_ in range(ROUNDS):
        old, new = stamps(round_)
        location_id = f"NEW{round_}"
        path = ObjectPath("BE", "BEC", location_id)

        def write(name: str, stamp: str, path: ObjectPath = path) -> services.Outcome:
            data = {**example(), "id": path.location_id, "name": name, "last_updated": stamp}
            return services.put(path, data, owner=owner)

        def occupy(location_id: str = location_id) -> None:
            Location.objects.create(
                partner_id=owner,
                country_code="BE",
                party_id="BEC",
                location_id=location_id,
                address="-",
                city="-",
                country="BEL",
                latitude="0",
                longitude="0",
                time_zone="UTC",
            )

        results = race(
            partial(write, "NEWER", new), partial(write, "OLDER", old), hold=occupy, commit=False
        )
        newer, older = answers(results)
        assert (newer, older) in (("Created.", STALE), (UPDATED, "Created.")), (newer, older)
        location = Location.objects.get(location_id=location_id)
        assert (location.name, format_datetime(location.last_updated)) == ("NEWER", new)
        assert json.loads(location.ocpi_json)["name"] == "NEWER"


def test_own_status_changes_keep_rows_and_document_in_step(db):
    """Our own EVSE: concurrent status changes get stamps taken under the lock, so the one that
    ran last is the newest, and the document says what the rows say."""
    services.put(ObjectPath("NL", "ABC", "LOC1"), own_location(), owner=None)
    path = ObjectPath("NL", "ABC", "LOC1", "3256")
    for _ in range(ROUNDS // 2):
        results = race(
            lambda: services.set_evse_status(path, "CHARGING"),
            lambda: services.set_evse_status(path, "BLOCKED"),
            lambda: services.patch(
                path, {"floor_level": "3", "last_updated": stamps(0)[0]}, owner=None
            ),
            hold=lock_location(path.location),
        )
        assert answers(results) == [UPDATED] * 3
        location = Location.objects.get()
        evse = Evse.objects.get(uid="3256")
        entry = next(e for e in json.loads(location.ocpi_json)["evses"] if e["uid"] == "3256")
        assert (entry["status"], entry["floor_level"]) == (evse.status, "3")
        assert entry["last_updated"] == format_datetime(evse.last_updated)
        assert location.last_updated >= evse.last_updated


def test_a_status_patch_racing_a_put_that_removes_the_evse(cpo):
    """The PUT drops EVSE 3256 while its status PATCH waits for the lock: the PATCH then finds
    no EVSE (404), or ran first and was replaced; never a 500, never a revived EVSE."""
    owner = cpo.partner.pk
    seen = set()
    for round_ in range(ROUNDS):
        store_copy(owner)
        old, new = stamps(round_)
        without = example()
        without["evses"] = without["evses"][1:]
        without["last_updated"] = new
        results = race(
            partial(services.put, LOCATION, without, owner=owner),
            partial(services.patch, EVSE, {"status": "CHARGING", "last_updated": old}, owner=owner),
            hold=lock_location(),
        )
        put, status = results
        assert not isinstance(put, BaseException), put
        assert isinstance(status, services.UnknownObject) or status.message == UPDATED, status
        seen.add(type(status).__name__)
        assert [e["uid"] for e in doc()["evses"]] == ["3257"]
        assert list(Evse.objects.values_list("uid", flat=True)) == ["3257"]
    assert "UnknownObject" in seen  # the PATCH did wait behind the PUT at least once
