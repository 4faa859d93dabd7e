"""Loopback: several platform "instances" in one process, one test database.

``LoopbackTransport`` replays each httpx request through Django's test ``Client``, under the
settings of the instance that owns the URL's host. The platform can so register with itself as a
second party, running the full credentials handshake in both directions without sockets.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from django.test import Client, override_settings


@dataclass(frozen=True)
class Instance:
    host: str
    parties: str
    business_name: str

    @property
    def public_url(self) -> str:
        return f"https://{self.host}"

    @property
    def versions_url(self) -> str:
        return f"{self.public_url}/ocpi/versions"

    def settings(self) -> override_settings:
        return override_settings(
            OCPI_PUBLIC_URL=self.public_url,
            OCPI_PARTIES=self.parties,
            OCPI_BUSINESS_NAME=self.business_name,
            ALLOWED_HOSTS=["*"],
        )


class LoopbackTransport(httpx.BaseTransport):
    def __init__(self, *instances: Instance) -> None:
        self.instances = {i.host: i for i in instances}
        self.calls: list[tuple[str, str]] = []  # in the order the requests started

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        instance = self.instances[request.url.host]
        self.calls.append((request.method, str(request.url)))
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("host", "content-length", "content-type")
        }
        path = request.url.raw_path.decode()
        with instance.settings():
            response = Client(HTTP_HOST=instance.host).generic(
                request.method,
                path,
                data=request.content,
                content_type=request.headers.get("Content-Type", "application/json"),
                headers=headers,
            )
        return httpx.Response(
            response.status_code, headers=dict(response.items()), content=response.content
        )
