"""Pulling a partner CPO's locations (locations.sync): paging, storing, rejections, failures.

Every test calls ``sync.pull`` in-process; the partner is ``LocationsPartner`` behind the
client's transport seam, serving the spec's example location under several ids.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core.management import call_command
from django.db import connection, transaction

from credentials.models import PartnerState
from locations import services, sync, tasks
from locations.models import Location, LocationSync, SyncState
from locations.paths import ObjectPath
from ocpi_platform.ocpi.client import use_transport
from ocpi_platform.ocpi.types import format_datetime, now_utc
from outbox import services as outbox
from outbox.models import OutboxLease
from tests.conftest import RegisteredPartner, load_example
from tests.fakes.locations_partner import LocationsPartner
from tests.fakes.partner import envelope
from tests.locations.conftest import PARTNER_LOCATIONS, example, own_location

pytestmark = pytest.mark.django_db

EXAMPLE_STAMP = datetime(2015, 6, 29, 20, 39, 9, tzinfo=UTC)  # location_example.json


@pytest.fixture
def partner() -> Iterator[LocationsPartner]:
    """The partner's platform: every outbound call of the test goes to it."""
    fake = LocationsPartner()
    fake.accepted_tokens.add("partner-token-c")  # make_registered's outbound token
    with use_transport(fake.transport()):
        yield fake


def served(location_id: str, **changes: Any) -> dict[str, Any]:
    """The spec's example location (BE/BEC) under another id."""
    data = example()
    data.update({"id": location_id, "name": f"Station {location_id}", **changes})
    return data


def query(url: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}


def copies(cpo: RegisteredPartner) -> dict[str, dict[str, Any]]:
    """The partner's copies as we serve them, by location id."""
    return {
        loc.location_id: services.document(loc)
        for loc in Location.objects.filter(partner=cpo.partner)
    }


def row(cpo: RegisteredPartner) -> LocationSync:
    return LocationSync.objects.get(partner=cpo.partner)


# --- a full pull ---------------------------------------------------------------------------


def test_full_pull_follows_every_page_and_stores_the_partners_copies(cpo, partner):
    partner.locations = [served(f"LOC{n}") for n in range(1, 6)]  # 3 pages of 2, 2, 1
    before = now_utc()

    result = sync.pull(cpo.partner.pk, full=True)

    after = now_utc()
    requests = partner.list_requests
    assert [query(r.url) for r in requests] == [
        {},
        {"offset": "2", "limit": "2"},
        {"offset": "4", "limit": "2"},
    ]
    first = requests[0]
    assert first.url == PARTNER_LOCATIONS
    assert (
        first.headers["Authorization"] == "Token " + base64.b64encode(b"partner-token-c").decode()
    )
    assert first.headers["OCPI-from-country-code"] == "NL"
    assert first.headers["OCPI-from-party-id"] == "ABC"
    assert first.headers["OCPI-to-country-code"] == "BE"
    assert first.headers["OCPI-to-party-id"] == "BEC"

    # Every location is the partner's copy, exactly as served (its timestamps kept).
    assert copies(cpo) == {loc["id"]: loc for loc in partner.locations}
    assert not Location.objects.filter(partner=None).exists()
    stored = Location.objects.get(partner=cpo.partner, location_id="LOC3")
    assert stored.last_updated == EXAMPLE_STAMP
    assert [e.last_updated.isoformat() for e in stored.evses.all()] == [
        "2015-06-28T08:12:01+00:00",
        "2015-06-29T20:39:09+00:00",
    ]

    saved = row(cpo)
    assert result.pk == saved.pk
    assert saved.state == SyncState.DONE
    assert saved.full is True
    assert (saved.pages, saved.total, saved.received, saved.stored, saved.rejected) == (
        3,
        5,
        5,
        5,
        0,
    )
    assert saved.message == "Full sync: 3 pages, 5 locations received, 5 stored, 0 rejected."
    assert before <= saved.started_at <= saved.finished_at <= after
    assert saved.synced_until == saved.started_at


def test_an_empty_sender_is_a_done_full_sync(cpo, partner):
    result = sync.pull(cpo.partner.pk)

    assert len(partner.list_requests) == 1
    assert (result.state, result.full, result.pages, result.total) == (SyncState.DONE, True, 1, 0)
    assert result.message == "Full sync: 1 pages, 0 locations received, 0 stored, 0 rejected."
    assert row(cpo).synced_until is not None


# --- incremental pulls ---------------------------------------------------------------------


def test_the_next_pull_asks_for_changes_since_the_last_sync(cpo, partner):
    partner.locations = [served("LOC1"), served("LOC2"), served("LOC3")]
    first = sync.pull(cpo.partner.pk)
    assert first.full is True
    since = row(cpo).synced_until
    assert since is not None

    # The partner renames LOC2 and adds LOC4; LOC1 and LOC3 are unchanged (2015).
    changed = format_datetime(now_utc() + timedelta(seconds=1))
    partner.locations[1] = served("LOC2", name="Gent Noord", last_updated=changed)
    partner.locations.append(served("LOC4", last_updated=changed))
    partner.requests.clear()

    second = sync.pull(cpo.partner.pk)

    assert query(partner.list_requests[0].url) == {"date_from": format_datetime(since)}
    assert all(
        query(r.url).get("date_from") == format_datetime(since) for r in partner.list_requests
    )
    saved = row(cpo)
    assert saved.state == SyncState.DONE
    assert saved.full is False
    assert (saved.pages, saved.total, saved.received, saved.stored, saved.rejected) == (
        1,
        2,
        2,
        2,
        0,
    )
    assert saved.message.startswith("Incremental sync: 1 pages, 2 locations received, 2 stored")
    assert saved.synced_until == second.started_at > since
    stored = copies(cpo)
    assert sorted(stored) == ["LOC1", "LOC2", "LOC3", "LOC4"]
    assert stored["LOC2"]["name"] == "Gent Noord"
    assert stored["LOC2"]["last_updated"] == changed
    assert stored["LOC1"] == served("LOC1")
    assert stored["LOC4"] == partner.locations[3]


def test_full_true_fetches_everything_again(cpo, partner):
    partner.locations = [served("LOC1")]
    sync.pull(cpo.partner.pk)
    partner.requests.clear()

    result = sync.pull(cpo.partner.pk, full=True)

    assert query(partner.list_requests[0].url) == {}
    assert (result.full, result.received) == (True, 1)
    assert row(cpo).full is True


def test_a_failed_pull_does_not_advance_synced_until(cpo, partner):
    partner.locations = [served("LOC1")]

    # The very first pull fails: nothing synced yet, so the next one is full again.
    partner.respond_next(503, envelope(status_code=3000, message="Maintenance"))
    failed = sync.pull(cpo.partner.pk)
    assert failed.state == SyncState.FAILED
    assert row(cpo).synced_until is None
    partner.requests.clear()
    done = sync.pull(cpo.partner.pk)
    assert query(partner.list_requests[0].url) == {}
    assert (done.state, done.full) == (SyncState.DONE, True)
    since = row(cpo).synced_until
    assert since is not None

    # An incremental pull fails: synced_until stays, the next pull asks from the same point.
    partner.respond_next(500, "oops", content_type="text/plain")
    failed = sync.pull(cpo.partner.pk)
    saved = row(cpo)
    assert (saved.state, saved.full, saved.synced_until) == (SyncState.FAILED, False, since)
    assert saved.finished_at is not None
    assert "HTTP 500" in saved.message
    partner.requests.clear()
    sync.pull(cpo.partner.pk)
    assert query(partner.list_requests[0].url) == {"date_from": format_datetime(since)}
    assert row(cpo).state == SyncState.DONE
    assert row(cpo).synced_until > since


# --- a sender that misbehaves -----------------------------------------------------------------


def test_a_looping_sender_is_stopped_and_what_it_sent_is_kept(cpo, partner):
    partner.locations = [served(f"LOC{n}") for n in range(1, 7)]
    partner.loop_from = 1  # the second page links back to the first

    result = sync.pull(cpo.partner.pk)

    # Stopped after at most one page fetched again, not after 10,000.
    assert 2 <= len(partner.list_requests) <= 3
    saved = row(cpo)
    assert saved.state == SyncState.FAILED
    assert saved.message.startswith(f"Full sync failed after {saved.pages} pages: ")
    assert "Paging loops" in saved.message
    assert "was already fetched" in saved.message
    assert saved.synced_until is None
    assert saved.finished_at is not None
    assert result.message == saved.message
    # The pages it did send are stored, each location once.
    assert sorted(copies(cpo)) == ["LOC1", "LOC2", "LOC3", "LOC4"]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            (200, envelope({"id": "LOC3"})),
            "Page 2 holds a JSON dict, not a list.",
        ),
        (
            (200, '{"status_code": 1000, "data": ['),
            f"GET {PARTNER_LOCATIONS}?offset=2&limit=2 did not answer with an OCPI envelope",
        ),
        (
            (200, envelope(status_code=2001, message="Invalid date_from")),
            f"GET {PARTNER_LOCATIONS}?offset=2&limit=2 answered OCPI status 2001: "
            "Invalid date_from.",
        ),
        (
            (500, envelope(status_code=3000, message="Database down")),
            f"GET {PARTNER_LOCATIONS}?offset=2&limit=2 failed with HTTP 500: Database down.",
        ),
    ],
    ids=["not-a-list", "invalid-json", "ocpi-error", "http-500"],
)
def test_a_bad_page_fails_the_pull_and_keeps_the_earlier_pages(cpo, partner, answer, reason):
    partner.locations = [served(f"LOC{n}") for n in range(1, 6)]
    status, body = answer
    scripted: list[int] = []

    def progress(row: LocationSync) -> None:
        if row.pages == 1 and not scripted:  # the second page will be the bad one
            scripted.append(1)
            partner.respond_next(status, body)

    result = sync.pull(cpo.partner.pk, progress=progress)

    assert len(partner.list_requests) == 2
    saved = row(cpo)
    assert saved.state == SyncState.FAILED
    assert saved.message.startswith("Full sync failed after 1 pages: " + reason)
    assert saved.message.endswith("2 locations received, 2 stored, 0 rejected.")
    assert (saved.pages, saved.total, saved.received, saved.stored) == (1, 5, 2, 2)
    assert saved.synced_until is None
    assert saved.finished_at is not None
    assert result.state == SyncState.FAILED
    # Nothing the partner sent before the bad page is lost.
    assert copies(cpo) == {"LOC1": served("LOC1"), "LOC2": served("LOC2")}


def test_a_refused_token_fails_the_pull_with_the_reason(cpo, partner):
    partner.accepted_tokens.discard("partner-token-c")

    result = sync.pull(cpo.partner.pk)

    assert result.state == SyncState.FAILED
    assert "refused with HTTP 401: Unauthorized" in result.message
    assert row(cpo).state == SyncState.FAILED


# --- objects that are rejected ----------------------------------------------------------------


def test_invalid_and_foreign_objects_are_rejected_with_reasons_and_the_rest_stored(
    cpo, emsp, partner
):
    missing_address = served("LOC2")
    del missing_address["address"]
    bad_status = served("LOC3")
    bad_status["evses"][0]["status"] = "BROKEN"
    # Our own location NL/ABC/LOC5: a partner cannot overwrite it.
    services.put(ObjectPath("NL", "ABC", "LOC5"), own_location("LOC5"), owner=None)
    ours_before = services.document(Location.objects.get(partner=None, location_id="LOC5"))
    no_id = served("LOC7")
    del no_id["id"]
    lower_case = served("LOC9", country_code="be", party_id="bec")
    partner.page_size = 3
    partner.locations = [
        served("LOC1"),
        missing_address,
        bad_status,
        served("LOC4", country_code="DE", party_id="XYZ"),  # the other partner's party
        served("LOC5", country_code="NL", party_id="ABC"),  # our own party
        "not an object",
        no_id,
        served("LOC8"),
        lower_case,
    ]

    result = sync.pull(cpo.partner.pk)

    saved = row(cpo)
    assert saved.state == SyncState.DONE
    assert (saved.pages, saved.total, saved.received, saved.stored, saved.rejected) == (
        3,
        9,
        9,
        3,
        6,
    )
    assert saved.synced_until is not None
    message = saved.message
    assert message.startswith("Full sync: 3 pages, 9 locations received, 3 stored, 6 rejected.")
    assert "LOC2: Invalid location: address" in message
    assert "LOC3: Invalid location: evses[0].status" in message
    assert "BROKEN" in message
    assert "LOC4: DE/XYZ is not one of the partner's parties" in message
    assert "LOC5: NL/ABC is not one of the partner's parties" in message
    assert "object 6: not a JSON object" in message
    assert message.endswith(" (and 1 more).")  # the 6th rejection (no id) is only counted
    assert result.message == message

    stored = copies(cpo)
    assert sorted(stored) == ["LOC1", "LOC8", "LOC9"]
    assert stored["LOC1"] == served("LOC1")
    assert not Location.objects.filter(location_id__in=["LOC2", "LOC3", "LOC4"]).exists()
    ours = Location.objects.get(location_id="LOC5")
    assert ours.partner_id is None
    assert services.document(ours) == ours_before


# --- progress -----------------------------------------------------------------------------------


def test_progress_is_reported_per_page_with_increasing_counts(cpo, partner):
    partner.locations = [served(f"LOC{n}") for n in range(1, 6)]
    partner.locations[3]["evses"][0]["status"] = "BROKEN"  # LOC4 on page 2
    calls: list[tuple[str, int, int | None, int, int, int]] = []
    in_database: list[tuple[str, int, int]] = []

    def progress(current: LocationSync) -> None:
        calls.append(
            (
                current.state,
                current.pages,
                current.total,
                current.received,
                current.stored,
                current.rejected,
            )
        )
        # What the admin's partner page reads while the pull runs.
        stored = row(cpo)
        in_database.append((stored.state, stored.pages, stored.received))

    sync.pull(cpo.partner.pk, progress=progress)

    assert calls == [
        (SyncState.RUNNING, 1, 5, 2, 2, 0),
        (SyncState.RUNNING, 2, 5, 4, 3, 1),
        (SyncState.RUNNING, 3, 5, 5, 4, 1),
        (SyncState.DONE, 3, 5, 5, 4, 1),
    ]
    assert in_database == [
        (SyncState.RUNNING, 1, 2),
        (SyncState.RUNNING, 2, 4),
        (SyncState.RUNNING, 3, 5),
        (SyncState.DONE, 3, 5),
    ]


# --- who can be pulled ------------------------------------------------------------------------


def test_a_registered_cpo_with_a_sender_endpoint_can_be_pulled(cpo):
    assert sync.can_pull(cpo.partner.pk) is True
    assert sync.cannot_pull(cpo.partner) is None


def test_a_partner_that_is_not_registered_cannot_be_pulled(cpo, partner):
    cpo.partner.state = PartnerState.UNREGISTERED
    cpo.partner.save()

    assert sync.can_pull(cpo.partner.pk) is False
    assert sync.cannot_pull(cpo.partner) == "it is not registered (unregistered)"
    with pytest.raises(sync.SyncUnavailable, match=r"^The partner is not registered\.$"):
        sync.pull(cpo.partner.pk)
    with pytest.raises(sync.SyncUnavailable, match=r"^The partner is not registered\.$"):
        sync.pull(cpo.partner.pk + 1000)  # no such partner
    assert sync.can_pull(cpo.partner.pk + 1000) is False
    assert partner.requests == []
    assert not LocationSync.objects.exists()


def test_a_partner_without_a_locations_sender_cannot_be_pulled(emsp, partner):
    assert sync.can_pull(emsp.partner.pk) is False
    assert sync.cannot_pull(emsp.partner) == "it offers no locations SENDER endpoint"
    with pytest.raises(sync.SyncUnavailable, match=r"^de-emsp has no locations SENDER endpoint\.$"):
        sync.pull(emsp.partner.pk)
    assert partner.requests == []
    assert not LocationSync.objects.exists()


def test_nothing_is_pulled_when_none_of_our_parties_receives_locations(cpo, partner, settings):
    settings.OCPI_PARTIES = "NL:ABC:CPO"
    partner.locations = [served("LOC1")]

    assert sync.can_pull(cpo.partner.pk) is False
    assert sync.cannot_pull(cpo.partner) == "none of our parties (OCPI_PARTIES) receives locations"
    with pytest.raises(sync.SyncUnavailable, match="OCPI_PARTIES"):
        sync.pull(cpo.partner.pk)
    assert partner.requests == []
    assert not Location.objects.exists()


def test_a_running_pull_is_not_started_twice_but_a_stale_one_is_taken_over(cpo, partner):
    partner.locations = [served("LOC1")]
    LocationSync.objects.create(
        partner=cpo.partner, state=SyncState.RUNNING, started_at=now_utc() - timedelta(minutes=5)
    )

    assert sync.can_pull(cpo.partner.pk) is True
    assert sync.cannot_pull(cpo.partner) == "a pull is running already"
    busy = sync.pull(cpo.partner.pk)
    assert busy.state == SyncState.RUNNING
    assert busy.message == "A sync of this partner is already running."
    assert partner.requests == []

    # A run that stopped reporting more than 30 minutes ago is taken to have died.
    LocationSync.objects.filter(partner=cpo.partner).update(
        started_at=now_utc() - sync.STALE - timedelta(minutes=1)
    )
    assert sync.cannot_pull(cpo.partner) is None
    done = sync.pull(cpo.partner.pk)
    assert (done.state, done.stored) == (SyncState.DONE, 1)
    assert len(partner.list_requests) == 1


# --- request_pull: queued after the commit ----------------------------------------------------


@pytest.fixture
def sent(monkeypatch) -> list[dict[str, Any]]:
    """The pull tasks sent to the broker (recorded, not sent)."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.pull_locations, "apply_async", lambda **kw: calls.append(kw))
    return calls


def test_request_pull_marks_queued_and_sends_the_task_after_commit(
    cpo, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        sync.request_pull(cpo.partner.pk, full=True, countdown=3)
        assert row(cpo).state == SyncState.QUEUED
        assert sent == []  # not before the commit

    assert len(callbacks) == 1
    assert sent == [{"kwargs": {"partner_id": cpo.partner.pk, "full": True}, "countdown": 3}]


def test_request_pull_keeps_a_running_row_and_sends_nothing_on_rollback(
    cpo, sent, django_capture_on_commit_callbacks
):
    LocationSync.objects.create(partner=cpo.partner, state=SyncState.DONE)
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        sync.request_pull(cpo.partner.pk)
        assert row(cpo).state == SyncState.QUEUED
        transaction.set_rollback(True)  # the admin action's transaction fails
    assert callbacks == []
    assert sent == []
    assert row(cpo).state == SyncState.DONE

    LocationSync.objects.filter(partner=cpo.partner).update(
        state=SyncState.RUNNING, started_at=now_utc()
    )
    with django_capture_on_commit_callbacks(execute=True):
        sync.request_pull(cpo.partner.pk)
    assert row(cpo).state == SyncState.RUNNING  # a running pull is not marked queued
    assert sent == [{"kwargs": {"partner_id": cpo.partner.pk, "full": False}, "countdown": 0}]


def test_the_queued_task_runs_the_pull(cpo, partner):
    partner.locations = [served("LOC1")]

    message = tasks.pull_locations(partner_id=cpo.partner.pk, full=True)

    assert message == "Full sync: 1 pages, 1 locations received, 1 stored, 0 rejected."
    assert copies(cpo) == {"LOC1": load_example("location_example.json") | {"name": "Station LOC1"}}


# --- a full list is the partner's whole truth ---------------------------------------------


def test_a_complete_full_pull_deletes_the_copies_the_partner_no_longer_lists(cpo, partner):
    partner.locations = [served(f"LOC{n}") for n in range(1, 6)]
    sync.pull(cpo.partner.pk, full=True)
    services.put(ObjectPath("NL", "ABC", "MINE"), own_location("MINE"), owner=None)

    partner.locations = [served("LOC1"), served("loc3"), served("LOC5")]  # ids ignore case
    result = sync.pull(cpo.partner.pk, full=True)

    assert result.state == SyncState.DONE
    assert sorted(copies(cpo), key=str.upper) == ["LOC1", "loc3", "LOC5"]  # as last sent
    assert result.message.endswith(" 2 copies no longer listed by the partner were deleted.")
    assert Location.objects.filter(partner=None, location_id="MINE").exists()  # ours stay


def test_an_incremental_pull_deletes_nothing(cpo, partner):
    partner.locations = [served("LOC1"), served("LOC2")]
    sync.pull(cpo.partner.pk, full=True)

    partner.locations = []
    result = sync.pull(cpo.partner.pk)

    assert (result.state, result.full) == (SyncState.DONE, False)
    assert sorted(copies(cpo)) == ["LOC1", "LOC2"]


def test_a_rejected_object_keeps_its_earlier_copy(cpo, partner):
    partner.locations = [served("LOC1"), served("LOC2")]
    sync.pull(cpo.partner.pk, full=True)
    before = copies(cpo)["LOC2"]

    partner.locations = [served("LOC1"), served("LOC2", address=None)]  # now invalid
    result = sync.pull(cpo.partner.pk, full=True)

    assert (result.state, result.rejected) == (SyncState.DONE, 1)
    assert copies(cpo)["LOC2"] == before
    assert "deleted" not in result.message


def test_a_failed_full_pull_deletes_nothing(cpo, partner):
    partner.locations = [served(f"LOC{n}") for n in range(1, 6)]
    sync.pull(cpo.partner.pk, full=True)

    partner.respond_next(500, envelope(status_code=3000, message="Database down"))
    result = sync.pull(cpo.partner.pk, full=True)

    assert result.state == SyncState.FAILED
    assert len(copies(cpo)) == 5


def test_pages_short_of_the_announced_total_delete_nothing(cpo, partner):
    partner.locations = [served(f"LOC{n}") for n in range(1, 4)]
    sync.pull(cpo.partner.pk, full=True)

    class ShortPages(LocationsPartner):
        """Announces one more location than its pages hold (paging that skips one)."""

        def _page(self, request: Any) -> Any:
            response = super()._page(request)
            response.headers["X-Total-Count"] = str(len(self.locations) + 1)
            return response

    short = ShortPages(locations=[served("LOC1")])
    short.accepted_tokens.add("partner-token-c")
    with use_transport(short.transport()):
        result = sync.pull(cpo.partner.pk, full=True)

    assert result.state == SyncState.DONE
    assert sorted(copies(cpo)) == ["LOC1", "LOC2", "LOC3"]
    assert "fewer locations than the 2 announced" in result.message


# --- a pull that cannot run ---------------------------------------------------------------


def test_a_queued_pull_that_cannot_run_ends_failed_with_the_reason(cpo, partner):
    with transaction.atomic():
        sync.request_pull(cpo.partner.pk)
    cpo.partner.state = PartnerState.UNREGISTERED
    cpo.partner.save()

    message = tasks.pull_locations(partner_id=cpo.partner.pk)

    assert message == "The partner is not registered."
    saved = row(cpo)
    assert (saved.state, saved.message) == (SyncState.FAILED, "The partner is not registered.")
    assert saved.finished_at is not None
    assert partner.requests == []


# --- a partner that asks us to retry later (Retry-After) -----------------------------------


def time_has_come(cpo: Any) -> None:
    """The time the partner asked us to wait (Retry-After) is over: for the pull and the
    partner's other traffic."""
    LocationSync.objects.filter(partner=cpo.partner).update(retry_at=now_utc())
    OutboxLease.objects.filter(partner=cpo.partner).update(not_before=None)


class BusyPartner(LocationsPartner):
    """Answers the list requests numbered in ``busy`` (1-based) with 429 and ``Retry-After``."""

    def __init__(self, *args: Any, busy: dict[int, tuple[int, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.busy = busy
        self.accepted_tokens.add("partner-token-c")

    def _page(self, request: Any) -> Any:
        answer = self.busy.get(len(self.list_requests))
        if answer is None:
            return super()._page(request)
        status, retry_after = answer
        return httpx.Response(
            status,
            json=envelope(status_code=2000, message="Slow down"),
            headers={"Retry-After": retry_after},
        )


def test_a_429_with_retry_after_makes_the_pull_wait_and_continue_at_that_page_no_earlier(
    cpo, sent, django_capture_on_commit_callbacks
):
    busy = BusyPartner(locations=[served(f"LOC{n}") for n in range(1, 6)], busy={2: (429, "8")})
    before = now_utc()
    with use_transport(busy.transport()), django_capture_on_commit_callbacks(execute=True):
        waiting = tasks.pull_locations(partner_id=cpo.partner.pk, full=True)
    after = now_utc()

    saved = row(cpo)
    assert saved.state == SyncState.WAITING
    assert before + timedelta(seconds=8) <= saved.retry_at <= after + timedelta(seconds=8)
    assert saved.next_url == f"{PARTNER_LOCATIONS}?offset=2&limit=2"
    assert (saved.pages, saved.stored, saved.waits, saved.finished_at) == (1, 2, 1, None)
    assert waiting == saved.message
    assert saved.message.startswith(
        f"Full sync waiting until {format_datetime(saved.retry_at)} (the partner's Retry-After) "
        f"after 1 pages: GET {PARTNER_LOCATIONS}?offset=2&limit=2 failed with HTTP 429"
    )
    # The task is sent again, to run no earlier than the partner asked.
    assert sent == [{"kwargs": {"partner_id": cpo.partner.pk, "full": True}, "countdown": 8}]
    assert sync.cannot_pull(cpo.partner) == (
        f"the partner asked us to wait until {format_datetime(saved.retry_at)} (Retry-After); "
        "the pull continues then"
    )

    # Before that time nothing calls the partner: a pull finds it waiting, a request keeps the
    # row WAITING and is sent for the time the partner asked.
    with use_transport(busy.transport()), django_capture_on_commit_callbacks(execute=True):
        early = sync.pull(cpo.partner.pk)
        sync.request_pull(cpo.partner.pk)
    assert early.state == SyncState.WAITING
    assert len(busy.list_requests) == 2
    assert row(cpo).state == SyncState.WAITING
    assert sent[1]["countdown"] in (7, 8)

    # The time has come: the pull continues at the page that was refused.
    time_has_come(cpo)
    with use_transport(busy.transport()):
        message = tasks.pull_locations(partner_id=cpo.partner.pk, full=True)

    assert [query(r.url) for r in busy.list_requests[2:]] == [
        {"offset": "2", "limit": "2"},
        {"offset": "4", "limit": "2"},
    ]
    done = row(cpo)
    assert (done.state, done.pages, done.received, done.stored) == (SyncState.DONE, 3, 5, 5)
    assert (done.waits, done.retry_at, done.next_url) == (0, None, "")
    assert done.synced_until == done.started_at == saved.started_at
    assert sorted(copies(cpo)) == [f"LOC{n}" for n in range(1, 6)]
    # The keys of the first page are not known any more: nothing is deleted.
    assert message.endswith("continued: copies that were not listed are kept.")


def test_a_retry_after_date_on_a_503_is_the_earliest_next_attempt(
    cpo, sent, django_capture_on_commit_callbacks
):
    when = (now_utc() + timedelta(seconds=120)).replace(microsecond=0)
    busy = BusyPartner(
        locations=[served("LOC1")], busy={1: (503, when.strftime("%a, %d %b %Y %H:%M:%S GMT"))}
    )
    with use_transport(busy.transport()), django_capture_on_commit_callbacks(execute=True):
        result = sync.pull(cpo.partner.pk)

    assert result.state == SyncState.WAITING
    assert abs((row(cpo).retry_at - when).total_seconds()) < 1
    assert row(cpo).next_url == ""  # the first page: it starts over
    assert sent[0]["countdown"] in (119, 120)

    time_has_come(cpo)
    with use_transport(busy.transport()):
        done = sync.pull(cpo.partner.pk)
    assert (done.state, done.stored) == (SyncState.DONE, 1)
    assert query(busy.list_requests[-1].url) == {}
    assert "continued" not in done.message  # nothing was read before the wait: a whole list


def test_a_partner_that_keeps_asking_to_wait_fails_the_pull(
    cpo, sent, django_capture_on_commit_callbacks
):
    busy = BusyPartner(
        locations=[served("LOC1")], busy={n: (429, "1") for n in range(1, sync.MAX_WAITS + 2)}
    )
    with use_transport(busy.transport()), django_capture_on_commit_callbacks(execute=True):
        for _ in range(sync.MAX_WAITS):
            assert sync.pull(cpo.partner.pk).state == SyncState.WAITING
            time_has_come(cpo)
        failed = sync.pull(cpo.partner.pk)

    assert failed.state == SyncState.FAILED
    assert f"The partner asked us to wait {sync.MAX_WAITS + 1} times in a row." in failed.message
    assert len(sent) == sync.MAX_WAITS


def test_a_503_without_retry_after_still_fails_the_pull(cpo, partner):
    partner.respond_next(503, envelope(status_code=3000, message="Maintenance"))

    assert sync.pull(cpo.partner.pk).state == SyncState.FAILED


# --- progress per page: a long pull is not started twice -----------------------------------


def test_progress_is_recorded_per_page_and_the_start_is_kept(cpo, partner):
    partner.locations = [served(f"LOC{n}") for n in range(1, 6)]
    seen: list[tuple[Any, Any, str]] = []

    def progress(current: LocationSync) -> None:
        stored = row(cpo)
        seen.append((stored.started_at, stored.progress_at, stored.next_url))

    sync.pull(cpo.partner.pk, progress=progress)

    starts = {start for start, _, _ in seen}
    assert len(starts) == 1
    beats = [beat for _, beat, _ in seen]
    assert beats == sorted(beats)
    assert beats[0] >= starts.pop()
    assert [url for _, _, url in seen] == [
        f"{PARTNER_LOCATIONS}?offset=2&limit=2",
        f"{PARTNER_LOCATIONS}?offset=4&limit=2",
        "",
        "",
    ]


def test_a_long_running_pull_with_recent_progress_is_not_taken_over(cpo, partner):
    partner.locations = [served("LOC1")]
    LocationSync.objects.create(
        partner=cpo.partner,
        state=SyncState.RUNNING,
        started_at=now_utc() - timedelta(hours=2),  # long: older than STALE
        progress_at=now_utc() - timedelta(minutes=1),  # but alive
    )

    assert sync.cannot_pull(cpo.partner) == "a pull is running already"
    assert sync.pull(cpo.partner.pk).state == SyncState.RUNNING
    assert partner.requests == []

    LocationSync.objects.filter(partner=cpo.partner).update(
        progress_at=now_utc() - sync.STALE - timedelta(seconds=1)
    )
    assert sync.pull(cpo.partner.pk).state == SyncState.DONE


@pytest.mark.django_db(transaction=True)
def test_a_second_pull_while_a_long_one_is_live_does_not_crawl_again(cpo):
    """Real threads, own connections: the first pull is blocked on its second page."""
    fake = LocationsPartner(locations=[served(f"LOC{n}") for n in range(1, 6)])
    fake.accepted_tokens.add("partner-token-c")
    on_page_2, release = threading.Event(), threading.Event()
    original = fake._page

    def slow_page(request: Any) -> Any:
        if query(str(request.url)).get("offset") == "2":
            on_page_2.set()
            assert release.wait(10)
        return original(request)

    fake._page = slow_page  # type: ignore[method-assign]
    results: list[LocationSync] = []

    def first() -> None:
        try:
            with use_transport(fake.transport()):
                results.append(sync.pull(cpo.partner.pk, full=True))
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert on_page_2.wait(10)
        # It has run for longer than STALE, but it reported progress a moment ago.
        LocationSync.objects.filter(partner=cpo.partner).update(
            started_at=now_utc() - sync.STALE - timedelta(hours=1)
        )
        with use_transport(fake.transport()):
            second = sync.pull(cpo.partner.pk, full=True)
        assert second.state == SyncState.RUNNING
        assert second.message == "A sync of this partner is already running."
    finally:
        release.set()
        thread.join(10)
    assert [r.state for r in results] == [SyncState.DONE]
    assert len(fake.list_requests) == 3  # one crawl only


# --- the partner's list shrinks during the pull; relative Link ------------------------------


def test_a_list_that_shrinks_mid_pull_skips_and_deletes_nothing_still_listed(cpo, partner):
    partner.locations = [served(f"LOC{n}") for n in range(1, 6)]
    sync.pull(cpo.partner.pk, full=True)
    partner.requests.clear()

    def progress(current: LocationSync) -> None:
        if current.pages == 1 and current.state == SyncState.RUNNING:
            partner.locations.pop(0)  # LOC1 leaves after the first page: LOC3 moves to 1

    result = sync.pull(cpo.partner.pk, full=True, progress=progress)

    assert [query(r.url) for r in partner.list_requests] == [
        {},
        {"offset": "2", "limit": "2"},  # announces 4, not 5: read again from one earlier
        {"offset": "1", "limit": "2"},
        {"offset": "3", "limit": "2"},
    ]
    assert result.state == SyncState.DONE
    assert result.total == 4
    # LOC3 was not skipped, so it is not taken for one the partner no longer lists.
    assert sorted(copies(cpo)) == [f"LOC{n}" for n in range(1, 6)]
    assert "deleted" not in result.message


def test_objects_read_twice_are_counted_once_against_the_total(cpo, partner):
    partner.locations = [served(f"LOC{n}") for n in range(1, 6)]
    sync.pull(cpo.partner.pk, full=True)

    def progress(current: LocationSync) -> None:
        if current.pages == 1 and current.state == SyncState.RUNNING:
            partner.locations.pop()  # LOC5 leaves: the list shrinks after our position

    result = sync.pull(cpo.partner.pk, full=True, progress=progress)

    assert result.state == SyncState.DONE
    assert "1 were read twice: the partner's list shrank during the pull." in result.message
    assert result.message.endswith(" 1 copies no longer listed by the partner were deleted.")
    assert sorted(copies(cpo)) == ["LOC1", "LOC2", "LOC3", "LOC4"]


@pytest.mark.parametrize(
    "relative", ["/ocpi/2.2.1/locations?{query}", "?{query}"], ids=["path", "query"]
)
def test_a_relative_link_is_followed_on_the_partners_host(cpo, relative):
    class RelativeLinks(LocationsPartner):
        def _page(self, request: Any) -> Any:
            response = super()._page(request)
            link = response.headers.get("Link")
            if link:
                target = urlsplit(link[1 : link.index(">")])
                response.headers["Link"] = f'<{relative.format(query=target.query)}>; rel="next"'
            return response

    fake = RelativeLinks(locations=[served(f"LOC{n}") for n in range(1, 6)])
    fake.accepted_tokens.add("partner-token-c")
    with use_transport(fake.transport()):
        result = sync.pull(cpo.partner.pk, full=True)

    assert result.state == SyncState.DONE, result.message
    assert [r.url for r in fake.list_requests] == [
        PARTNER_LOCATIONS,
        f"{PARTNER_LOCATIONS}?offset=2&limit=2",
        f"{PARTNER_LOCATIONS}?offset=4&limit=2",
    ]
    assert len(copies(cpo)) == 5


def test_a_pull_stopped_by_the_task_time_limit_ends_failed(cpo, partner):
    partner.locations = [served(f"LOC{n}") for n in range(1, 6)]
    original = partner._page

    def page(request: Any) -> Any:
        if query(str(request.url)).get("offset") == "2":
            raise SoftTimeLimitExceeded()
        return original(request)

    partner._page = page  # type: ignore[method-assign]

    message = tasks.pull_locations(partner_id=cpo.partner.pk, full=True)

    saved = row(cpo)
    assert saved.state == SyncState.FAILED
    assert saved.finished_at is not None
    assert message == saved.message
    assert message.startswith("Full sync failed after 1 pages: The pull was stopped after 3000 s")


def test_the_command_reports_a_waiting_pull_and_the_worker_continues_it(
    cpo, sent, django_capture_on_commit_callbacks
):
    busy = BusyPartner(locations=[served("LOC1")], busy={1: (429, "30")})
    out = io.StringIO()
    with use_transport(busy.transport()), django_capture_on_commit_callbacks(execute=True):
        call_command("ocpi_pull_locations", "be-cpo", "--json", stdout=out)

    result = json.loads(out.getvalue())
    assert result["state"] == SyncState.WAITING
    assert result["retry_at"] == format_datetime(row(cpo).retry_at)
    assert result["progress_at"] is not None
    assert sent == [{"kwargs": {"partner_id": cpo.partner.pk, "full": True}, "countdown": 30}]


def test_a_pulls_retry_after_holds_the_partners_pushes_too(
    cpo, sent, django_capture_on_commit_callbacks
):
    busy = BusyPartner(locations=[served("LOC1")], busy={1: (429, "8")})
    with use_transport(busy.transport()), django_capture_on_commit_callbacks(execute=True):
        assert sync.pull(cpo.partner.pk).state == SyncState.WAITING

    wait = outbox.asked_to_wait(cpo.partner.pk)
    assert wait is not None
    assert 7 < wait <= 8


def test_a_retry_after_met_by_a_push_makes_the_pull_wait_without_calling(
    cpo, partner, sent, django_capture_on_commit_callbacks
):
    outbox.hold(cpo.partner.pk, 30)  # what a push answered 429 + Retry-After: 30 leaves

    with django_capture_on_commit_callbacks(execute=True):
        waiting = sync.pull(cpo.partner.pk)

    assert waiting.state == SyncState.WAITING
    assert partner.requests == []
    assert f"waiting until {format_datetime(waiting.retry_at)}" in waiting.message
    assert "The partner asked us to wait." in waiting.message
    assert sent[0]["countdown"] in (29, 30)
    assert waiting.waits == 1  # counted with the pull's own waits

    time_has_come(cpo)
    assert sync.pull(cpo.partner.pk).state == SyncState.DONE


def test_a_pull_held_by_pushes_again_and_again_ends_failed(cpo, partner, sent):
    for _ in range(sync.MAX_WAITS):
        outbox.hold(cpo.partner.pk, 30)
        assert sync.pull(cpo.partner.pk).state == SyncState.WAITING
        time_has_come(cpo)
    outbox.hold(cpo.partner.pk, 30)

    failed = sync.pull(cpo.partner.pk)

    assert failed.state == SyncState.FAILED
    assert f"The partner asked us to wait {sync.MAX_WAITS + 1} times in a row." in failed.message
    assert partner.requests == []
