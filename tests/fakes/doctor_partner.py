"""DoctorPartner: the fake partner with a locations sender list, optionally breaking one rule
the partner doctor checks (``breaks``), to see that check fail and the others pass."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.fakes.locations_partner import LocationsPartner
from tests.fakes.partner import envelope

RULES = (
    "versions_shape",
    "details_shape",
    "envelope",
    "paging_headers",
    "link",
    "date_filter",
    "plain_only",
    "any_token",
    "trailing_slash",
)


def _locations() -> list[dict[str, Any]]:
    return [
        {"country_code": "DE", "party_id": "XYZ", "id": f"L{n}", "last_updated": stamp}
        for n, stamp in enumerate(
            ("2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z", "2025-03-01T00:00:00Z")
        )
    ]


@dataclass
class DoctorPartner(LocationsPartner):
    breaks: str = ""
    locations: list[dict[str, Any]] = field(default_factory=_locations)
    modules: list[tuple[str, str]] = field(
        default_factory=lambda: [("credentials", "SENDER"), ("locations", "SENDER")]
    )

    def __post_init__(self) -> None:
        self.wants_plain_tokens = self.breaks == "plain_only"

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.breaks == "any_token":
            request.headers["Authorization"] = "Token " + _b64(next(iter(self.accepted_tokens)))
        if self.breaks == "trailing_slash" and request.url.path.endswith("/"):
            return httpx.Response(404, json=envelope(status_code=2000, message="Not found"))
        if self.breaks == "date_filter" and "date_from" in request.url.params:
            request.url = request.url.copy_remove_param("date_from")
        response = super().handler(request)
        body = json.loads(response.content)
        headers = dict(response.headers)
        path = request.url.path.rstrip("/")
        if self.breaks == "versions_shape" and path == "/ocpi/versions":
            body["data"] = {"versions": body.get("data")}
        if self.breaks == "details_shape" and path == "/ocpi/2.2.1":
            for endpoint in body["data"]["endpoints"]:
                endpoint.pop("role")
        if self.breaks == "envelope":
            body["timestamp"] = "01/01/2026 00:00"
        if self.breaks == "paging_headers":
            headers.pop("x-total-count", None)
            headers.pop("x-limit", None)
        if self.breaks == "link":
            headers.pop("link", None)
        headers.pop("content-length", None)
        return httpx.Response(response.status_code, json=body, headers=headers)


def _b64(value: str) -> str:
    import base64

    return base64.b64encode(value.encode()).decode()
