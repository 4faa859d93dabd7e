"""Object ids in URLs: each id is one percent-encoded segment.

A CiString id may hold any printable ASCII, '/', '?', '#' and '%' included. Our pushes put each
id in one encoded segment, and our receiver reads such a segment back as the id (from the raw
request target that gunicorn gives as ``RAW_URI``: the decoded path cannot tell an encoded '/'
from a separator).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from locations import push, services
from locations.models import Connector, Evse, Location
from locations.paths import ObjectPath, segments_as_sent
from ocpi_platform.ocpi.client import use_transport
from outbox import services as outbox
from outbox.models import Delivery, DeliveryState
from outbox.tasks import deliver
from tests.conftest import b64
from tests.fakes.partner import envelope
from tests.locations.conftest import RECEIVER, example, own_location

pytestmark = pytest.mark.django_db

ODD = "FT/5?x#y%z"
ODD_SEGMENT = "FT%2F5%3Fx%23y%25z"
EVSE_UID = "E/1"
CONNECTOR_ID = "#1"
PARTNER_PATH = "/ocpi/2.2.1/locations"  # the emsp fixture's receiver endpoint


@pytest.fixture(autouse=True)
def _no_drain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deliver, "apply_async", lambda **kwargs: None)


@pytest.fixture
def received() -> Iterator[list[httpx.Request]]:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json=envelope())

    with use_transport(httpx.MockTransport(handler)):
        yield requests


def odd_location(location_id: str = ODD) -> dict[str, Any]:
    data = own_location(location_id)
    data["evses"][0]["uid"] = EVSE_UID
    data["evses"][0]["connectors"][0]["id"] = CONNECTOR_ID
    return data


def deliver_all(partner_id: int) -> None:
    outbox.drain(partner_id)
    Delivery.objects.update(state=DeliveryState.SENT)


def test_the_path_encodes_each_id_as_one_segment():
    path = ObjectPath("NL", "ABC", ODD, EVSE_UID, CONNECTOR_ID)

    assert path.path == f"NL/ABC/{ODD_SEGMENT}/E%2F1/%231"
    assert path.key == f"NL/ABC/{ODD_SEGMENT.upper()}/E%2F1/%231"
    assert ObjectPath.from_key(path.key) == ObjectPath("NL", "ABC", ODD.upper(), "E/1", "#1")
    assert ObjectPath.from_key(path.path) == path
    assert str(path) == f"NL/ABC/{ODD}/E/1/#1"  # messages show the ids as given


def test_pushes_of_an_odd_id_reach_the_partner_at_its_encoded_path(emsp, received):
    partner_id = emsp.partner.pk
    location = ODD_SEGMENT

    services.put(ObjectPath("NL", "ABC", ODD), odd_location(), owner=None)
    [row] = Delivery.objects.all()
    assert (row.path, row.key) == (f"NL/ABC/{location}", f"NL/ABC/{location.upper()}")
    deliver_all(partner_id)
    services.set_evse_status(ObjectPath("NL", "ABC", ODD, EVSE_UID), "CHARGING")
    deliver_all(partner_id)
    body = {"max_voltage": 400, "last_updated": "2030-01-01T00:00:00Z"}
    services.patch(ObjectPath("NL", "ABC", ODD, EVSE_UID, CONNECTOR_ID), body, owner=None)
    deliver_all(partner_id)

    assert [(r.method, r.url.raw_path.decode()) for r in received] == [
        ("PUT", f"{PARTNER_PATH}/NL/ABC/{location}"),
        ("PATCH", f"{PARTNER_PATH}/NL/ABC/{location}/E%2F1"),
        ("PATCH", f"{PARTNER_PATH}/NL/ABC/{location}/E%2F1/%231"),
    ]
    assert json.loads(received[0].content)["id"] == ODD
    assert not received[0].url.query  # the '?' of the id is not a query string


def test_an_odd_id_does_not_fold_into_another_object(emsp):
    """Location 'FT/5' is not EVSE '5' of location 'FT': their changes are two rows."""
    with_evse_5 = own_location("FT")
    with_evse_5["evses"][0]["uid"] = "5"
    services.put(ObjectPath("NL", "ABC", "FT"), with_evse_5, owner=None)
    services.put(ObjectPath("NL", "ABC", "FT/5"), own_location("FT/5"), owner=None)
    Delivery.objects.update(state=DeliveryState.SENT)

    services.set_evse_status(ObjectPath("NL", "ABC", "FT", "5"), "CHARGING")
    body = {"name": "Renamed", "last_updated": "2030-01-01T00:00:00Z"}
    services.patch(ObjectPath("NL", "ABC", "FT/5"), body, owner=None)

    rows = Delivery.objects.filter(state=DeliveryState.PENDING).order_by("id")
    assert [(r.method, r.path, sorted(r.body)) for r in rows] == [
        ("PATCH", "NL/ABC/FT/5", ["last_updated", "status"]),
        ("PATCH", "NL/ABC/FT%2F5", ["last_updated", "name"]),
    ]


def test_the_longest_encoded_path_fits_the_outbox(emsp):
    """Three ids of 36 characters that each encode to 108: the connector's row still stores."""
    location_id, uid, connector_id = "%" * 36, "/" * 36, "#" * 36
    data = own_location(location_id)
    data["evses"][0]["uid"] = uid
    data["evses"][0]["connectors"][0]["id"] = connector_id
    services.put(ObjectPath("NL", "ABC", location_id), data, owner=None)
    Delivery.objects.update(state=DeliveryState.SENT)

    body = {"max_voltage": 400, "last_updated": "2030-01-01T00:00:00Z"}
    services.patch(ObjectPath("NL", "ABC", location_id, uid, connector_id), body, owner=None)

    row = Delivery.objects.get(state=DeliveryState.PENDING)
    assert len(row.path) == len("NL/ABC/") + 3 * 108 + 2
    assert row.path == "NL/ABC/" + "/".join(["%25" * 36, "%2F" * 36, "%23" * 36])


def test_a_retry_reads_the_current_body_of_the_odd_id(emsp):
    services.put(ObjectPath("NL", "ABC", ODD), odd_location(), owner=None)
    services.put(ObjectPath("NL", "ABC", "FT"), own_location("FT"), owner=None)
    key = ObjectPath("NL", "ABC", ODD, EVSE_UID).key

    found = push.current_body(key)

    assert found is not None
    assert found["uid"] == EVSE_UID


# --- our receiver ----------------------------------------------------------------------------


def call(api: Any, cpo: Any, method: str, path: str, body: Any, *, raw: bool = True) -> Any:
    """A request as gunicorn hands it to us: RAW_URI is the target as sent."""
    extra = {"RAW_URI": path} if raw else {}
    response = api.client.generic(
        method,
        path,
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Token {b64(cpo.inbound_token)}"},
        **extra,
    )
    return response.status_code, json.loads(response.content)


def partner_location() -> dict[str, Any]:
    data = example()
    data["id"] = ODD
    data["evses"][0]["uid"] = EVSE_UID
    data["evses"][0]["connectors"][0]["id"] = CONNECTOR_ID
    return data


def test_our_receiver_stores_the_decoded_id(api, cpo):
    path = ObjectPath("BE", "BEC", ODD)  # what a partner running this code sends
    url = f"{RECEIVER}/{path.path}"
    stamp = "2030-01-01T00:00:00Z"

    status, reply = call(api, cpo, "PUT", url, partner_location())
    assert (status, reply["status_code"]) == (201, 1000), reply
    evse_url = f"{url}/E%2F1"
    status, reply = call(api, cpo, "PATCH", evse_url, {"status": "CHARGING", "last_updated": stamp})
    assert (status, reply["status_code"]) == (200, 1000), reply
    body = {"max_voltage": 400, "last_updated": stamp}
    status, reply = call(api, cpo, "PATCH", f"{evse_url}/%231/", body)  # trailing slash too
    assert (status, reply["status_code"]) == (200, 1000), reply
    status, reply = call(api, cpo, "GET", f"{evse_url}/%231", None)

    assert reply["data"]["max_voltage"] == 400
    location = Location.objects.get()
    assert location.location_id == ODD
    assert Evse.objects.get(uid=EVSE_UID).status == "CHARGING"
    assert Connector.objects.get(evse__uid=EVSE_UID, connector_id=CONNECTOR_ID).max_voltage == 400


def test_without_the_raw_target_an_encoded_slash_never_reaches_another_object(api, cpo):
    """A server that gives only the decoded path: FT/5?x#y%z reads as location FT, EVSE 5?x#y%z;
    nothing of that name is stored, the PUT is refused."""
    url = f"{RECEIVER}/BE/BEC/{ODD_SEGMENT}"

    _, reply = call(api, cpo, "PUT", url, partner_location(), raw=False)

    assert reply["status_code"] != 1000, reply
    assert not Location.objects.exists()


def test_more_segments_than_ids_are_404(api, cpo):
    url = f"{RECEIVER}/BE/BEC/LOC1/3256/1/extra"
    for raw in (True, False):
        status, reply = call(api, cpo, "GET", url, None, raw=raw)
        assert (status, reply["status_code"]) == (404, 2000), reply


def test_the_raw_target_is_used_only_when_it_spells_the_path():
    path = f"{RECEIVER}/BE/BEC/FT/5"
    assert segments_as_sent(f"{RECEIVER}/BE/BEC/FT%2F5", path, "/receiver/locations/") == [
        "BE",
        "BEC",
        "FT/5",
    ]
    assert segments_as_sent(f"http://h{RECEIVER}/BE/BEC/FT%2F5?a=1", path, "/receiver/locations/")
    assert segments_as_sent("/elsewhere/BE/BEC/FT%2F5", path, "/receiver/locations/") is None
    assert segments_as_sent(None, path, "/receiver/locations/") is None
