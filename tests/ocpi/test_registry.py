"""The module registry: one enum of the 2.2.1 module ids, routes mounted by the apps."""

from __future__ import annotations

from django.urls import resolve

from ocpi_platform.ocpi import registry


def test_the_module_ids_are_those_of_ocpi_2_2_1():
    assert sorted(registry.ModuleId) == [
        "cdrs",
        "chargingprofiles",
        "commands",
        "credentials",
        "hubclientinfo",
        "locations",
        "sessions",
        "tariffs",
        "tokens",
    ]


def test_each_app_mounts_its_own_routes():
    assert sorted(registry.url_modules()) == [
        ("", "credentials.urls"),
        ("2.2.1/", "hubclientinfo.urls"),
        ("2.2.1/", "kit.urls"),  # the routes of every module declared to the kit (tariffs)
        ("2.2.1/", "locations.urls"),
        ("2.2.1/", "tokens.urls"),
    ]


def test_every_registered_endpoint_is_routed_where_it_is_advertised():
    for endpoint in registry._endpoints.values():
        path = endpoint.url().removeprefix(registry.public_url(""))
        match = resolve(path)
        assert f"ocpi:{match.url_name}" == endpoint.url_name, endpoint
        assert endpoint.serves(match.view_name)


def test_mounting_twice_mounts_once():
    before = registry.url_modules()
    registry.mount("locations.urls")
    assert registry.url_modules() == before
