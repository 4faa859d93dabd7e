"""Reading a partner's versions and details, with the spec's own examples."""

from __future__ import annotations

import pytest

from credentials.discovery import choose_version, parse_endpoints
from ocpi_platform.ocpi.errors import NoMutualEndpoints, PartnerApiUnusable, UnsupportedVersion
from tests.conftest import load_example


def test_spec_versions_example_gives_2_2_1():
    assert choose_version(load_example("versions_info_example.json"), None) == (
        "2.2.1",
        "https://www.server.com/ocpi/2.2.1",
    )


def test_envelope_example_data_is_read_the_same_way():
    envelope = load_example("transport_and_format_version_info_example.json")
    with pytest.raises(UnsupportedVersion):
        choose_version(envelope["data"], "2.2.1")


def test_highest_mutual_version_is_chosen():
    versions = [
        {"version": "2.1.1", "url": "https://p.example/2.1.1"},
        {"version": "2.2.1", "url": "https://p.example/2.2.1"},
    ]
    assert choose_version(versions, None) == ("2.2.1", "https://p.example/2.2.1")


@pytest.mark.parametrize("payload", [None, [], {"version": "2.2.1"}, [{"v": 1}], "2.2.1"])
def test_unusable_versions_answer_3001(payload):
    with pytest.raises(PartnerApiUnusable):
        choose_version(payload, None)


@pytest.mark.parametrize("name", ["version_details_example.json", "version_details_example2.json"])
def test_spec_details_examples_parse_and_credentials_role_is_ignored(name):
    details = load_example(name)
    endpoints = parse_endpoints(details, "2.2")

    credentials = [e for e in endpoints if e.identifier == "credentials"]
    assert len(credentials) == 1
    assert credentials[0].role == "SENDER"
    assert len(endpoints) == len(details["endpoints"])


def test_unknown_modules_and_roles_are_ignored_and_credentials_is_required():
    details = {
        "version": "2.2.1",
        "endpoints": [
            {"identifier": "nltnm-tokens", "role": "SENDER", "url": "https://p.example/x"},
            {"identifier": "locations", "role": "BOTH", "url": "https://p.example/y"},
            "garbage",
        ],
    }
    with pytest.raises(NoMutualEndpoints, match="credentials"):
        parse_endpoints(details, "2.2.1")
    details["endpoints"].append(
        {"identifier": "credentials", "role": "RECEIVER", "url": "https://p.example/c"}
    )
    assert [e.identifier for e in parse_endpoints(details, "2.2.1")] == [
        "nltnm-tokens",
        "credentials",
    ]
