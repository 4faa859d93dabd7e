"""OcpiView: DRF's APIView with its policy objects made once; DRF's behaviour unchanged."""

from __future__ import annotations

import pytest
from django.urls import path
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from ocpi_platform.ocpi.envelope import ocpi_response
from ocpi_platform.ocpi.views import OcpiView

made: list[type] = []


class Counted(BasePermission):
    def __init__(self) -> None:
        made.append(type(self))

    def has_permission(self, request: Request, view: object) -> bool:
        return True


class CountedOther(Counted):
    pass


class GetOnly(OcpiView):
    permission_classes = [Counted]

    def get(self, request: Request):
        return ocpi_response({"who": request.user.partner_name})


class GetAndPut(OcpiView):
    permission_classes = [CountedOther]

    def get(self, request: Request):
        return ocpi_response({})

    def put(self, request: Request):
        return ocpi_response({})


urlpatterns = [
    path("ocpi/2.2.1/get-only", GetOnly.as_view()),
    path("ocpi/2.2.1/get-and-put", GetAndPut.as_view()),
]


@pytest.fixture
def view_urls(settings):
    from ocpi_platform import urls

    settings.ROOT_URLCONF = __name__
    globals()["urlpatterns"] = [*urlpatterns, *urls.urlpatterns]


def test_policy_objects_are_made_once_per_set_of_classes(api, registered, view_urls):
    made.clear()
    for _ in range(3):
        assert api.get("/ocpi/2.2.1/get-only", token=registered.inbound_token).status == 200
        assert api.get("/ocpi/2.2.1/get-and-put", token=registered.inbound_token).status == 200

    assert made.count(Counted) <= 1
    assert made.count(CountedOther) <= 1


def test_authentication_still_runs_on_every_request(api, registered, view_urls):
    assert api.get("/ocpi/2.2.1/get-only", token=registered.inbound_token).body["data"] == {
        "who": registered.partner.name
    }
    reply = api.get("/ocpi/2.2.1/get-only", token="not-a-token")

    assert reply.status == 401
    assert reply.body["status_code"] == 2000


def test_allow_names_each_view_class_own_methods(api, registered, view_urls):
    one = api.delete("/ocpi/2.2.1/get-only", token=registered.inbound_token)
    two = api.delete("/ocpi/2.2.1/get-and-put", token=registered.inbound_token)

    assert one.status == two.status == 405
    assert one.headers["Allow"] == "GET, OPTIONS"  # as DRF says it
    assert two.headers["Allow"] == "GET, PUT, OPTIONS"
