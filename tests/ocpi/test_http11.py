"""The outbound client's keep-alive transport (``ocpi_platform/ocpi/http11.py``) against real
sockets on loopback: framing, keep-alive and its failures, timeouts, header validation, TLS
verification, and the outbound URL policy on its connections."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ocpi_platform.ocpi import urlpolicy
from ocpi_platform.ocpi.client import (
    OcpiClient,
    PartnerProtocolError,
    PartnerUnavailable,
    UrlRefused,
)
from ocpi_platform.ocpi.http11 import KeepAliveTransport
from ocpi_platform.ocpi.principal import TokenEncoding

ENVELOPE = b'{"status_code":1000,"timestamp":"2026-01-01T00:00:00Z","data":{"n":1}}'


def ok(body: bytes = ENVELOPE, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n"
        + extra
        + b"\r\n"
        + body
    )


CLOSE = "close"  # close the connection without answering
HANG = "hang"  # answer nothing, keep the connection open


class Peer:
    """A loopback HTTP/1.1 peer that answers each request with the next scripted action: bytes
    to write (then keep the connection), ``CLOSE``, ``HANG``, or ``(bytes, CLOSE)``. It records
    every request (head and body) and counts the connections it accepted."""

    def __init__(self, script: list[Any], wrap: Callable[[socket.socket], Any] | None = None):
        self.script = list(script)
        self.requests: list[bytes] = []
        self.connections = 0
        self.wrap = wrap
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.05)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            if self.wrap is not None:
                conn = self.wrap(conn)
            buffer = b""
            while not self.stop.is_set():
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(rest) < length:
                    rest += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + rest[:length])
                buffer = rest[length:]
                action = self.script.pop(0) if self.script else CLOSE
                if isinstance(action, tuple):
                    conn.sendall(action[0])
                    return
                if action == CLOSE:
                    return
                if action == HANG:
                    self.stop.wait(5)
                    return
                conn.sendall(action)
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.listener.close()


@pytest.fixture
def peer() -> Iterator[Callable[..., Peer]]:
    made: list[Peer] = []

    def make(script: list[Any], **kwargs: Any) -> Peer:
        made.append(Peer(script, **kwargs))
        return made[-1]

    yield make
    for one in made:
        one.close()


@pytest.fixture
def loopback(settings):
    """A loopback instance (plain http to 127.0.0.1 allowed), as ``make run`` and the e2e."""
    settings.OCPI_PUBLIC_URL = "http://127.0.0.1:8000"
    settings.OCPI_HTTP_READ_TIMEOUT = 2.0


def direct(host: str, port: int, timeout: float | None) -> socket.socket:
    return socket.create_connection((host, port), timeout=timeout)


# --- framing and keep-alive --------------------------------------------------------------------


def test_requests_share_one_connection_and_go_out_whole(peer, loopback):
    partner = peer([ok(), ok()])
    with OcpiClient("token-c") as client:
        first = client.put(f"http://127.0.0.1:{partner.port}/ocpi/x/1", {"a": 1})
        second = client.get(f"http://127.0.0.1:{partner.port}/ocpi/x?offset=5")
    assert first.data == {"n": 1}
    assert second.status_code == 1000
    assert partner.connections == 1
    put, get = partner.requests
    assert put.startswith(b"PUT /ocpi/x/1 HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{partner.port}\r\n".encode() in put.lower()
    assert b"content-type: application/json\r\n" in put.lower()
    assert put.endswith(b'\r\n\r\n{"a":1}')
    assert get.startswith(b"GET /ocpi/x?offset=5 HTTP/1.1\r\n")
    assert b"Authorization: Token dG9rZW4tYw==\r\n" in get


def test_a_chunked_answer_is_read_with_its_trailers_and_the_connection_kept(peer, loopback):
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x;ext=1\r\n%s\r\n" % (10, ENVELOPE[:10])
        + b"%x\r\n%s\r\n" % (len(ENVELOPE) - 10, ENVELOPE[10:])
        + b"0\r\nX-Trailer: yes\r\n\r\n"
    )
    partner = peer([chunked, ok()])
    with OcpiClient("t") as client:
        assert client.get(f"http://127.0.0.1:{partner.port}/a").data == {"n": 1}
        assert client.get(f"http://127.0.0.1:{partner.port}/b").data == {"n": 1}
    assert partner.connections == 1


def test_an_answer_read_until_close_and_connection_close_are_not_reused(peer, loopback):
    until_close = b"HTTP/1.1 200 OK\r\n\r\n" + ENVELOPE
    first = peer([(until_close, CLOSE)])
    second = peer([ok(extra=b"Connection: close\r\n"), ok()])
    with OcpiClient("t") as client:
        assert client.get(f"http://127.0.0.1:{first.port}/a").data == {"n": 1}
        client.get(f"http://127.0.0.1:{second.port}/a")
        client.get(f"http://127.0.0.1:{second.port}/b")
    assert second.connections == 2


def test_a_connection_the_peer_closed_while_idle_is_replaced(peer, loopback):
    partner = peer([(ok(), CLOSE), ok()])
    with OcpiClient("t") as client:
        client.get(f"http://127.0.0.1:{partner.port}/a")
        assert client.put(f"http://127.0.0.1:{partner.port}/b", {}).status_code == 1000
    assert partner.connections == 2
    assert len(partner.requests) == 2


def test_a_put_on_a_reused_connection_closed_unanswered_is_sent_again_once(peer, loopback):
    partner = peer([ok(), CLOSE, ok()])
    transport = KeepAliveTransport(direct)
    with httpx.Client(transport=transport) as client:
        client.get(f"http://127.0.0.1:{partner.port}/a")
        # The connection looks alive when it is taken: the peer closes it only on this request.
        assert client.put(f"http://127.0.0.1:{partner.port}/b", json={}).status_code == 200
    assert [r.split(b" ", 2)[:2] for r in partner.requests] == [
        [b"GET", b"/a"],
        [b"PUT", b"/b"],
        [b"PUT", b"/b"],
    ]
    assert transport.connections_made == 2


def test_a_post_is_never_sent_twice(peer, loopback):
    partner = peer([ok(), CLOSE, ok()])
    with OcpiClient("t") as client:
        client.get(f"http://127.0.0.1:{partner.port}/a")
        with pytest.raises(PartnerUnavailable, match="closed the connection without answering"):
            client.post(f"http://127.0.0.1:{partner.port}/b", {})
    assert len(partner.requests) == 2


def test_a_fresh_connection_closed_unanswered_is_a_transient_failure(peer, loopback):
    partner = peer([CLOSE])
    with OcpiClient("t") as client, pytest.raises(PartnerUnavailable):
        client.put(f"http://127.0.0.1:{partner.port}/a", {})
    assert len(partner.requests) == 1  # not sent again: the connection was new


def test_an_answer_cut_short_fails_and_its_connection_is_dropped(peer, loopback):
    short = b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" + ENVELOPE
    partner = peer([(short, CLOSE), ok()])
    with OcpiClient("t") as client:
        with pytest.raises(PartnerUnavailable, match="before the answer was complete"):
            client.get(f"http://127.0.0.1:{partner.port}/a")
        assert client.get(f"http://127.0.0.1:{partner.port}/b").status_code == 1000
    assert partner.connections == 2


def test_a_body_not_read_to_the_end_closes_the_connection(peer, loopback):
    partner = peer([ok(body=b"x" * 100_000), ok()])
    transport = KeepAliveTransport(direct)
    with httpx.Client(transport=transport) as client:
        with client.stream("GET", f"http://127.0.0.1:{partner.port}/a") as response:
            next(response.iter_raw(10))
        assert client.get(f"http://127.0.0.1:{partner.port}/b").status_code == 200
    assert transport.connections_made == 2


def test_interim_answers_are_skipped_and_head_has_no_body(peer, loopback):
    partner = peer([b"HTTP/1.1 100 Continue\r\n\r\n" + ok(), ok(body=b"")])
    transport = KeepAliveTransport(direct)
    with httpx.Client(transport=transport) as client:
        assert client.get(f"http://127.0.0.1:{partner.port}/a").content == ENVELOPE
        no_content = b"HTTP/1.1 204 No Content\r\n\r\n"
        partner.script.append(no_content)
        assert client.delete(f"http://127.0.0.1:{partner.port}/b").status_code == 200
        assert client.delete(f"http://127.0.0.1:{partner.port}/c").status_code == 204
    assert transport.connections_made == 1


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    ],
)
def test_a_malformed_answer_is_refused(peer, loopback, answer):
    partner = peer([(answer, CLOSE)])
    with OcpiClient("t") as client, pytest.raises((PartnerUnavailable, PartnerProtocolError)):
        client.get(f"http://127.0.0.1:{partner.port}/a")


def test_a_peer_that_does_not_answer_times_out(peer, loopback, settings):
    settings.OCPI_HTTP_READ_TIMEOUT = 0.2
    partner = peer([HANG])
    with OcpiClient("t") as client, pytest.raises(PartnerUnavailable, match="timed out"):
        client.get(f"http://127.0.0.1:{partner.port}/a")


def test_a_connect_that_times_out_is_a_connect_timeout(monkeypatch):
    def slow(address: Any, timeout: float | None = None) -> socket.socket:
        raise TimeoutError

    monkeypatch.setattr(urlpolicy, "resolve", lambda host, port: ["93.184.216.34"])
    monkeypatch.setattr(socket, "create_connection", slow)
    transport = urlpolicy.PolicyTransport(
        urlpolicy.Policy(), KeepAliveTransport(urlpolicy.guarded_connect(urlpolicy.Policy()))
    )
    with httpx.Client(transport=transport) as client, pytest.raises(httpx.ConnectTimeout):
        client.get("https://partner.example/ocpi/versions")


def test_a_header_value_with_a_line_break_is_never_sent(peer, loopback):
    partner = peer([ok()])
    token = "good\r\nX-Injected: 1"  # sent unencoded (a partner of OCPI 2.1.1)
    with (
        OcpiClient(token, encoding=TokenEncoding.PLAIN, encoding_fallback=False) as client,
        pytest.raises(PartnerUnavailable),
    ):
        client.get(f"http://127.0.0.1:{partner.port}/a")
    assert partner.requests == []


# --- the outbound URL policy on its connections ------------------------------------------------


def test_the_clients_direct_transport_is_this_one_behind_the_policy(settings):
    with OcpiClient("t") as client:
        transport = client._http._transport
        assert isinstance(transport, urlpolicy.PolicyTransport)
        assert isinstance(transport.inner, KeepAliveTransport)
    settings.OCPI_HTTP_TRANSPORT = "httpcore"
    with OcpiClient("t") as client:
        transport = client._http._transport
        assert isinstance(transport, urlpolicy.PolicyTransport)
        assert isinstance(transport.inner, httpx.HTTPTransport)


def test_loopback_is_refused_on_an_instance_that_is_not_one(peer, settings):
    settings.OCPI_PUBLIC_URL = "https://ocpi.example.com"
    partner = peer([ok()])
    with OcpiClient("t") as client, pytest.raises(UrlRefused):
        client.get(f"http://127.0.0.1:{partner.port}/a")
    with OcpiClient("t") as client, pytest.raises(UrlRefused):
        client.get(f"https://127.0.0.1:{partner.port}/a")
    assert partner.connections == 0


def test_a_name_resolving_to_a_private_address_is_not_connected(monkeypatch, settings):
    settings.OCPI_PUBLIC_URL = "https://ocpi.example.com"
    monkeypatch.setattr(urlpolicy, "resolve", lambda host, port: ["93.184.216.34", "10.0.0.7"])

    def never(*args: Any, **kwargs: Any) -> socket.socket:
        raise AssertionError("connected")

    monkeypatch.setattr(socket, "create_connection", never)
    with OcpiClient("t") as client, pytest.raises(UrlRefused, match=r"resolves to 10\.0\.0\.7"):
        client.get("https://partner.example/ocpi/versions")


def test_the_connection_goes_to_the_checked_address_only(monkeypatch, peer, loopback):
    partner = peer([ok()])
    answers = iter([["127.0.0.1"], ["10.0.0.7"]])  # a second lookup would get a private one
    monkeypatch.setattr(urlpolicy, "resolve", lambda host, port: next(answers))
    made: list[Any] = []
    real = socket.create_connection

    def recording(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        made.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", recording)
    with OcpiClient("t") as client:
        assert client.get(f"http://localhost:{partner.port}/a").status_code == 1000
    assert made == [("127.0.0.1", partner.port)]
    assert b"\r\nHost: localhost:" in partner.requests[0]


# --- TLS: the certificate and the host name are verified ---------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> dict[str, Any]:
    """A CA and a certificate it signed for ``partner.test`` (and 127.0.0.1)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder: Path = tmp_path_factory.mktemp("tls")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "partner.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("partner.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (folder / "leaf.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "leaf.pem", folder / "leaf.key")
    trusting = ssl.create_default_context(cafile=str(folder / "ca.pem"))
    return {"server": server, "trusting": trusting}


def _to_loopback(host: str, port: int, timeout: float | None) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def _tls_peer(peer: Callable[..., Peer], tls: dict[str, Any], script: list[Any]) -> Peer:
    return peer(script, wrap=lambda conn: tls["server"].wrap_socket(conn, server_side=True))


def test_tls_with_a_trusted_certificate_for_the_name_is_called(peer, tls):
    partner = _tls_peer(peer, tls, [ok(), ok()])
    transport = KeepAliveTransport(_to_loopback, ssl_context=tls["trusting"])
    with httpx.Client(transport=transport) as client:
        assert client.get(f"https://partner.test:{partner.port}/a").status_code == 200
        assert client.get(f"https://partner.test:{partner.port}/b").status_code == 200
    assert transport.connections_made == 1


def test_tls_to_another_name_than_the_certificates_is_refused(peer, tls):
    partner = _tls_peer(peer, tls, [ok()])
    transport = KeepAliveTransport(_to_loopback, ssl_context=tls["trusting"])
    with (
        httpx.Client(transport=transport) as client,
        pytest.raises(httpx.ConnectError, match=r"(?i)hostname|match"),
    ):
        client.get(f"https://other.test:{partner.port}/a")
    assert partner.requests == []


def test_tls_with_an_untrusted_certificate_is_refused(peer, tls):
    partner = _tls_peer(peer, tls, [ok()])
    transport = KeepAliveTransport(_to_loopback, ssl_context=urlpolicy.ssl_context())
    with (
        httpx.Client(transport=transport) as client,
        pytest.raises(httpx.ConnectError, match=r"(?i)certificate"),
    ):
        client.get(f"https://partner.test:{partner.port}/a")
    assert partner.requests == []


# --- the journal's observer sees every call --------------------------------------------------


def test_observers_see_every_call_on_this_transport_answered_or_not(peer, loopback, settings):
    settings.OCPI_HTTP_READ_TIMEOUT = 0.3
    partner = peer([ok(), HANG])
    seen: list[Any] = []
    with OcpiClient("t", partner_id=7) as client:
        client.observers.append(seen.append)
        client.put(f"http://127.0.0.1:{partner.port}/a", {"x": 1})
        with pytest.raises(PartnerUnavailable):
            client.get(f"http://127.0.0.1:{partner.port}/b")
    assert [(e.method, e.http_status, e.ocpi_status) for e in seen] == [
        ("PUT", 200, 1000),
        ("GET", None, None),
    ]
    assert seen[0].request_body == b'{"x":1}'
    assert seen[0].response_body == ENVELOPE
    assert "timed out" in seen[1].error
