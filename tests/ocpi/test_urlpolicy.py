"""The outbound URL policy (SSRF guard): static checks, connect-time checks, allowlist, proxy.

Nothing leaves loopback: the resolver (``urlpolicy.resolve``) is replaced in process, and the
only sockets are loopback servers of the test itself.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpcore
import httpx
import pytest
from django.test import override_settings

from ocpi_platform import checks
from ocpi_platform.ocpi import urlpolicy
from ocpi_platform.ocpi.client import (
    OcpiClient,
    PartnerError,
    PartnerProtocolError,
    PartnerRejected,
    UrlRefused,
    use_transport,
)
from ocpi_platform.ocpi.urlpolicy import Allowed, Policy, PolicyViolation

OK = {"status_code": 1000, "timestamp": "2026-01-01T00:00:00Z", "data": []}
STRICT = Policy()  # a deployment: https, public addresses only
LOOPBACK = Policy(loopback_instance=True)

FORBIDDEN = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"),
    ("fc00::1", "unique-local"),
    ("fd12:3456:789a::1", "unique-local"),
    ("fec0::1", "site-local"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"),  # noqa: S104
    ("0.1.2.3", "unspecified"),
    ("::", "unspecified"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("192.0.2.1", "documentation"),
    ("2001:db8::1", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("::ffff:169.254.169.254", "link-local (it carries 169.254.169.254)"),
    ("::ffff:127.0.0.1", "loopback (it carries 127.0.0.1)"),
    ("::ffff:10.0.0.1", "private (it carries 10.0.0.1)"),
    ("::ffff:0.0.0.0", "unspecified"),
    ("64:ff9b::a9fe:a9fe", "link-local (it carries 169.254.169.254)"),
    ("2002:a9fe:a9fe::1", "link-local (it carries 169.254.169.254)"),
    ("::10.0.0.1", "reserved"),  # IPv4-compatible (deprecated)
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


def url_of(address: str, scheme: str = "https", port: int | None = None) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{scheme}://{host}{f':{port}' if port else ''}/ocpi/versions"


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Replace the resolver: a test that reaches it without saying so fails."""
    asked: list[tuple[str, int]] = []

    def refuse(host: str, port: int) -> list[str]:
        asked.append((host, port))
        raise AssertionError(f"resolved {host}")

    monkeypatch.setattr(urlpolicy, "resolve", refuse)
    return asked


@pytest.fixture
def no_connect(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """httpcore's socket backend must not be asked to connect anywhere."""
    attempts: list[tuple[str, int]] = []

    def connect_tcp(self: Any, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        attempts.append((host, port))
        raise AssertionError(f"connected to {host}:{port}")

    monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", connect_tcp)
    return attempts


def resolver(answers: dict[str, list[str]], asked: list[str] | None = None) -> Any:
    def resolve(host: str, port: int) -> list[str]:
        if asked is not None:
            asked.append(host)
        return answers[host]

    return resolve


# --- the address rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(("address", "category"), FORBIDDEN)
def test_every_forbidden_range_is_refused_by_name(address, category, no_dns):
    assert category in (urlpolicy.classify(ipaddress.ip_address(address)) or "")
    with pytest.raises(PolicyViolation) as refused:
        STRICT.check_url(url_of(address))
    assert refused.value.rule == f"{address} is {urlpolicy.classify(ipaddress.ip_address(address))}"
    with pytest.raises(PolicyViolation, match=f"resolves to {address}, which is"):
        STRICT.check_addresses("partner.example", [address])
    assert no_dns == []  # a literal address needs no resolution


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address):
    STRICT.check_url(url_of(address))
    STRICT.check_addresses("partner.example", [address])


@pytest.mark.parametrize(
    ("host", "means"),
    [("2852039166", "169.254.169.254"), ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"), ("127.1", "")],
)
def test_other_ipv4_spellings_count_as_the_address(host, means, no_dns):
    """What the system resolver would read as an IPv4 address is judged as one, up front."""
    with pytest.raises(PolicyViolation, match=f"^{host} is (link-local|loopback)$"):
        STRICT.check_url(f"https://{host}/ocpi/versions")
    if means:
        assert urlpolicy.parse_ip(host) == ipaddress.ip_address(means)


def test_one_forbidden_address_among_public_ones_is_refused():
    with pytest.raises(PolicyViolation, match=r"resolves to 10.0.0.7, which is private"):
        STRICT.check_addresses("partner.example", ["93.184.216.34", "10.0.0.7"])


# --- scheme, user info, localhost ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://partner.example/ocpi/versions", "http://93.184.216.34/v", "http://127.0.0.1:8000/v"],
)
def test_plain_http_is_refused_on_a_deployment(url, no_dns):
    with pytest.raises(PolicyViolation) as refused:
        STRICT.check_url(url)
    assert refused.value.rule == urlpolicy.RULE_HTTPS
    assert "plain http is allowed only to loopback on a loopback instance" in refused.value.rule


def test_user_info_and_localhost_names_are_refused(no_dns):
    with pytest.raises(PolicyViolation, match="user info"):
        STRICT.check_url("https://user:secret@partner.example/v")
    with pytest.raises(PolicyViolation, match=r"^localhost is loopback$"):
        STRICT.check_url("https://localhost/v")
    with pytest.raises(PolicyViolation, match="is loopback"):
        STRICT.check_url("https://api.localhost./v")
    STRICT.check_url("https://partner.example/v")  # a name: judged at connect time


@pytest.mark.parametrize(
    ("public_url", "loopback"),
    [
        ("http://127.0.0.1:8000", True),
        ("http://localhost:8000", True),
        ("http://[::1]:8000", True),
        ("https://127.0.0.1:8000", False),
        ("http://testserver", False),
        ("http://10.0.0.1:8000", False),
        ("https://ocpi.example.com", False),
    ],
)
def test_the_loopback_exception_follows_our_public_url(public_url, loopback):
    with override_settings(OCPI_PUBLIC_URL=public_url):
        policy = urlpolicy.current()
    assert policy.loopback_instance is loopback
    calls_loopback_http = True
    try:
        policy.check_url("http://127.0.0.1:9/ocpi/versions")
        policy.check_addresses("localhost", ["127.0.0.1", "::1"])
    except PolicyViolation:
        calls_loopback_http = False
    assert calls_loopback_http is loopback


def test_a_loopback_instance_still_refuses_everything_but_loopback(no_dns):
    LOOPBACK.check_url("http://localhost:8001/ocpi/versions")
    LOOPBACK.check_url("http://[::1]:8001/ocpi/versions")
    with pytest.raises(PolicyViolation, match="plain http"):
        LOOPBACK.check_url("http://partner.example/ocpi/versions")
    with pytest.raises(PolicyViolation, match="plain http"):
        LOOPBACK.check_url("http://10.0.0.1/ocpi/versions")
    with pytest.raises(PolicyViolation, match=r"169.254.169.254 is link-local"):
        LOOPBACK.check_url("https://169.254.169.254/latest/meta-data")
    with pytest.raises(PolicyViolation, match=r"resolves to 192.168.0.9, which is private"):
        LOOPBACK.check_addresses("localhost", ["192.168.0.9"])


# --- the allowlist ------------------------------------------------------------------------------


def test_allowed_hosts_and_networks():
    allowed = Allowed.parse(
        ["partner.vpn.example", " *.corp.example ", "10.8.0.0/16", "fd00:1::/64"]
    )
    policy = Policy(allowed=allowed)

    policy.check_url("https://10.8.3.4/ocpi/versions")
    policy.check_url("https://[fd00:1::5]/ocpi/versions")
    policy.check_addresses("partner.vpn.example", ["10.1.1.1"])
    policy.check_addresses("a.corp.example", ["192.168.5.5"])
    policy.check_addresses("anything.example", ["10.8.0.1", "::ffff:10.8.0.2"])
    with pytest.raises(PolicyViolation, match=r"10.9.0.1 is private"):
        policy.check_url("https://10.9.0.1/ocpi/versions")
    with pytest.raises(PolicyViolation, match="which is private"):
        policy.check_addresses("corp.example", ["10.1.1.1"])  # *.corp.example: not the apex
    with pytest.raises(PolicyViolation, match="which is private"):
        policy.check_addresses("partner.vpn.example.evil.example", ["10.1.1.1"])
    with pytest.raises(PolicyViolation, match="plain http"):
        policy.check_url("http://partner.vpn.example/ocpi/versions")  # https still required
    assert allowed.describe() == "partner.vpn.example, *.corp.example, 10.8.0.0/16, fd00:1::/64"


def test_allowed_setting_is_read_and_checked(settings):
    settings.OCPI_OUTBOUND_ALLOWED = ["partner.vpn.example", "10.8.0.0/16"]
    urlpolicy.current().check_url("https://10.8.0.1/v")
    assert checks.check_outbound_allowed(None) == []

    settings.OCPI_OUTBOUND_ALLOWED = ["not a host!"]
    errors = checks.check_outbound_allowed(None)
    assert [e.id for e in errors] == ["ocpi.E004"]
    assert "'not a host!' is neither a host name nor a network" in errors[0].msg


# --- check --deploy -----------------------------------------------------------------------------


def _deploy_ids(**overrides: Any) -> dict[str, str]:
    with override_settings(**overrides):
        return {m.id: m.msg for m in checks.check_outbound_policy(None)}


def test_check_deploy_reports_the_policy(monkeypatch):
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    deployed = _deploy_ids(OCPI_PUBLIC_URL="https://ocpi.example.com", OCPI_OUTBOUND_ALLOWED=[])
    assert set(deployed) == {"ocpi.I001"}
    assert "https only, public addresses only" in deployed["ocpi.I001"]

    dev = _deploy_ids(OCPI_PUBLIC_URL="http://127.0.0.1:8000", OCPI_OUTBOUND_ALLOWED=[])
    assert set(dev) == {"ocpi.I001", "ocpi.E005"}
    assert "plain http and loopback" in dev["ocpi.E005"]

    vpn = _deploy_ids(
        OCPI_PUBLIC_URL="https://ocpi.example.com", OCPI_OUTBOUND_ALLOWED=["10.8.0.0/16"]
    )
    assert set(vpn) == {"ocpi.I001", "ocpi.W002"}
    assert "10.8.0.0/16" in vpn["ocpi.W002"]

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy-user:proxy-secret@127.0.0.1:3128")
    proxied = _deploy_ids(OCPI_PUBLIC_URL="https://ocpi.example.com", OCPI_OUTBOUND_ALLOWED=[])
    assert "ocpi.I002" in proxied
    assert "proxy-secret" not in proxied["ocpi.I002"]


# --- the client: every request under the policy --------------------------------------------------


def test_the_test_transport_gets_the_static_checks_too(no_dns):
    called: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        called.append(str(request.url))
        return httpx.Response(200, json=OK)

    refusals: list[UrlRefused] = []
    with use_transport(httpx.MockTransport(handler)):
        with pytest.raises(UrlRefused) as refused:
            OcpiClient("tok", on_refused=refusals.append).get("http://p.test/ocpi/versions")
        OcpiClient("tok").get("https://p.test/ocpi/versions")
    assert called == ["https://p.test/ocpi/versions"]
    assert isinstance(refused.value, PartnerRejected)
    assert refused.value.permanent
    assert refused.value.rule == urlpolicy.RULE_HTTPS
    assert refused.value.message == (
        f"GET http://p.test/ocpi/versions was not called: {urlpolicy.RULE_HTTPS} "
        "(outbound URL policy)."
    )
    assert refusals == [refused.value]


def test_a_link_next_page_to_a_forbidden_host_is_refused(no_dns):
    fetched: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        fetched.append(str(request.url))
        link = '<https://169.254.169.254/latest/meta-data?offset=2>; rel="next"'
        return httpx.Response(200, json={**OK, "data": [1, 2]}, headers={"Link": link})

    with use_transport(httpx.MockTransport(handler)):
        pages = OcpiClient("t").iter_pages("https://p.test/list")
        assert next(pages).data == [1, 2]
        with pytest.raises(UrlRefused, match=r"169.254.169.254 is link-local"):
            next(pages)
    assert fetched == ["https://p.test/list"]


def test_a_name_resolving_to_a_private_address_is_refused_at_connect_time(monkeypatch, no_connect):
    asked: list[str] = []
    monkeypatch.setattr(
        urlpolicy, "resolve", resolver({"partner.example": ["93.184.216.34", "10.0.0.7"]}, asked)
    )

    with pytest.raises(UrlRefused) as refused:
        OcpiClient("tok").get("https://partner.example/ocpi/versions")

    assert refused.value.rule == "partner.example resolves to 10.0.0.7, which is private"
    assert asked == ["partner.example"]
    assert no_connect == []  # not even to the public address


class _Recorder(httpcore.NetworkBackend):
    """Stands for the network: records where it was asked to connect and the TLS name."""

    def __init__(self) -> None:
        self.connected: list[tuple[str, int]] = []
        self.server_hostname: list[str | None] = []

    def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.connected.append((host, port))
        recorder = self

        class Stream(httpcore.NetworkStream):
            def start_tls(self, ssl_context: Any, server_hostname: str | None = None, **kw: Any):
                recorder.server_hostname.append(server_hostname)
                raise httpcore.ConnectError("stop here")

            def close(self) -> None:
                pass

        return Stream()


def test_the_connection_goes_to_the_checked_address_and_tls_uses_the_name(monkeypatch):
    answers = iter([["93.184.216.34"], ["10.0.0.7"]])  # a second lookup would get a private one
    monkeypatch.setattr(urlpolicy, "resolve", lambda host, port: next(answers))
    transport = urlpolicy.guarded_http_transport(STRICT)
    network = _Recorder()
    transport._pool._network_backend = urlpolicy.GuardedBackend(STRICT, inner=network)

    with httpx.Client(transport=transport) as client, pytest.raises(httpx.ConnectError):
        client.get("https://partner.example:8443/ocpi/versions")

    assert network.connected == [("93.184.216.34", 8443)]
    assert network.server_hostname == ["partner.example"]


def test_the_clients_transport_is_guarded(settings):
    with OcpiClient("t") as client:
        transport = client._http._transport
        assert isinstance(transport, urlpolicy.PolicyTransport)
        backend = transport.inner._pool._network_backend  # type: ignore[attr-defined]
        assert isinstance(backend, urlpolicy.GuardedBackend)


class _Partner(BaseHTTPRequestHandler):
    hosts: list[str | None] = []

    def do_GET(self) -> None:
        _Partner.hosts.append(self.headers.get("Host"))
        body = b'{"status_code": 1000, "timestamp": "2026-01-01T00:00:00Z", "data": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def loopback_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Partner)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    _Partner.hosts = []
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_loopback_instance_calls_a_loopback_partner(monkeypatch, loopback_server):
    """The e2e setup: both instances on http://127.0.0.1:<port>, or on a localhost name."""
    asked: list[str] = []
    monkeypatch.setattr(urlpolicy, "resolve", resolver({"localhost": ["127.0.0.1"]}, asked))
    real_getaddrinfo = socket.getaddrinfo

    def numeric_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        assert urlpolicy.parse_ip(str(host)) is not None, f"second lookup of {host}"
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)

    with override_settings(OCPI_PUBLIC_URL="http://127.0.0.1:8000"):
        with OcpiClient("t") as client:
            client.get(f"http://localhost:{loopback_server}/ocpi/versions")
            client.get(url_of("127.0.0.1", "http", loopback_server))
        with pytest.raises(UrlRefused, match="plain http"):
            OcpiClient("t").get("http://partner.example/ocpi/versions")

    assert asked == ["localhost"]
    assert _Partner.hosts == [f"localhost:{loopback_server}", f"127.0.0.1:{loopback_server}"]

    # The same partner from an instance that is not on loopback: refused, nothing sent.
    with pytest.raises(UrlRefused, match=r"plain http is allowed only to loopback"):
        OcpiClient("t").get(url_of("127.0.0.1", "http", loopback_server))
    assert len(_Partner.hosts) == 2


@pytest.fixture
def proxy() -> Iterator[tuple[int, list[bytes]]]:
    """A loopback 'proxy' that records the first bytes of each connection and hangs up."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.05)
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    received.append(conn.recv(4096))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], received
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_an_environment_proxy_keeps_working_and_targets_are_checked_first(monkeypatch, proxy):
    port, received = proxy
    for name in ("HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")

    def direct(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a direct connection instead of the proxy")

    monkeypatch.setattr(urlpolicy.GuardedBackend, "connect_tcp", direct)
    asked: list[str] = []
    monkeypatch.setattr(
        urlpolicy,
        "resolve",
        resolver({"internal.example": ["10.0.0.7"], "partner.example": ["93.184.216.34"]}, asked),
    )

    with pytest.raises(UrlRefused, match=r"internal.example resolves to 10.0.0.7"):
        OcpiClient("t").get("https://internal.example/ocpi/versions")
    # The proxy (on loopback, on an instance that is not) is used for an allowed target.
    with pytest.raises(PartnerError):  # the proxy hangs up
        OcpiClient("t").get("https://partner.example/ocpi/versions")

    assert asked == ["internal.example", "partner.example"]
    assert len(received) == 1
    assert received[0].startswith(b"CONNECT partner.example:443 ")


# --- what may be relayed to the partner ---------------------------------------------------------


def _answer(response: httpx.Response) -> Exception:
    with use_transport(httpx.MockTransport(lambda request: response)):
        try:
            OcpiClient("t", encoding_fallback=False).get("https://p.test/ocpi/versions")
        except Exception as exc:
            return exc
    raise AssertionError("no error")


def test_public_texts_quote_only_the_start_of_an_ocpi_status_message():
    long = "x" * 500
    enveloped = _answer(
        httpx.Response(
            404,
            json={"status_code": 2000, "timestamp": "2026-01-01T00:00:00Z", "status_message": long},
        )
    )
    assert isinstance(enveloped, PartnerRejected)
    assert "x" * 120 + "…" in enveloped.public
    assert "x" * 121 not in enveloped.public
    assert "x" * 200 in enveloped.message  # the operator reads more

    not_ocpi = _answer(httpx.Response(403, json={"status_code": 1, "status_message": "secret"}))
    assert "secret" in not_ocpi.message  # type: ignore[attr-defined]
    assert "secret" not in not_ocpi.public  # type: ignore[attr-defined]

    html = _answer(
        httpx.Response(
            200, content=b"<html>secret page</html>", headers={"Content-Type": "text/html"}
        )
    )
    assert isinstance(html, PartnerProtocolError)
    assert html.public == (
        "GET https://p.test/ocpi/versions did not answer with an OCPI envelope "
        "(HTTP 200, text/html)."
    )

    redirect = _answer(httpx.Response(302, headers={"Location": "https://secret.example/x"}))
    assert "secret" in redirect.message  # type: ignore[attr-defined]
    assert "secret" not in redirect.public  # type: ignore[attr-defined]
