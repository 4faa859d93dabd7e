"""The buffered journal's write (one COPY): a partner deleted while its entries were buffered
costs only its own entries, not the whole batch."""

from __future__ import annotations

import pytest

from journal import recorder
from journal.models import Entry
from tests.conftest import make_registered

pytestmark = pytest.mark.django_db(transaction=True)  # the FK is checked at commit


def test_entries_of_a_partner_deleted_before_the_flush_are_dropped_the_rest_written(api, settings):
    settings.OCPI_JOURNAL_FLUSH_SECONDS = 3600  # buffered; the flusher thread will not run
    kept = make_registered("kept", party_id="KPT")
    gone = make_registered("gone", party_id="GON")
    for partner in (kept, gone, kept):
        api.get("/ocpi/versions", token=partner.inbound_token)
    api.get("/ocpi/versions")  # no token: an entry without partner
    gone.partner.delete()

    assert recorder.flush() == 4

    assert Entry.objects.filter(partner=kept.partner).count() == 2
    assert Entry.objects.filter(partner__isnull=True).count() == 1
    assert Entry.objects.count() == 3
