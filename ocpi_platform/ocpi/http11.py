"""A lean HTTP/1.1 keep-alive transport for ``httpx.Client`` (the outbound client's default).

httpx's own transport goes through httpcore and h11: per request a connection-pool pass, h11's
event objects and header validation, two socket writes (headers, then body) and a response
model built in layers. For what the outbound client sends (one request at a time per client,
small JSON bodies, HTTP/1.1 with keep-alive) that costs more CPU than everything else of a
push. This transport does the same job directly:

* the request (line, headers, body) is written with one ``sendall``; header names and values
  are checked as h11 checks them (no CR, LF or NUL: a token cannot inject a header);
* the answer is parsed here: status line, headers (at most ``MAX_HEAD_BYTES``),
  ``Content-Length``, ``Transfer-Encoding: chunked`` or read-until-close; interim 1xx answers
  are skipped; anything malformed is ``httpx.RemoteProtocolError``;
* the body is streamed to httpx (which decodes ``Content-Encoding`` and which the client reads
  up to its size limit); a connection goes back to the idle list only when its answer was read
  to the end, said nothing of closing and left no byte unread;
* connections: at most ``max_idle`` idle per origin, dropped after ``keepalive_expiry`` seconds
  idle or when the peer has closed them (readable while idle). A request that fails on a reused
  connection before any byte of an answer came (the peer closed it meanwhile) is sent once more
  on a new connection, unless it is a POST;
* connecting goes through ``connect`` (``urlpolicy.GuardedBackend``'s rules: the host resolved
  once, every address checked by the policy, the connection made to a checked address; TLS
  with the shared context, which verifies the certificate and the host name);
* timeouts are httpx's (the request's ``timeout`` extension): connect, read (per read) and
  write (per write), raised as httpx's ``ConnectTimeout``, ``ReadTimeout``, ``WriteTimeout``;
  socket errors as ``ConnectError``, ``ReadError``, ``WriteError``.

Proxies are not its business: a client with an outbound proxy mounts httpx's own transport for
it (``urlpolicy.transports``).
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

MAX_HEAD_BYTES = 64 * 1024
MAX_CHUNK_LINE = 1024
_READ = 64 * 1024
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\r\n\x00]")
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: ([^\r\n]*))?")
_DEFAULT_PORTS = {"http": 80, "https": 443}

# (host, port, connect timeout) -> a connected socket; raises httpx's errors or PolicyViolation.
Connector = Callable[[str, int, float | None], socket.socket]


class _EndOfStream(Exception):
    """The peer closed the connection."""


class Connection:
    """One socket and what has been read from it but not consumed."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.idle_since = 0.0
        self.used = False  # has carried an exchange (a failure on it may be a stale keep-alive)

    def fill(self) -> None:
        data = self.sock.recv(_READ)
        if not data:
            raise _EndOfStream
        self.buffer += data

    def read_line(self, limit: int) -> bytes:
        while True:
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 2]
                return line
            if len(self.buffer) > limit:
                raise httpx.RemoteProtocolError("a line of the answer is too long")
            self.fill()

    def read_head(self) -> bytes:
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buffer[:end])
                del self.buffer[: end + 4]
                return head
            if len(self.buffer) > MAX_HEAD_BYTES:
                raise httpx.RemoteProtocolError(
                    f"the answer's headers are larger than {MAX_HEAD_BYTES} bytes"
                )
            self.fill()

    def stale(self) -> bool:
        """Idle, yet readable: the peer closed it (or sent what nobody asked for)."""
        if self.buffer:
            return True
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True  # decrypted bytes nobody asked for (select does not see them)
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class _Head:
    __slots__ = ("chunked", "headers", "keep_alive", "length", "reason", "status", "version")

    def __init__(self) -> None:
        self.status = 0
        self.reason = b""
        self.version = b"HTTP/1.1"
        self.headers: list[tuple[bytes, bytes]] = []
        self.length: int | None = None
        self.chunked = False
        self.keep_alive = True


def _parse_head(raw: bytes, method: bytes) -> _Head:
    lines = raw.split(b"\r\n")
    match = _STATUS_LINE.fullmatch(lines[0])
    if match is None:
        raise httpx.RemoteProtocolError("the answer does not start with an HTTP/1.x status line")
    head = _Head()
    minor, head.status, head.reason = match.group(1), int(match.group(2)), match.group(3) or b""
    head.version = b"HTTP/1." + minor
    head.keep_alive = minor == b"1"
    lengths: set[bytes] = set()
    encodings: list[bytes] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            # obs-fold (RFC 9112 §5.2): a continuation of the header before it.
            if not head.headers:
                raise httpx.RemoteProtocolError("the answer's headers start with a continuation")
            name, value = head.headers.pop()
            head.headers.append((name, value + b" " + line.strip(b" \t")))
            continue
        name, colon, value = line.partition(b":")
        if not colon or _NAME.fullmatch(name) is None:
            raise httpx.RemoteProtocolError("the answer has a malformed header line")
        value = value.strip(b" \t")
        if b"\x00" in value:
            raise httpx.RemoteProtocolError("the answer has a header value with a NUL byte")
        head.headers.append((name, value))
    for name, value in head.headers:
        lower = name.lower()
        if lower == b"content-length":
            lengths.update(v.strip() for v in value.split(b","))
        elif lower == b"transfer-encoding":
            encodings.extend(v.strip().lower() for v in value.split(b",") if v.strip())
        elif lower == b"connection":
            tokens = {v.strip().lower() for v in value.split(b",")}
            if b"close" in tokens:
                head.keep_alive = False
            elif b"keep-alive" in tokens and minor == b"0":
                head.keep_alive = True
    if encodings:
        if encodings != [b"chunked"]:
            raise httpx.RemoteProtocolError("the answer uses a transfer coding other than chunked")
        if lengths:
            raise httpx.RemoteProtocolError(
                "the answer has both Content-Length and Transfer-Encoding"
            )
        head.chunked = True
    elif lengths:
        if len(lengths) != 1:
            raise httpx.RemoteProtocolError("the answer has conflicting Content-Length values")
        (length,) = lengths
        if not length.isdigit() or len(length) > 18:
            raise httpx.RemoteProtocolError("the answer has an invalid Content-Length")
        head.length = int(length)
    if method == b"HEAD" or head.status in (204, 304):
        head.length, head.chunked = 0, False
    return head


class _Body(httpx.SyncByteStream):
    """The answer's body, read from the connection as httpx iterates it. Closing gives the
    connection back when the body was read to the end (else the connection is closed)."""

    def __init__(
        self,
        transport: KeepAliveTransport,
        key: tuple[str, str, int],
        connection: Connection,
        head: _Head,
        request: httpx.Request,
    ) -> None:
        self.transport, self.key, self.connection, self.head = transport, key, connection, head
        self.request = request
        self.complete = False
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        if self.closed:
            raise httpx.StreamClosed()
        try:
            if self.head.chunked:
                yield from self._chunked()
            elif self.head.length is not None:
                yield from self._sized(self.head.length)
            else:
                yield from self._until_close()
        except _EndOfStream:
            self._drop()
            raise httpx.RemoteProtocolError(
                "the peer closed the connection before the answer was complete",
                request=self.request,
            ) from None
        except TimeoutError:
            self._drop()
            raise httpx.ReadTimeout("timed out reading the answer", request=self.request) from None
        except httpx.TransportError as exc:
            self._drop()
            exc.request = self.request
            raise
        except OSError as exc:
            self._drop()
            raise httpx.ReadError(str(exc), request=self.request) from None
        self.complete = True

    def _sized(self, remaining: int) -> Iterator[bytes]:
        connection = self.connection
        while remaining > 0:
            if not connection.buffer:
                connection.fill()
            take = bytes(connection.buffer[:remaining])
            del connection.buffer[: len(take)]
            remaining -= len(take)
            yield take

    def _chunked(self) -> Iterator[bytes]:
        connection = self.connection
        while True:
            line = connection.read_line(MAX_CHUNK_LINE)
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise httpx.RemoteProtocolError("the answer has a malformed chunk size") from None
            if size_text[:1] in (b"-", b"+") or size < 0:
                raise httpx.RemoteProtocolError("the answer has a malformed chunk size")
            if size == 0:
                break
            yield from self._sized(size)
            if connection.read_line(MAX_CHUNK_LINE) != b"":
                raise httpx.RemoteProtocolError("a chunk of the answer is not followed by CRLF")
        trailers = 0
        while connection.read_line(MAX_CHUNK_LINE) != b"":
            trailers += 1
            if trailers > 100:
                raise httpx.RemoteProtocolError("the answer has too many trailers")

    def _until_close(self) -> Iterator[bytes]:
        connection = self.connection
        self.head.keep_alive = False
        if connection.buffer:
            data = bytes(connection.buffer)
            connection.buffer.clear()
            yield data
        while True:
            data = connection.sock.recv(_READ)
            if not data:
                return
            yield data

    def _drop(self) -> None:
        self.head.keep_alive = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.complete and self.head.keep_alive and not self.connection.buffer:
            self.transport.release(self.key, self.connection)
        else:
            self.connection.close()


class KeepAliveTransport(httpx.BaseTransport):
    """Plain HTTP/1.1 over kept-alive connections (see the module docstring)."""

    def __init__(
        self,
        connect: Connector,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_idle: int = 4,
        keepalive_expiry: float = 5.0,
    ) -> None:
        self._connect = connect
        self._ssl_context = ssl_context
        self.max_idle = max_idle
        self.keepalive_expiry = keepalive_expiry
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.connections_made = 0  # how many connections it opened (tests, the benchmark)

    # --- connections ---------------------------------------------------------------------------

    def _idle_connection(self, key: tuple[str, str, int]) -> Connection | None:
        now = time.monotonic()
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                connection = idle.pop()
            if now - connection.idle_since > self.keepalive_expiry or connection.stale():
                connection.close()
                continue
            return connection

    def _new_connection(
        self, key: tuple[str, str, int], request: httpx.Request, timeout: float | None
    ) -> Connection:
        scheme, host, port = key
        try:
            sock = self._connect(host, port, timeout)
        except httpx.TransportError as exc:
            exc.request = request
            raise
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                context = self._ssl_context or ssl.create_default_context()
                sock.settimeout(timeout)
                try:
                    sock = context.wrap_socket(sock, server_hostname=host)
                except TimeoutError:
                    raise httpx.ConnectTimeout(
                        "timed out in the TLS handshake", request=request
                    ) from None
                except (ssl.SSLError, OSError) as exc:
                    raise httpx.ConnectError(str(exc), request=request) from None
        except BaseException:
            sock.close()
            raise
        self.connections_made += 1
        return Connection(sock)

    def release(self, key: tuple[str, str, int], connection: Connection) -> None:
        connection.idle_since = time.monotonic()
        with self._lock:
            if self._closed:
                idle = None
            else:
                idle = self._idle.setdefault(key, [])
                if len(idle) >= self.max_idle:
                    idle = None
                else:
                    idle.append(connection)
        if idle is None:
            connection.close()

    # --- requests ------------------------------------------------------------------------------

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"{scheme!r} is not http or https", request=request)
        host = url.raw_host.decode("ascii")
        if not host:
            raise httpx.UnsupportedProtocol("the URL has no host", request=request)
        key = (scheme, host, url.port or _DEFAULT_PORTS[scheme])
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        method = request.method.encode("ascii")
        data = _serialize(request, method)
        retry = method != b"POST"
        while True:
            connection = self._idle_connection(key)
            reused = connection is not None
            if connection is None:
                connection = self._new_connection(key, request, timeouts.get("connect"))
            try:
                head = self._exchange(connection, data, method, timeouts, request)
            except _Stale:
                connection.close()
                if reused and retry:
                    retry = False
                    continue
                raise httpx.RemoteProtocolError(
                    "the peer closed the connection without answering", request=request
                ) from None
            except BaseException:
                connection.close()
                raise
            return httpx.Response(
                head.status,
                headers=head.headers,
                stream=_Body(self, key, connection, head, request),
                extensions={"http_version": head.version, "reason_phrase": head.reason},
            )

    def _exchange(
        self,
        connection: Connection,
        data: bytes,
        method: bytes,
        timeouts: dict[str, Any],
        request: httpx.Request,
    ) -> _Head:
        sock = connection.sock
        connection.used = True
        sock.settimeout(timeouts.get("write"))
        try:
            sock.sendall(data)
        except TimeoutError:
            raise httpx.WriteTimeout("timed out sending the request", request=request) from None
        except (BrokenPipeError, ConnectionResetError):
            raise _Stale from None
        except OSError as exc:
            raise httpx.WriteError(str(exc), request=request) from None
        sock.settimeout(timeouts.get("read"))
        answered = False
        try:
            while True:
                if not connection.buffer:
                    connection.fill()
                answered = True
                head = _parse_head(connection.read_head(), method)
                if 100 <= head.status < 200 and head.status != 101:
                    continue  # an interim answer (100 Continue, 103 Early Hints)
                if head.status == 101:
                    raise httpx.RemoteProtocolError(
                        "the answer switches protocols (HTTP 101)", request=request
                    )
                return head
        except _EndOfStream:
            if not answered:
                raise _Stale from None
            raise httpx.RemoteProtocolError(
                "the peer closed the connection in the middle of the answer's headers",
                request=request,
            ) from None
        except ConnectionResetError:
            if not answered:
                raise _Stale from None
            raise httpx.ReadError("the connection was reset", request=request) from None
        except TimeoutError:
            raise httpx.ReadTimeout("timed out waiting for the answer", request=request) from None
        except httpx.RemoteProtocolError as exc:
            exc.request = request
            raise
        except OSError as exc:
            raise httpx.ReadError(str(exc), request=request) from None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()


class _Stale(Exception):
    """The connection was closed by the peer before any byte of an answer came."""


def _serialize(request: httpx.Request, method: bytes) -> bytes:
    """The request line, headers and body, as one buffer (one write, one TCP segment)."""
    body = request.read()
    parts = [method, b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    chunked = False
    for name, value in request.headers.raw:
        if _NAME.fullmatch(name) is None or _BAD_VALUE.search(value) is not None:
            raise httpx.LocalProtocolError(
                "a header name or value of the request is not valid (CR, LF or NUL)",
                request=request,
            )
        if name.lower() == b"transfer-encoding" and value.lower() == b"chunked":
            chunked = True
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    if chunked:
        if body:
            parts += (b"%x\r\n" % len(body), body, b"\r\n")
        parts.append(b"0\r\n\r\n")
    else:
        parts.append(body)
    return b"".join(parts)
