"""The /ocpi/ resolver remembers what a path resolved to; every request still gets a match of
its own, with the path's own ids."""

from __future__ import annotations

import pytest
from django.urls import Resolver404, get_resolver, resolve

from ocpi_platform.urls import RememberingResolver


def ocpi_resolver() -> RememberingResolver:
    found = next(p for p in get_resolver().url_patterns if isinstance(p, RememberingResolver))
    return found


def test_a_path_resolves_the_same_the_second_time_with_a_match_of_its_own():
    path = "/ocpi/2.2.1/receiver/tariffs/DE/ALL/T1"
    first, second = resolve(path), resolve(path)

    assert first is not second
    assert (first.func, first.kwargs, first.url_name, first.namespaces) == (
        second.func, second.kwargs, second.url_name, second.namespaces,
    )  # fmt: skip
    assert first.kwargs == {"country_code": "DE", "party_id": "ALL", "object_id": "T1"}
    assert first.view_name == "ocpi:tariffs-receiver-object"
    other = resolve("/ocpi/2.2.1/receiver/tariffs/DE/ALL/T2")
    assert other.kwargs["object_id"] == "T2"


def test_a_path_that_resolves_to_nothing_is_not_kept():
    resolver = ocpi_resolver()
    with pytest.raises(Resolver404):
        resolve("/ocpi/2.2.1/nothing-here")

    assert "ocpi/2.2.1/nothing-here" not in resolver._resolved


def test_the_memory_is_bounded(monkeypatch):
    resolver = ocpi_resolver()
    monkeypatch.setattr(RememberingResolver, "KEPT", 3)
    resolver._resolved.clear()
    for i in range(7):
        resolve(f"/ocpi/2.2.1/receiver/tariffs/DE/ALL/X{i}")

    assert 1 <= len(resolver._resolved) <= 3
    assert resolve("/ocpi/2.2.1/receiver/tariffs/DE/ALL/X0").kwargs["object_id"] == "X0"


def test_what_is_kept_holds_no_list_of_the_patterns_tried():
    """The tried patterns serve only a debug 404 page; kept, they were a dozen lists per path
    for the garbage collector to walk. A match still names the route it took."""
    resolver = ocpi_resolver()
    resolver._resolved.clear()
    match = resolve("/ocpi/2.2.1/sender/tokens/0123456789/authorize")

    kept = resolver._resolved["ocpi/2.2.1/sender/tokens/0123456789/authorize"]
    assert kept.tried is None
    assert match.route
    assert match.tried == [[resolver]]
