"""FakePartner: an in-memory OCPI 2.2.1 platform behind ``httpx.MockTransport``.

It serves versions, version details and credentials, checks the token it expects, records every
request, and can be told to fail the next calls. Nothing leaves the process.
"""

from __future__ import annotations

import base64
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx

BASE = "https://partner.test/ocpi"


def envelope(data: Any = None, status_code: int = 1000, message: str | None = None) -> dict:
    body: dict[str, Any] = {"status_code": status_code, "timestamp": "2026-01-01T00:00:00Z"}
    if data is not None:
        body["data"] = data
    if message:
        body["status_message"] = message
    return body


@dataclass
class Recorded:
    method: str
    url: str
    path: str
    headers: httpx.Headers
    body: Any


@dataclass
class FakePartner:
    accepted_tokens: set[str] = field(default_factory=lambda: {"partner-token-a"})
    wants_plain_tokens: bool = False
    versions: list[str] = field(default_factory=lambda: ["2.1.1", "2.2.1"])
    modules: list[tuple[str, str]] = field(
        default_factory=lambda: [("credentials", "SENDER"), ("locations", "RECEIVER")]
    )
    roles: list[dict] = field(
        default_factory=lambda: [
            {
                "role": "EMSP",
                "party_id": "XYZ",
                "country_code": "DE",
                "business_details": {"name": "Fake eMSP"},
            }
        ]
    )
    issued: list[str] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    received_credentials: list[dict] = field(default_factory=list)
    _scripted: deque = field(default_factory=deque)

    # --- scripting -------------------------------------------------------------------------

    def fail_next(self, error: Exception) -> None:
        self._scripted.append(error)

    def respond_next(
        self, http_status: int, body: Any = None, *, content_type: str = "application/json"
    ) -> None:
        self._scripted.append((http_status, body, content_type))

    @property
    def versions_url(self) -> str:
        return f"{BASE}/versions"

    @property
    def credentials_url(self) -> str:
        return f"{BASE}/2.2.1/credentials"

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    # --- the server ------------------------------------------------------------------------

    def _token(self, request: httpx.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Token "):
            return None
        value = header[len("Token ") :]
        if self.wants_plain_tokens:
            return value
        try:
            return base64.b64decode(value, validate=True).decode()
        except ValueError:
            return None

    def issue(self) -> str:
        token = f"partner-token-{len(self.issued) + 1}"
        self.issued.append(token)
        self.accepted_tokens.add(token)
        return token

    def credentials(self, token: str) -> dict:
        return {"token": token, "url": self.versions_url, "roles": self.roles}

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.requests.append(
            Recorded(request.method, str(request.url), request.url.path, request.headers, body)
        )
        if self._scripted:
            scripted = self._scripted.popleft()
            if isinstance(scripted, Exception):
                raise scripted
            status, payload, content_type = scripted
            content = payload if isinstance(payload, str | bytes) else json.dumps(payload)
            return httpx.Response(status, content=content, headers={"Content-Type": content_type})
        if self._token(request) not in self.accepted_tokens:
            return httpx.Response(401, json=envelope(status_code=2000, message="Unauthorized"))
        path = request.url.path.rstrip("/")
        if path == "/ocpi/versions":
            return httpx.Response(
                200, json=envelope([{"version": v, "url": f"{BASE}/{v}"} for v in self.versions])
            )
        if path == "/ocpi/2.2.1" and "2.2.1" in self.versions:
            endpoints = [
                {"identifier": m, "role": r, "url": f"{BASE}/2.2.1/{m}"} for m, r in self.modules
            ]
            return httpx.Response(200, json=envelope({"version": "2.2.1", "endpoints": endpoints}))
        if path == "/ocpi/2.2.1/credentials":
            if request.method in ("POST", "PUT"):
                self.received_credentials.append(body)
                return httpx.Response(200, json=envelope(self.credentials(self.issue())))
            if request.method == "DELETE":
                return httpx.Response(200, json=envelope())
        return httpx.Response(404, json=envelope(status_code=2000, message="Not found"))
