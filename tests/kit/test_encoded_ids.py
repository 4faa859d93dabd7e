"""An id holding an encoded '/' (a CiString may): the kit receiver reads the ids from the raw
request target, as gunicorn gives it (RAW_URI), like the locations receiver does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tariffs.models import Tariff
from tests.conftest import b64
from tests.tariffs.conftest import RECEIVER, example

pytestmark = pytest.mark.django_db

ODD_ID = "T/1"
ODD_URL = f"{RECEIVER}/DE/ALL/T%2F1"


def call(api: Any, cpo: Any, method: str, body: Any = None, *, raw: bool = True) -> Any:
    extra = {"RAW_URI": ODD_URL} if raw else {}
    response = api.client.generic(
        method,
        ODD_URL,
        data=json.dumps(body) if body is not None else "",
        content_type="application/json",
        headers={"Authorization": f"Token {b64(cpo.inbound_token)}"},
        **extra,
    )
    return response.status_code, json.loads(response.content)


def test_a_put_get_and_delete_of_an_id_with_an_encoded_slash(api, cpo):
    data = {**example(), "id": ODD_ID}

    status, reply = call(api, cpo, "PUT", data)
    assert (status, reply["status_code"]) == (201, 1000), reply
    assert Tariff.objects.get().object_id == ODD_ID

    status, reply = call(api, cpo, "GET")
    assert (status, reply["data"]["id"]) == (200, ODD_ID)

    status, reply = call(api, cpo, "DELETE")
    assert (status, reply["status_code"]) == (200, 1000), reply
    assert not Tariff.objects.exists()


def test_without_the_raw_target_the_extra_segment_is_404_and_nothing_stored(api, cpo):
    status, reply = call(api, cpo, "PUT", {**example(), "id": ODD_ID}, raw=False)

    assert (status, reply["status_code"]) == (404, 2000), reply
    assert "each id one (encoded) segment" in reply["status_message"]
    assert not Tariff.objects.exists()


def test_more_segments_than_ids_are_404(api, cpo):
    url = f"{RECEIVER}/DE/ALL/12/extra"
    for extra in ({"RAW_URI": url}, {}):
        response = api.client.generic(
            "GET", url, headers={"Authorization": f"Token {b64(cpo.inbound_token)}"}, **extra
        )
        reply = json.loads(response.content)
        assert (response.status_code, reply["status_code"]) == (404, 2000), reply
