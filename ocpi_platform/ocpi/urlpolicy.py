"""Outbound URL policy: which partner URLs we call with our token (a guard against SSRF).

A partner chooses the URLs we call (its versions URL in a credentials POST/PUT, the details URL
in its versions list, its endpoints, ``Link`` next pages, later ``response_url``s). One policy
applies to every request ``OcpiClient`` sends:

* https only; plain http only to loopback, and only when our own ``OCPI_PUBLIC_URL`` is plain
  http on loopback (``make run``, the end-to-end tests);
* never an address that is loopback, private, link-local, unique-local, multicast, unspecified
  or otherwise not public (IPv4-mapped, IPv4-translated, NAT64 and 6to4 forms are judged by the
  IPv4 address they carry; local-use NAT64, 64:ff9b:1::/48, is refused outright); loopback is
  allowed on a loopback instance, and a loopback name (``localhost``, ``*.localhost``) must
  resolve to loopback addresses only (plain http never leaves the machine);
* no user info (``user:password@``) in a URL;
* ``OCPI_OUTBOUND_ALLOWED`` lists host names (``*.vpn.example`` for the names under it) and
  networks (CIDR) that are allowed despite the address rules (https is still required).

The address rules are checked twice: on the URL before anything is sent (a literal IP, a
``localhost`` name), and at connect time on every address the host name resolves to
(``GuardedBackend``): the connection then goes to the checked address, never to a second
resolution, so a DNS answer cannot bypass the policy. TLS still verifies the host name (httpcore
passes the URL's host as ``server_hostname`` when it starts TLS on the checked socket).

With an outbound proxy from the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``,
``NO_PROXY``, read as httpx reads them) requests keep going through the proxy: the target is
resolved here and its addresses checked before the request; the proxy's own address is allowed.
The proxy resolves the name again itself (``CONNECT name:443``), so there a DNS answer that
changes in between can bypass the address rules: the proxy must enforce them too.

A ``PolicyViolation`` has two texts: ``rule`` for the operator (it may name the address a host
resolved to) and ``public`` for the partner (the rule only, never an address we resolved).
URLs in messages go through ``redact_url`` (no ``user:password@``).

Tests replace the resolver in process: ``resolve`` is the one seam (monkeypatch it).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import httpcore
import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

RULE_HTTPS = (
    "only https URLs are called; plain http is allowed only to loopback on a loopback instance"
)
RULE_USERINFO = "a URL with user info (user:password@host) is not called"
RULE_NO_HOST = "a URL without a host is not called"


class PolicyViolation(Exception):
    """A URL or an address the policy forbids; ``rule`` says which rule, in words.

    ``public``: what may be told to the partner; by default ``rule``. It never names an address
    a host name resolved to (our DNS view of the partner's name is ours)."""

    def __init__(self, rule: str, *, public: str | None = None) -> None:
        super().__init__(rule)
        self.rule = rule
        self.public = public or rule


# The user info of an absolute or scheme-relative URL: everything before the last "@" of the
# authority (the authority ends at the first "/", "?" or "#").
_USERINFO = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.-]*:)?//)[^/?#]*@")


def redact_url(url: object) -> str:
    """``url`` as text for a message: a ``user:password@`` in it becomes ``***@``."""
    return _USERINFO.sub(r"\1***@", str(url).strip())


# --- address classification ---------------------------------------------------------------------


def _nets(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# Checked in this order; the first match names the rule. Whatever is not listed here and is not
# globally routable (ipaddress.is_global) is refused as "not a public address".
_CATEGORIES: tuple[tuple[str, tuple[IPNetwork, ...]], ...] = (
    ("unspecified", _nets("0.0.0.0/8", "::/128")),
    ("loopback", _nets("127.0.0.0/8", "::1/128")),
    ("private", _nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),
    ("link-local", _nets("169.254.0.0/16", "fe80::/10")),
    ("unique-local", _nets("fc00::/7")),
    ("site-local (deprecated)", _nets("fec0::/10")),
    ("multicast", _nets("224.0.0.0/4", "ff00::/8")),
    ("broadcast", _nets("255.255.255.255/32")),
    ("shared address space (carrier-grade NAT)", _nets("100.64.0.0/10")),
    ("reserved", _nets("240.0.0.0/4", "::/96")),
    (
        "reserved for documentation",
        _nets("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"),
    ),
    ("reserved for benchmarking", _nets("198.18.0.0/15")),
    # RFC 8215: the IPv4 address sits where the operator's NAT64 prefix length says; which
    # IPv4 it reaches cannot be told from the address, so the whole range is refused.
    ("local-use NAT64", _nets("64:ff9b:1::/48")),
)
NOT_PUBLIC = "not a public address"
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 (SIIT)


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and reaches (mapped, translated, NAT64,
    6to4), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64 or ip in _IPV4_TRANSLATED:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def category(ip: IPAddress) -> str | None:
    """The forbidden category of an address ("link-local", ...; an IPv6 form carrying an IPv4
    address: that address's), or None when it is public."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        return category(inner)
    for name, networks in _CATEGORIES:
        if any(ip in net for net in networks if net.version == ip.version):
            return name
    if not ip.is_global:
        return NOT_PUBLIC
    return None


def classify(ip: IPAddress) -> str | None:
    """Like ``category``, naming the IPv4 address an IPv6 form carries (for the operator)."""
    name = category(ip)
    inner = embedded_ipv4(ip)
    if name is not None and inner is not None:
        return f"{name} (it carries {inner})"
    return name


def an_address(name: str) -> str:
    """A category in words: "a private address", "an address that is not public"."""
    if name == NOT_PUBLIC:
        return "an address that is not public"
    article = "an" if re.match(r"[aeio]|un(?!i)", name) else "a"
    return f"{article} {name} address"


def resolves_to(host: str, name: str) -> str:
    """The rule a host name broke by resolving to an address of category ``name``, in words
    that name no address (what the partner is told)."""
    return f"{host} resolves to {an_address(name)}"


def parse_ip(host: str) -> IPAddress | None:
    """The address a host names literally: IPv4/IPv6, and the other IPv4 spellings the system
    resolver accepts without DNS (``2852039166``, ``0x7f.1``, ``127.1``)."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fA-FxX.]+", host) and re.match(r"[0-9]", host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _is_loopback_address(ip: IPAddress) -> bool:
    """An address on this machine: 127.0.0.0/8, ::1 or IPv4-mapped 127.0.0.0/8 (not a 6to4 or
    NAT64 form, which leaves the machine)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _is_localhost_name(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host == "localhost" or host.endswith(".localhost")


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 or a localhost name."""
    ip = parse_ip(host)
    if ip is not None:
        return classify(ip) == "loopback"
    return _is_localhost_name(host)


def is_loopback_instance(public_url: str) -> bool:
    """Our own public URL is plain http on loopback: the one case where plain http is called."""
    url = httpx.URL(public_url)
    return url.scheme == "http" and is_loopback_host(url.host)


# --- the policy ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Allowed:
    """``OCPI_OUTBOUND_ALLOWED``: host names, ``*.suffix`` wildcards and networks."""

    hosts: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowed:
        hosts: set[str] = set()
        suffixes: list[str] = []
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = entry.rstrip(".")
            if not re.fullmatch(r"(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9-]+)*", name):
                raise ValueError(f"{raw.strip()!r} is neither a host name nor a network (CIDR)")
            if name.startswith("*."):
                suffixes.append(name[1:])
            else:
                hosts.add(name)
        return cls(frozenset(hosts), tuple(suffixes), tuple(networks))

    def __bool__(self) -> bool:
        return bool(self.hosts or self.suffixes or self.networks)

    def host(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        return name in self.hosts or any(name.endswith(s) for s in self.suffixes)

    def address(self, ip: IPAddress) -> bool:
        candidates = [ip] + [a for a in [embedded_ipv4(ip)] if a is not None]
        return any(
            a in net for a in candidates for net in self.networks if net.version == a.version
        )

    def describe(self) -> str:
        parts = sorted(self.hosts) + [f"*{s}" for s in self.suffixes]
        return ", ".join(parts + [str(n) for n in self.networks]) or "none"


@dataclass(frozen=True)
class Policy:
    loopback_instance: bool = False
    allowed: Allowed = Allowed()

    def address_problem(self, ip: IPAddress) -> str | None:
        """Why ``ip`` may not be called, or None."""
        if self.allowed.address(ip):
            return None
        category = classify(ip)
        if category == "loopback" and self.loopback_instance:
            return None
        return category

    def check_url(self, url: httpx.URL | str) -> None:
        """The checks that need no connection: scheme, user info, a literal address."""
        url = httpx.URL(url) if isinstance(url, str) else url
        if url.userinfo:
            raise PolicyViolation(RULE_USERINFO)
        # The verdict depends on the scheme and the host only: kept per policy (every push to
        # a partner asks the same question).
        problem = _url_problem(self, url.scheme, url.raw_host.decode("ascii"))
        if problem is not None:
            raise PolicyViolation(problem)

    def url_problem(self, scheme: str, host: str) -> str | None:
        """Why a URL of ``scheme`` and ``host`` (and no user info) may not be called, or None."""
        if not host:
            return RULE_NO_HOST
        if scheme == "http":
            if self.loopback_instance and is_loopback_host(host):
                return None
            return RULE_HTTPS
        if scheme != "https":
            return RULE_HTTPS
        if self.allowed.host(host):
            return None
        ip = parse_ip(host)
        if ip is not None:
            problem = self.address_problem(ip)
            if problem:
                return f"{host} is {problem}"
        elif _is_localhost_name(host) and not self.loopback_instance:
            return f"{host} is loopback"
        return None

    def check_addresses(self, host: str, addresses: Iterable[str]) -> None:
        """Connect time: every address ``host`` resolved to must be allowed.

        A loopback name (``localhost``, ``foo.localhost``, ``localhost.``; only a loopback
        instance gets this far with one) must resolve to loopback addresses only, whatever
        ``OCPI_OUTBOUND_ALLOWED`` says: plain http is allowed to such names, and must not
        reach another machine."""
        ips = [(address, ipaddress.ip_address(address)) for address in addresses]
        if not self.allowed.host(host):
            for address, ip in ips:
                problem = self.address_problem(ip)
                if problem:
                    if parse_ip(host) == ip:
                        raise PolicyViolation(f"{address} is {problem}")
                    raise PolicyViolation(
                        f"{host} resolves to {address}, which is {problem}",
                        public=resolves_to(host, category(ip) or problem),
                    )
        if is_loopback_host(host):
            for address, ip in ips:
                if not _is_loopback_address(ip):
                    raise PolicyViolation(
                        f"{host} resolves to {address}, which is not loopback",
                        public=f"{host} resolves to an address that is not loopback",
                    )

    def describe(self) -> str:
        loopback = (
            "plain http and loopback allowed (our OCPI_PUBLIC_URL is http on loopback)"
            if self.loopback_instance
            else "https only, public addresses only"
        )
        return f"{loopback}; also allowed: {self.allowed.describe()}"


@lru_cache(maxsize=4096)
def _url_problem(policy: Policy, scheme: str, host: str) -> str | None:
    return policy.url_problem(scheme, host)


def allowed_setting() -> list[str]:
    value: typing.Any = getattr(settings, "OCPI_OUTBOUND_ALLOWED", [])
    if isinstance(value, str):
        return [v for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


@lru_cache(maxsize=8)
def _policy(public_url: str, allowed: tuple[str, ...]) -> Policy:
    try:
        parsed = Allowed.parse(allowed)
    except ValueError as exc:
        raise ImproperlyConfigured(f"OCPI_OUTBOUND_ALLOWED: {exc}.") from None
    return Policy(is_loopback_instance(public_url), parsed)


def current() -> Policy:
    """The policy of the settings in effect."""
    return _policy(settings.OCPI_PUBLIC_URL, tuple(allowed_setting()))


# --- resolution and connection ------------------------------------------------------------------


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, in the resolver's order (the seam tests replace)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def _resolve_or_fail(host: str, port: int) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]  # a literal address: no lookup
    except ValueError:
        pass
    try:
        addresses = resolve(host, port)
    except OSError as exc:
        raise httpcore.ConnectError(f"{host} did not resolve: {exc}") from None
    if not addresses:
        raise httpcore.ConnectError(f"{host} resolved to no address")
    return addresses


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's socket backend, connecting only to checked addresses."""

    def __init__(self, policy: Policy, inner: httpcore.NetworkBackend | None = None) -> None:
        self.policy = policy
        self.inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = _resolve_or_fail(host, port)
        self.policy.check_addresses(host, addresses)
        last: Exception | None = None
        for address in addresses:  # the checked addresses, never a second resolution
            try:
                return self.inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None  # noqa: S101 (addresses is never empty)
        raise last

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise PolicyViolation("a unix socket is not called")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class PolicyTransport(httpx.BaseTransport):
    """Checks each request's URL, then sends it through ``inner``.

    ``resolve_first``: resolve the target here and check its addresses before sending (the
    request goes to a proxy, which connects to the target itself)."""

    def __init__(
        self, policy: Policy, inner: httpx.BaseTransport, *, resolve_first: bool = False
    ) -> None:
        self.policy = policy
        self.inner = inner
        self.resolve_first = resolve_first

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.policy.check_url(request.url)
        if self.resolve_first:
            host = request.url.raw_host.decode("ascii")
            port = request.url.port or (443 if request.url.scheme == "https" else 80)
            try:
                addresses = _resolve_or_fail(host, port)
            except httpcore.ConnectError as exc:
                raise httpx.ConnectError(str(exc), request=request) from None
            self.policy.check_addresses(host, addresses)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@lru_cache(maxsize=1)
def ssl_context() -> ssl.SSLContext:
    """One TLS context per process for every outbound client (httpx builds a new one per
    transport otherwise: ~20 ms of CPU each, loading the CA bundle). Built as httpx builds its
    default (certifi, or SSL_CERT_FILE / SSL_CERT_DIR from the environment)."""
    return httpx.create_ssl_context()


# httpcore writes a request's headers and its body in two writes: with Nagle's algorithm the body
# waits for the peer's (delayed) ACK of the headers, milliseconds per request on a kept-alive
# connection.
SOCKET_OPTIONS = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def guarded_http_transport(policy: Policy) -> httpx.HTTPTransport:
    """httpx's transport whose connections go through ``GuardedBackend``."""
    transport = httpx.HTTPTransport(verify=ssl_context(), socket_options=SOCKET_OPTIONS)
    pool = transport._pool
    if not hasattr(pool, "_network_backend"):  # an httpx/httpcore upgrade changed the internals
        raise RuntimeError("cannot install the outbound URL policy on this httpx version")
    pool._network_backend = GuardedBackend(policy)
    return transport


def environment_proxies() -> dict[str, str | None]:
    """The proxies httpx would take from the environment: URL pattern -> proxy URL or None."""
    from httpx._utils import get_environment_proxies

    return dict(get_environment_proxies())


def transports(
    policy: Policy, injected: httpx.BaseTransport | None = None
) -> tuple[httpx.BaseTransport, dict[str, httpx.BaseTransport | None]]:
    """The client's transport and mounts: every request under the policy.

    ``injected`` (tests): only the URL checks apply, nothing is resolved or connected."""
    if injected is not None:
        return PolicyTransport(policy, injected), {}
    mounts: dict[str, httpx.BaseTransport | None] = {}
    for pattern, proxy in environment_proxies().items():
        mounts[pattern] = (
            PolicyTransport(
                policy,
                httpx.HTTPTransport(proxy=proxy, verify=ssl_context()),
                resolve_first=True,
            )
            if proxy
            else None  # NO_PROXY: the default (direct, guarded) transport
        )
    return PolicyTransport(policy, guarded_http_transport(policy)), mounts
