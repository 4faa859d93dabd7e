from __future__ import annotations

from datetime import timedelta

import pytest

from ocpi_platform import housekeeping
from ocpi_platform.ocpi.types import now_utc
from outbox import services
from outbox.models import Delivery, DeliveryState
from tests.conftest import make_registered


@pytest.mark.django_db
def test_prune_forgets_the_put_that_made_up_for_a_refused_put():
    rp = make_registered("p1")
    partner = rp.partner if hasattr(rp, "partner") else rp
    now = now_utc()
    common = dict(partner=partner, module="locations", key="NL/ABC/L1", path="NL/ABC/L1")
    Delivery.objects.create(
        **common,
        method="PUT",
        body={},
        state=DeliveryState.FAILED,
        created_at=now - timedelta(days=40),
        updated_at=now - timedelta(days=40),
    )
    Delivery.objects.create(
        **common,
        method="PUT",
        body={},
        state=DeliveryState.SENT,
        sent_at=now - timedelta(days=35),
        created_at=now - timedelta(days=35),
        updated_at=now - timedelta(days=35),
    )
    patch = Delivery.objects.create(
        partner=partner,
        module="locations",
        key="NL/ABC/L1/E1",
        path="NL/ABC/L1/E1",
        method="PATCH",
        body={"status": "AVAILABLE"},
        state=DeliveryState.PENDING,
    )
    before = services._refused_put(patch)
    report = housekeeping.prune()
    after = services._refused_put(patch)
    print("\nBEFORE prune:", before, "| prune:", report.counts, "| AFTER prune:", after)
    assert after == before
