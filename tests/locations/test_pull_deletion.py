"""A complete full pull deletes only the copies the partner really no longer has.

Two ways a copy the partner still lists used to be deleted (review r2):

* the partner pushed it to us after serving its last page, before the unlisted copies were
  deleted: only copies not written since the pull started are candidates;
* a drop and an add between two pages leave ``X-Total-Count`` unchanged, so the shrink is not
  seen and one object is never read: before a copy is deleted, the partner's sender is asked
  for it (``GET {locations}/{location_id}``), and only "it does not exist" deletes it.

The concurrent tests run the partner's push in another thread with its own connection, on
committed data (``transaction=True``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from django.db import connections

from kit import sync as kit_sync
from locations import services, sync
from locations.models import Location, LocationSync, SyncState
from locations.paths import ObjectPath
from ocpi_platform.ocpi.client import use_transport
from ocpi_platform.ocpi.types import format_datetime, now_utc
from tests.conftest import RegisteredPartner
from tests.fakes.locations_partner import LocationsPartner
from tests.fakes.partner import envelope
from tests.locations.conftest import PARTNER_LOCATIONS, example


def served(location_id: str, **changes: Any) -> dict[str, Any]:
    """The spec's example location (BE/BEC) under another id."""
    data = example()
    data.update({"id": location_id, "name": f"Station {location_id}", **changes})
    return data


def offset_of(request: httpx.Request) -> int:
    return int(parse_qs(request.url.query.decode()).get("offset", ["0"])[-1])


def ids(cpo: RegisteredPartner) -> list[str]:
    return sorted(
        Location.objects.filter(partner=cpo.partner).values_list("location_id", flat=True)
    )


def object_ids(fake: LocationsPartner) -> list[str]:
    return [r.path.rsplit("/", 1)[1] for r in fake.object_requests]


@pytest.fixture
def fake() -> LocationsPartner:
    return LocationsPartner(accepted_tokens={"partner-token-c"})


@pytest.fixture
def hooked(fake: LocationsPartner) -> Iterator[list[Callable[[httpx.Request], None]]]:
    """Every outbound call goes to ``fake``; the hooks appended run after each of its answers."""
    hooks: list[Callable[[httpx.Request], None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        reply = fake.handler(request)
        for hook in hooks:
            hook(request)
        return reply

    with use_transport(httpx.MockTransport(handler)):
        yield hooks


def in_thread(work: Callable[[], object]) -> None:
    """Run ``work`` in another thread with its own database connection, and wait for it."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert not failures, failures


# --- 1. a copy written during the pull is not a candidate -------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_location_pushed_after_the_last_page_is_kept(cpo, fake, hooked):
    fake.locations = [served(f"LOC{n}") for n in range(1, 6)]
    sync.pull(cpo.partner.pk, full=True)  # LOC1..LOC5: pages at offsets 0, 2, 4
    fake.requests.clear()
    new = served("LOC6", last_updated=format_datetime(now_utc()))

    def partner_pushes_after_its_last_page(request: httpx.Request) -> None:
        if request.method == "GET" and not fake.object_requests and offset_of(request) == 4:
            fake.locations.append(new)  # too late for the page just served
            in_thread(
                lambda: services.put(ObjectPath("BE", "BEC", "LOC6"), new, owner=cpo.partner.pk)
            )

    hooked.append(partner_pushes_after_its_last_page)
    result = sync.pull(cpo.partner.pk, full=True)

    assert result.state == SyncState.DONE
    assert ids(cpo) == ["LOC1", "LOC2", "LOC3", "LOC4", "LOC5", "LOC6"]
    # Kept because it was written during the pull, not because the partner was asked for it.
    assert fake.object_requests == []
    assert "deleted" not in result.message
    assert "1 copies not listed were written during the pull (a push) and kept." in result.message


@pytest.mark.django_db(transaction=True)
def test_a_copy_pushed_while_its_check_is_answered_is_not_deleted(cpo, fake, hooked):
    fake.locations = [served("LOC1"), served("LOC2")]
    sync.pull(cpo.partner.pk, full=True)
    fake.locations = [served("LOC1")]  # LOC2 leaves the list ...
    newer_stamp = now_utc().replace(microsecond=0)
    newer = served("LOC2", last_updated=format_datetime(newer_stamp))

    def partner_pushes_during_the_check(request: httpx.Request) -> None:
        if fake.object_requests and request.url.path.endswith("/LOC2"):
            # ... and comes back, pushed to us while its "unknown" answer is on the way.
            in_thread(
                lambda: services.put(ObjectPath("BE", "BEC", "LOC2"), newer, owner=cpo.partner.pk)
            )

    hooked.append(partner_pushes_during_the_check)
    result = sync.pull(cpo.partner.pk, full=True)

    assert object_ids(fake) == ["LOC2"]  # answered HTTP 404
    assert ids(cpo) == ["LOC1", "LOC2"]
    assert Location.objects.get(location_id="LOC2").last_updated == newer_stamp
    assert "deleted" not in result.message
    assert "1 copies not listed were written during the pull (a push) and kept." in result.message


# --- 2. the partner is asked before a copy is deleted -----------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_drop_and_an_add_between_pages_do_not_delete_the_copy_never_read(cpo, fake, hooked):
    fake.locations = [served(f"L{n}") for n in range(1, 5)]
    sync.pull(cpo.partner.pk, full=True)
    assert ids(cpo) == ["L1", "L2", "L3", "L4"]

    def drop_and_add_after_the_first_page(request: httpx.Request) -> None:
        if request.method == "GET" and not fake.object_requests and offset_of(request) == 0:
            # between our two pages L2 goes and L5 comes: X-Total-Count stays 4, L3 moves to
            # offset 1 (read already) and is never served by the pages.
            fake.locations[:] = [
                served("L1"),
                served("L3", name="L3 renamed"),
                served("L4"),
                served("L5"),
            ]

    hooked.append(drop_and_add_after_the_first_page)
    result = sync.pull(cpo.partner.pk, full=True)

    assert result.state == SyncState.DONE
    assert result.received == 4  # L1, L2, then L4, L5: the count matched, the shrink unseen
    assert object_ids(fake) == ["L3"]  # L2 was read on the first page: listed, kept
    assert ids(cpo) == ["L1", "L2", "L3", "L4", "L5"]
    # L3 was stored from the partner's answer to its GET.
    assert services.document(Location.objects.get(location_id="L3"))["name"] == "L3 renamed"
    assert result.message.endswith(
        " 1 copies not listed were still served by the partner (GET of the object) and stored."
    )


@pytest.mark.django_db
def test_the_check_is_a_get_of_the_senders_object_through_the_partners_client(cpo, fake, hooked):
    fake.locations = [served("LOC1"), served("A/B 1")]
    sync.pull(cpo.partner.pk, full=True)
    fake.locations = [served("LOC1")]
    fake.requests.clear()

    sync.pull(cpo.partner.pk, full=True)

    (check,) = fake.object_requests
    assert check.url == f"{PARTNER_LOCATIONS}/A%2FB%201"  # the id is one path segment
    assert check.headers["Authorization"].startswith("Token ")  # our token for the partner
    assert check.headers["OCPI-to-country-code"] == "BE"  # the copy's party
    assert check.headers["OCPI-to-party-id"] == "BEC"
    assert check.headers["OCPI-from-party-id"] == "ABC"
    assert ids(cpo) == ["LOC1"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "answer",
    [
        (404, envelope(status_code=2000, message="Not found")),
        (404, {"error": "no such thing"}),  # HTTP 404 without an envelope
        (200, envelope(status_code=2003, message="Unknown Location")),
    ],
    ids=["404", "404-no-envelope", "2003"],
)
def test_an_answer_that_the_object_does_not_exist_deletes_the_copy(cpo, fake, hooked, answer):
    fake.locations = [served("LOC1"), served("LOC2")]
    sync.pull(cpo.partner.pk, full=True)
    fake.locations = [served("LOC1")]
    fake.object_answers["LOC2"] = answer

    result = sync.pull(cpo.partner.pk, full=True)

    assert ids(cpo) == ["LOC1"]
    assert result.message.endswith(" 1 copies no longer listed by the partner were deleted.")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "failure",
    [
        (503, envelope(status_code=3000, message="Database down")),
        (200, envelope(status_code=3000, message="Try later")),
        httpx.ConnectTimeout("timed out"),
    ],
    ids=["503", "3000", "timeout"],
)
def test_a_transient_failure_of_a_check_keeps_the_copies_and_says_so(cpo, fake, hooked, failure):
    fake.locations = [served(f"LOC{n}") for n in range(1, 5)]
    sync.pull(cpo.partner.pk, full=True)
    fake.locations = [served("LOC1"), served("LOC4")]
    fake.object_answers["LOC2"] = failure

    result = sync.pull(cpo.partner.pk, full=True)

    assert result.state == SyncState.DONE
    assert object_ids(fake) == ["LOC2"]  # the partner is not asked again during this pull
    assert ids(cpo) == ["LOC1", "LOC2", "LOC3", "LOC4"]
    assert "deleted" not in result.message
    assert "Checking the copies not listed stopped at BE/BEC/LOC2: GET " in result.message
    assert "2 copies not listed were kept until a later full pull." in result.message


@pytest.mark.django_db
@pytest.mark.parametrize(
    "refusal",
    [
        (405, envelope(status_code=2000, message="No such method")),
        # A hub's 404 that names a hub error says nothing about the object.
        (404, envelope(status_code=4001, message="Unknown receiver")),
    ],
    ids=["405", "hub-404-4001"],
)
def test_a_refusal_that_is_not_unknown_keeps_that_copy_and_the_checks_go_on(
    cpo, fake, hooked, refusal
):
    fake.locations = [served(f"LOC{n}") for n in range(1, 5)]
    sync.pull(cpo.partner.pk, full=True)
    fake.locations = [served("LOC1"), served("LOC3")]
    fake.object_answers["LOC2"] = refusal

    result = sync.pull(cpo.partner.pk, full=True)

    assert object_ids(fake) == ["LOC2", "LOC4"]
    assert ids(cpo) == ["LOC1", "LOC2", "LOC3"]
    assert "1 copies not listed were kept: the partner did not answer that they do not exist " in (
        result.message
    )
    assert "BE/BEC/LOC2: GET " in result.message
    assert result.message.endswith(" 1 copies no longer listed by the partner were deleted.")


@pytest.mark.django_db
def test_an_answer_with_another_or_an_invalid_object_keeps_the_copy(cpo, fake, hooked):
    fake.locations = [served(f"LOC{n}") for n in range(1, 4)]
    sync.pull(cpo.partner.pk, full=True)
    before = services.document(Location.objects.get(location_id="LOC3"))
    fake.locations = [served("LOC1")]
    fake.object_answers["LOC2"] = (200, envelope(served("LOC9")))
    fake.object_answers["LOC3"] = (200, envelope(served("LOC3", address=None)))

    result = sync.pull(cpo.partner.pk, full=True)

    assert ids(cpo) == ["LOC1", "LOC2", "LOC3"]
    assert services.document(Location.objects.get(location_id="LOC3")) == before
    assert "2 copies not listed were kept: the partner did not answer that they do not exist " in (
        result.message
    )
    assert "deleted" not in result.message


@pytest.mark.django_db
def test_the_checks_per_pull_are_bounded_and_the_rest_is_kept(cpo, fake, hooked, monkeypatch):
    monkeypatch.setattr(kit_sync, "MAX_CHECKS", 2)
    fake.locations = [served(f"LOC{n}") for n in range(1, 6)]
    sync.pull(cpo.partner.pk, full=True)
    fake.locations = [served("LOC1")]

    result = sync.pull(cpo.partner.pk, full=True)

    assert object_ids(fake) == ["LOC2", "LOC3"]
    assert ids(cpo) == ["LOC1", "LOC4", "LOC5"]
    assert (
        "2 more copies not listed were kept unchecked (at most 2 are checked per pull); "
        "a later full pull checks them." in result.message
    )
    assert result.message.endswith(" 2 copies no longer listed by the partner were deleted.")

    again = sync.pull(cpo.partner.pk, full=True)  # the next full pull goes on

    assert ids(cpo) == ["LOC1"]
    assert again.message.endswith(" 2 copies no longer listed by the partner were deleted.")


@pytest.mark.django_db
def test_the_pull_stays_running_and_reports_progress_while_it_checks(cpo, fake, hooked):
    fake.locations = [served(f"LOC{n}") for n in range(1, 4)]
    sync.pull(cpo.partner.pk, full=True)
    fake.locations = [served("LOC1")]
    rows = LocationSync.objects.filter(partner=cpo.partner)
    seen: list[tuple[str, bool]] = []

    def during_the_checks(request: httpx.Request) -> None:
        if len(fake.object_requests) == 1:
            rows.update(progress_at=now_utc() - timedelta(hours=1))  # as if the check was slow
        elif fake.object_requests:
            row = rows.get()
            seen.append((row.state, row.progress_at > now_utc() - timedelta(minutes=1)))

    hooked.append(during_the_checks)
    result = sync.pull(cpo.partner.pk, full=True)

    # Still RUNNING (not DONE before the checks are over), and alive: no second pull starts.
    assert seen == [(SyncState.RUNNING, True)]
    assert result.state == SyncState.DONE
    assert ids(cpo) == ["LOC1"]
