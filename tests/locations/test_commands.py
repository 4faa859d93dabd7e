"""ocpi_import_locations and ocpi_pull_locations: what they store, print and how they fail."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.core.management import CommandError, call_command

from locations import services
from locations.models import Location, LocationSync, SyncState
from ocpi_platform.ocpi.client import use_transport
from outbox.models import Delivery
from tests.conftest import FIXTURES, load_example
from tests.fakes.partner import FakePartner, Recorded, envelope
from tests.locations.conftest import PARTNER_LOCATIONS, example, own_location

pytestmark = pytest.mark.django_db

EXAMPLE = FIXTURES / "location_example.json"


def run(*args: str, **kwargs: Any) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err, **kwargs)
    return out.getvalue(), err.getvalue()


def failing(*args: str, **kwargs: Any) -> tuple[str, str, str]:
    """Run a command that must fail: stdout, stderr and the CommandError's message."""
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as info:
        call_command(*args, stdout=out, stderr=err, **kwargs)
    return out.getvalue(), err.getvalue(), str(info.value)


def write(tmp_path: Path, data: Any, name: str = "locations.json") -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


# --- ocpi_import_locations ---------------------------------------------------------------------


def test_import_of_the_spec_example_gives_it_back_unchanged(settings, emsp):
    settings.OCPI_PARTIES = "BE:BEC:CPO,NL:ABC:EMSP"  # the example's party is ours

    out, _ = run("ocpi_import_locations", str(EXAMPLE), "--json")

    summary = json.loads(out)
    assert (summary["created"], summary["updated"], summary["failed"]) == (1, 0, 0)
    assert summary["locations"][0]["location"] == "BE/BEC/LOC1"
    location = Location.objects.get(partner=None, location_id="LOC1")
    assert services.document(location) == load_example("location_example.json")
    delivery = Delivery.objects.get(partner=emsp.partner)
    assert (delivery.method, delivery.path) == ("PUT", "BE/BEC/LOC1")

    # Again: an update of ours is stamped now, whatever the file says.
    out, _ = run("ocpi_import_locations", str(EXAMPLE))
    assert "updated  BE/BEC/LOC1" in out
    assert "0 created, 1 updated, 0 failed." in out
    location.refresh_from_db()
    assert location.last_updated.year > 2015


def test_no_keep_timestamps_stamps_new_locations_now(tmp_path):
    out, _ = run(
        "ocpi_import_locations", write(tmp_path, own_location("LOC7")), "--no-keep-timestamps"
    )

    assert "created  NL/ABC/LOC7" in out
    document = services.document(Location.objects.get(location_id="LOC7"))
    assert document["last_updated"] != "2015-06-29T20:39:09Z"
    assert document["evses"][0]["connectors"][0]["last_updated"] != "2015-03-16T10:10:02Z"


def test_bad_locations_are_reported_and_the_others_imported(tmp_path):
    missing_address = own_location("LOC2")
    del missing_address["address"]
    items = [
        own_location("LOC1"),
        missing_address,
        example(),  # BE/BEC: not one of our parties in the test settings
        "not an object",
    ]

    out, err, error = failing("ocpi_import_locations", write(tmp_path, items))

    assert "created  NL/ABC/LOC1" in out
    assert "1 created, 0 updated, 3 failed." in out
    assert "failed   NL/ABC/LOC2: Invalid location: address" in err
    assert "failed   BE/BEC/LOC1: BE/BEC is not one of our CPO parties" in err
    assert "[3]: expected a Location object" in err
    assert error == "3 of 4 could not be imported."
    assert list(Location.objects.values_list("location_id", flat=True)) == ["LOC1"]


def test_json_summary_lists_the_errors(tmp_path):
    bad = own_location("LOC2", coordinates={"latitude": "51.04", "longitude": "3.729944"})

    out, _, _ = failing("ocpi_import_locations", write(tmp_path, [bad]), "--json")

    summary = json.loads(out)
    assert summary["failed"] == 1
    [result] = summary["locations"]
    assert result["location"] == "NL/ABC/LOC2"
    assert result["result"] == "failed"
    assert "coordinates.latitude" in result["error"]


def test_a_file_that_is_not_json_is_a_clear_error(tmp_path):
    good = write(tmp_path, own_location("LOC1"), "good.json")
    bad = write(tmp_path, "country_code: NL\n", "bad.json")

    out, err, error = failing("ocpi_import_locations", bad, good, str(tmp_path / "missing.json"))

    assert f"{bad}: is not JSON: Expecting value (line 1, column 1)" in err
    assert "missing.json: cannot be read: No such file or directory" in err
    assert "1 created, 0 updated, 2 failed." in out
    assert error == "2 of 3 could not be imported."


def test_reads_an_envelope_from_stdin():
    body = envelope([own_location("LOC1"), own_location("LOC2")])

    out, _ = run("ocpi_import_locations", "-", stdin=StringIO(json.dumps(body)))

    assert "2 created, 0 updated, 0 failed." in out
    assert Location.objects.filter(partner=None).count() == 2


# --- ocpi_pull_locations -----------------------------------------------------------------------


class LocationsPartner(FakePartner):
    """The fake partner with a locations SENDER interface: two pages of one location each."""

    def __init__(self, pages: list[list[Any]]) -> None:
        super().__init__()
        self.accepted_tokens.add("partner-token-c")  # make_registered's outbound token
        self.pages = pages

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self._scripted or not str(request.url).startswith(PARTNER_LOCATIONS):
            return super().handler(request)
        self.requests.append(
            Recorded(request.method, str(request.url), request.url.path, request.headers, None)
        )
        if self._token(request) not in self.accepted_tokens:
            return httpx.Response(401, json=envelope(status_code=2000, message="Unauthorized"))
        offset = int(request.url.params.get("offset", "0"))
        headers = {"X-Total-Count": str(sum(len(p) for p in self.pages))}
        if offset + 1 < len(self.pages):
            headers["Link"] = f'<{PARTNER_LOCATIONS}?offset={offset + 1}&limit=1>; rel="next"'
        return httpx.Response(200, json=envelope(self.pages[offset]), headers=headers)


def partner_location(location_id: str, **changes: Any) -> dict[str, Any]:
    data = example()
    data.update(id=location_id, **changes)
    return data


def test_pull_stores_the_partners_locations_and_prints_the_summary(cpo):
    fake = LocationsPartner([[partner_location("LOC1")], [partner_location("LOC2")]])
    with use_transport(fake.transport()):
        out, _ = run("ocpi_pull_locations", "be-cpo", "--full")

    assert out.strip() == "Full sync: 2 pages, 2 locations received, 2 stored, 0 rejected."
    stored = Location.objects.filter(partner=cpo.partner).order_by("location_id")
    assert [loc.location_id for loc in stored] == ["LOC1", "LOC2"]
    assert services.document(stored[0]) == load_example("location_example.json")
    sync = LocationSync.objects.get(partner=cpo.partner)
    assert (sync.state, sync.total, sync.synced_until is not None) == (SyncState.DONE, 2, True)

    # The next pull asks for the changes since the last one; --json for scripts.
    fake.pages = [[partner_location("LOC3", name=None)]]
    with use_transport(fake.transport()):
        result = json.loads(run("ocpi_pull_locations", "be-cpo", "--json")[0])
    assert "date_from=" in fake.requests[-1].url
    assert result["state"] == "DONE"
    assert (result["full"], result["received"], result["stored"]) == (False, 1, 1)


def test_pull_fails_when_the_partner_fails_or_cannot_be_pulled(cpo, emsp):
    fake = LocationsPartner([[partner_location("LOC1")]])
    fake.respond_next(503, "busy", content_type="text/plain")
    with use_transport(fake.transport()):
        out, _, error = failing("ocpi_pull_locations", "be-cpo", "--json")
    assert json.loads(out)["state"] == "FAILED"
    assert "Full sync failed after 0 pages" in error

    _, _, error = failing("ocpi_pull_locations", "de-emsp")
    assert error == "de-emsp has no locations SENDER endpoint."
    _, _, error = failing("ocpi_pull_locations", "nobody")
    assert error == "No partner named 'nobody'."


def test_queue_only_requests_the_pull(cpo, emsp, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        out, _ = run("ocpi_pull_locations", "be-cpo", "--queue", "--full", "--json")

    assert json.loads(out) == {"partner": "be-cpo", "queued": True, "full": True}
    assert len(callbacks) == 1
    assert LocationSync.objects.get(partner=cpo.partner).state == SyncState.QUEUED
    _, _, error = failing("ocpi_pull_locations", "de-emsp", "--queue")
    assert error == "Cannot pull the locations of de-emsp: it offers no locations SENDER endpoint."
