"""URL policy hardening: what a refusal tells the partner, loopback names on a loopback instance,
IPv4-translated and local-use NAT64 addresses, the proxy caveat of ``check --deploy``.

Nothing leaves the process: the resolver is replaced and the socket backend only records.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import httpcore
import httpx
import pytest

from ocpi_platform import checks
from ocpi_platform.ocpi import urlpolicy
from ocpi_platform.ocpi.client import OcpiClient, UrlRefused
from ocpi_platform.ocpi.urlpolicy import Allowed, Policy, PolicyViolation

STRICT = Policy()
LOOPBACK = Policy(loopback_instance=True)


class Recorder(httpcore.NetworkBackend):
    """A socket backend that records where it was asked to connect, and connects nowhere."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((host, port))
        raise httpcore.ConnectError("recorded, not connected")


def call(policy: Policy, url: str, answers: dict[str, list[str]], monkeypatch: Any) -> Any:
    """GET ``url`` through the real guarded transport: the PolicyViolation, or the attempts."""
    monkeypatch.setattr(urlpolicy, "resolve", lambda host, port: answers[host])
    recorder = Recorder()
    transport = httpx.HTTPTransport()
    transport._pool._network_backend = urlpolicy.GuardedBackend(policy, recorder)
    with httpx.Client(transport=urlpolicy.PolicyTransport(policy, transport)) as client:
        try:
            client.get(url)
        except PolicyViolation as exc:
            assert recorder.calls == []
            return exc
        except httpx.ConnectError:
            return recorder.calls
    raise AssertionError("connected")


# --- the partner learns the rule, not the address ---


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("10.1.2.3", "partner.example resolves to a private address"),
        ("::ffff:10.1.2.3", "partner.example resolves to a private address"),
        ("169.254.169.254", "partner.example resolves to a link-local address"),
        ("127.0.0.1", "partner.example resolves to a loopback address"),
        ("fd00::1", "partner.example resolves to a unique-local address"),
        ("0.0.0.0", "partner.example resolves to an unspecified address"),  # noqa: S104
        ("64:ff9b:1::a01:203", "partner.example resolves to a local-use NAT64 address"),
        ("100::1", "partner.example resolves to an address that is not public"),
    ],
)
def test_a_resolved_address_is_named_to_the_operator_only(address, public):
    with pytest.raises(PolicyViolation) as refused:
        STRICT.check_addresses("partner.example", [address])
    assert refused.value.public == public
    assert address not in refused.value.public
    assert "10.1.2.3" not in refused.value.public  # nor the IPv4 a mapped form carries
    assert f"partner.example resolves to {address}, which is" in refused.value.rule


def test_a_literal_address_the_partner_wrote_may_be_named():
    with pytest.raises(PolicyViolation) as refused:
        STRICT.check_addresses("10.1.2.3", ["10.1.2.3"])
    assert refused.value.public == refused.value.rule == "10.1.2.3 is private"


def test_the_client_tells_the_partner_the_rule_and_the_operator_the_address(monkeypatch):
    monkeypatch.setattr(urlpolicy, "resolve", lambda host, port: ["10.1.2.3"])
    monkeypatch.setattr(
        httpcore.SyncBackend, "connect_tcp", lambda *a, **k: pytest.fail("connected")
    )
    refusals: list[UrlRefused] = []
    with pytest.raises(UrlRefused) as refused:
        OcpiClient("tok", on_refused=refusals.append).get("https://rebind.test/ocpi/versions")
    assert refused.value.public == (
        "GET https://rebind.test/ocpi/versions was not called: rebind.test resolves to a "
        "private address (outbound URL policy)."
    )
    assert "10.1.2.3" in refused.value.message
    assert "10.1.2.3" in refusals[0].message  # the event keeps it


# --- plain http on a loopback instance stays on this machine ---


@pytest.mark.parametrize("host", ["foo.localhost", "localhost.", "localhost", "LOCALHOST"])
@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700:4700::1111"])
def test_a_loopback_name_resolving_to_a_public_address_is_refused(host, address, monkeypatch):
    refused = call(LOOPBACK, f"http://{host}:8001/ocpi", {host.lower(): [address]}, monkeypatch)
    assert isinstance(refused, PolicyViolation)
    assert refused.rule.endswith(f"resolves to {address}, which is not loopback")
    assert address not in refused.public


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "10.8.0.1", "2002:7f00:1::", "::ffff:8.8.8.8"]
)
def test_every_resolved_address_of_a_loopback_name_must_be_loopback(address, monkeypatch):
    policy = Policy(loopback_instance=True, allowed=Allowed.parse(["10.8.0.0/16", "*.localhost"]))
    answers = {"foo.localhost": ["127.0.0.1", address]}
    refused = call(policy, "http://foo.localhost:8001/ocpi", answers, monkeypatch)
    assert isinstance(refused, PolicyViolation), refused


def test_a_loopback_name_resolving_to_loopback_is_called(monkeypatch):
    answers = {"foo.localhost": ["127.0.0.1", "::1", "127.0.0.2"]}
    attempts = call(LOOPBACK, "http://foo.localhost:8001/ocpi", answers, monkeypatch)
    assert attempts == [("127.0.0.1", 8001), ("::1", 8001), ("127.0.0.2", 8001)]


def test_https_to_a_public_name_is_still_called_on_a_loopback_instance(monkeypatch):
    attempts = call(
        LOOPBACK, "https://partner.example/", {"partner.example": ["93.184.216.34"]}, monkeypatch
    )
    assert attempts == [("93.184.216.34", 443)]


# --- IPv4-translated and local-use NAT64 ---


@pytest.mark.parametrize(
    ("address", "category"),
    [
        ("::ffff:0:7f00:1", "loopback (it carries 127.0.0.1)"),
        ("::ffff:0:a00:1", "private (it carries 10.0.0.1)"),
        ("::ffff:0:a9fe:a9fe", "link-local (it carries 169.254.169.254)"),
        ("64:ff9b:1::a00:1", "local-use NAT64"),
        ("64:ff9b:1::5db8:d822", "local-use NAT64"),  # refused whatever it carries
        ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "local-use NAT64"),
    ],
)
def test_translated_and_local_nat64_addresses_are_refused(address, category, monkeypatch):
    assert urlpolicy.classify(ipaddress.ip_address(address)) == category
    with pytest.raises(PolicyViolation, match=r"is (loopback|private|link-local|local-use)"):
        STRICT.check_url(f"https://[{address}]/ocpi/versions")
    refused = call(STRICT, "https://partner.example/", {"partner.example": [address]}, monkeypatch)
    assert isinstance(refused, PolicyViolation)


def test_an_ipv4_translated_public_address_is_judged_by_the_ipv4_it_carries():
    assert urlpolicy.classify(ipaddress.ip_address("::ffff:0:5db8:d822")) is None
    STRICT.check_addresses("partner.example", ["::ffff:0:5db8:d822"])  # 93.184.216.34


# --- check --deploy behind a proxy ---


def test_the_proxy_info_says_the_proxy_must_enforce_the_address_rules(monkeypatch):
    monkeypatch.setattr(
        urlpolicy, "environment_proxies", lambda: {"https://": "http://proxy.internal:3128"}
    )
    messages = {m.id: m.msg for m in checks.check_outbound_policy(None)}
    assert "CONNECT name:443" in messages["ocpi.I002"]
    assert "the proxy must enforce them itself" in messages["ocpi.I002"]
