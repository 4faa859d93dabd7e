"""The kit receiver under real concurrent transactions (tariffs as the module): the newest
last_updated wins whatever the interleaving, and two PUTs that create the same tariff at once
both succeed (the loser of the insert race compares with the winner's row)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from kit import services, spec_of
from kit.spec import ObjectKey
from ocpi_platform.ocpi.registry import ModuleId
from ocpi_platform.ocpi.types import format_datetime
from tariffs.models import Tariff
from tests.concurrency import race
from tests.conftest import make_registered
from tests.tariffs.conftest import example

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 10
BASE = datetime(2030, 1, 1, tzinfo=UTC)
KEY = ObjectKey("DE", "ALL", "12")


def body(stamp: datetime, currency: str) -> dict:
    return {**example(), "currency": currency, "last_updated": format_datetime(stamp)}


def test_the_newest_put_wins_whatever_the_interleaving():
    spec = spec_of(ModuleId.TARIFFS)
    owner = make_registered("cpo", country_code="DE", party_id="ALL", role="CPO").partner.pk
    services.put(spec, KEY, body(BASE, "EUR"), owner=owner)

    def lock() -> None:
        assert list(Tariff.objects.ci(*KEY.upper()).select_for_update())

    for round_ in range(ROUNDS):
        older = BASE + timedelta(seconds=2 * round_ + 1)
        newer = older + timedelta(seconds=1)
        results = race(
            partial(services.put, spec, KEY, body(newer, "USD"), owner=owner),
            partial(services.put, spec, KEY, body(older, "GBP"), owner=owner),
            hold=lock if round_ % 2 == 0 else None,
        )
        for result in results:
            assert not isinstance(result, BaseException), result
        stored = Tariff.objects.get()
        assert stored.last_updated == newer
        assert json.loads(stored.ocpi_json)["currency"] == "USD"


def test_two_creations_at_once_store_one_tariff_and_the_newest_wins():
    spec = spec_of(ModuleId.TARIFFS)
    owner = make_registered("cpo", country_code="DE", party_id="ALL", role="CPO").partner.pk
    for round_ in range(ROUNDS):
        key = ObjectKey("DE", "ALL", f"NEW{round_}")
        stamp = BASE + timedelta(seconds=round_)
        results = race(
            partial(services.put, spec, key, {**body(stamp, "EUR"), "id": key.object_id},
                    owner=owner),
            partial(services.put, spec, key,
                    {**body(stamp + timedelta(seconds=1), "USD"), "id": key.object_id},
                    owner=owner),
        )  # fmt: skip
        for result in results:
            assert not isinstance(result, BaseException), result
        assert sorted(r.created for r in results) == [False, True]
        stored = Tariff.objects.get(object_id=key.object_id)
        assert json.loads(stored.ocpi_json)["currency"] == "USD"
