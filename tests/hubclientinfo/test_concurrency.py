"""Concurrent PUTs of one ClientInfo: the newest last_updated wins, whatever the interleaving.

Real transactions on PostgreSQL (threads with their own connections). A third transaction holds
the row (or, before it exists, an uncommitted row with the same key) until both PUTs wait.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from credentials.models import HubParty
from hubclientinfo import services
from ocpi_platform.ocpi.types import format_datetime
from tests.concurrency import race

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 20
BASE = datetime(2030, 1, 1, tzinfo=UTC)


def body(status: str, stamp: datetime) -> dict[str, Any]:
    return {
        "party_id": "CPO",
        "country_code": "FR",
        "role": "CPO",
        "status": status,
        "last_updated": format_datetime(stamp),
    }


def outcomes(results: list[Any]) -> list[services.Outcome]:
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def stored() -> tuple[str, datetime]:
    row = HubParty.objects.get()
    return row.status, row.last_updated


def test_puts_of_a_stored_client_info(hub):
    hub_id = hub.partner.pk
    services.put(hub_id, "FR", "CPO", body("PLANNED", BASE))

    def lock() -> None:
        assert list(HubParty.objects.select_for_update())

    for round_ in range(ROUNDS):
        older = BASE + timedelta(seconds=2 * round_ + 1)
        newer = older + timedelta(seconds=1)
        new_status, old_status = ("CONNECTED", "OFFLINE")[:: 1 if round_ % 2 else -1]
        results = race(
            partial(services.put, hub_id, "FR", "CPO", body(new_status, newer)),
            partial(services.put, hub_id, "FR", "CPO", body(old_status, older)),
            hold=lock,
        )
        first, second = outcomes(results)
        assert first == services.Outcome(created=False)
        assert second.created is False
        assert stored() == (new_status, newer), f"round {round_}: {second}"


def test_two_puts_of_a_new_client_info(hub):
    """No row yet: one PUT creates it, the other compares with it (no IntegrityError)."""
    hub_id = hub.partner.pk

    def occupy() -> None:
        HubParty.objects.create(
            hub_id=hub_id,
            country_code="FR",
            party_id="CPO",
            role="CPO",
            status="PLANNED",
            last_updated=BASE,
        )

    for round_ in range(ROUNDS):
        HubParty.objects.all().delete()
        older = BASE + timedelta(seconds=2 * round_ + 1)
        newer = older + timedelta(seconds=1)
        results = race(
            partial(services.put, hub_id, "FR", "CPO", body("CONNECTED", newer)),
            partial(services.put, hub_id, "FR", "CPO", body("OFFLINE", older)),
            hold=occupy,
            commit=False,
        )
        first, second = outcomes(results)
        assert [first.created, second.created].count(True) == 1, (first, second)
        if first.created:
            assert str(second.message).startswith("Not applied")
        assert stored() == ("CONNECTED", newer), f"round {round_}"
