"""ModulePartner: the fake partner, plus one functional module (any declared to the kit) on
both sides.

* Receiver side (we push to it): ``PUT``/``PATCH``/``DELETE`` under ``/ocpi/2.2.1/{module}/…``
  are recorded and answered with OCPI 1000 (``answers`` can script other answers per call).
* Sender side (we pull from it): ``GET /ocpi/2.2.1/{module}`` serves ``served()`` in pages of
  ``page_size``, linked by ``Link: <…>; rel="next"``, with ``X-Total-Count`` and ``X-Limit``.
  ``date_from``/``date_to`` filter on ``last_updated`` like a real sender. ``loop_from`` makes
  the Link of that page (0-based) point back at the first page: a sender whose paging loops.
  ``GET /ocpi/2.2.1/{module}/{id}[/…]`` (the sender's single object, ids ignore case) serves
  ``find(ids)``, HTTP 404 with OCPI 2003 when there is none; ``object_answers`` scripts the
  answer for an id (upper case): ``(http, body)`` or an exception to raise, used once.

Everything else (versions, credentials, scripted failures) is ``FakePartner``'s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

import httpx

from tests.fakes.partner import FakePartner, Recorded, envelope


def _as_text(value: str) -> str:
    """OCPI DateTimes compare as text once both have the same shape (…Z, no fraction)."""
    return value.rstrip("Z").split(".")[0]


@dataclass
class ModulePartner(FakePartner):
    module: str = "tariffs"
    id_field: str = "id"
    # Sender side: what a GET of the list returns.
    objects: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = 2
    loop_from: int | None = None
    # Sender side: scripted answers to a GET of one object, by its id in upper case.
    object_answers: dict[str, tuple[int, dict[str, Any]] | Exception] = field(default_factory=dict)
    # Receiver side: what each PUT/PATCH/DELETE is answered with; None = OCPI 1000.
    answers: list[tuple[int, dict[str, Any]] | Exception] = field(default_factory=list)

    @property
    def module_path(self) -> str:
        return f"/ocpi/2.2.1/{self.module}"

    def served(self) -> list[dict[str, Any]]:
        return self.objects

    def find(self, ids: list[str]) -> Any:
        wanted = ids[0].upper()
        return next(
            (o for o in self.served() if str(o.get(self.id_field, "")).upper() == wanted), None
        )

    @property
    def pushes(self) -> list[Recorded]:
        """PUT/PATCH/DELETE requests received at the module's endpoint, in order."""
        return [
            r
            for r in self.requests
            if r.method in ("PUT", "PATCH", "DELETE") and r.path.startswith(self.module_path + "/")
        ]

    @property
    def list_requests(self) -> list[Recorded]:
        return [
            r for r in self.requests if r.method == "GET" and r.path.rstrip("/") == self.module_path
        ]

    @property
    def object_requests(self) -> list[Recorded]:
        """GETs of one object (sender side: ``{module}/{id}[/…]``), in order."""
        return [
            r
            for r in self.requests
            if r.method == "GET" and r.path.startswith(self.module_path + "/")
        ]

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        base = self.module_path
        if self._scripted or not path.startswith(base):
            return super().handler(request)
        body = json.loads(request.content) if request.content else None
        self.requests.append(
            Recorded(request.method, str(request.url), path, request.headers, body)
        )
        if self._token(request) not in self.accepted_tokens:
            return httpx.Response(401, json=envelope(status_code=2000, message="Unauthorized"))
        if request.method == "GET" and path.rstrip("/") == base:
            return self._page(request)
        if request.method == "GET" and path.startswith(base + "/"):
            return self._object(request)
        if request.method in ("PUT", "PATCH", "DELETE") and path.startswith(base + "/"):
            if self.answers:
                answer = self.answers.pop(0)
                if isinstance(answer, Exception):
                    raise answer
                status, payload = answer
                return httpx.Response(status, json=payload)
            return httpx.Response(200, json=envelope())
        return httpx.Response(404, json=envelope(status_code=2000, message="Not found"))

    def _page(self, request: httpx.Request) -> httpx.Response:
        query = {k: v[-1] for k, v in parse_qs(request.url.query.decode()).items()}
        items = list(self.served())
        if "date_from" in query:
            since = _as_text(query["date_from"])
            items = [i for i in items if _as_text(str(i.get("last_updated", ""))) >= since]
        if "date_to" in query:
            until = _as_text(query["date_to"])
            items = [i for i in items if _as_text(str(i.get("last_updated", ""))) < until]
        offset = int(query.get("offset", 0))
        limit = min(int(query.get("limit", self.page_size)), self.page_size)
        page = items[offset : offset + limit]
        headers = {"X-Total-Count": str(len(items)), "X-Limit": str(self.page_size)}
        number = offset // limit if limit else 0
        next_offset = offset + limit
        if self.loop_from is not None and number >= self.loop_from:
            next_offset = 0
        if next_offset < len(items):
            link_query = {**query, "offset": str(next_offset), "limit": str(limit)}
            url = str(request.url).split("?")[0]
            headers["Link"] = f'<{url}?{urlencode(link_query)}>; rel="next"'
        return httpx.Response(200, json=envelope(page), headers=headers)

    def _object(self, request: httpx.Request) -> httpx.Response:
        raw = request.url.raw_path.decode().split("?")[0]
        ids = [unquote(part) for part in raw[len(self.module_path) + 1 :].strip("/").split("/")]
        scripted = self.object_answers.pop(ids[0].upper(), None)
        if isinstance(scripted, Exception):
            raise scripted
        if scripted is not None:
            status, payload = scripted
            return httpx.Response(status, json=payload)
        found = self.find(ids)
        if found is None:
            return httpx.Response(
                404, json=envelope(status_code=2003, message=f"Unknown object {'/'.join(ids)}")
            )
        return httpx.Response(200, json=envelope(found))
