"""The partner doctor: read-only checks against a live registered partner, a verdict each.

Only GETs, and requests meant to be refused (a wrong token): safe against a production
partner. Every request goes through ``OcpiClient`` (URL policy, timeouts) and is journaled like
any other call. Checks:

1. versions: the list's shape, and our version in it;
2. version details: the shape of the endpoints, credentials among them;
3. envelope: every answer is an envelope (numeric status_code, an OCPI DateTime timestamp);
4. per sender list (cdrs, locations, sessions, tariffs, tokens, hubclientinfo): paging headers
   ``X-Total-Count`` and ``X-Limit``, ``Link`` when there is a next page;
5. per sender list: ``date_from`` in the future returns nothing;
6. token encoding: our token accepted Base64-encoded (2.2.1), or only unencoded;
7. a wrong token is answered HTTP 401;
8. trailing slash: the versions and details URLs answer with and without one.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

import httpx
from django.conf import settings

from credentials import liveness, tokens, urlrefusals
from credentials.models import Partner, PartnerState
from ocpi_platform.ocpi.client import Exchange, OcpiClient, OcpiReply, PartnerError
from ocpi_platform.ocpi.principal import TokenEncoding
from ocpi_platform.ocpi.types import format_datetime, now_utc, parse_datetime

LIST_MODULES = ("cdrs", "hubclientinfo", "locations", "sessions", "tariffs", "tokens")
ROLES = ("SENDER", "RECEIVER")


class Verdict(StrEnum):
    PASS = "PASS"  # noqa: S105 (a verdict, not a password)
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"  # not checked: an earlier check failed, or nothing to check


_RANK = {Verdict.SKIP: 0, Verdict.PASS: 1, Verdict.WARN: 2, Verdict.FAIL: 3}


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    summary: str
    advice: str = ""


@dataclass
class Report:
    partner: str
    versions_url: str
    at: str
    checks: list[Check] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        worst = max((c.verdict for c in self.checks), key=_RANK.__getitem__, default=Verdict.SKIP)
        return Verdict.PASS if worst == Verdict.SKIP else worst

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}

    def as_text(self) -> str:
        lines = [f"Partner doctor: {self.partner} ({self.versions_url}), {self.at}"]
        for c in self.checks:
            lines.append(f"{c.verdict:<4}  {c.name}: {c.summary}")
            if c.advice:
                lines.append(f"      advice: {c.advice}")
        counts = {v: sum(c.verdict == v for c in self.checks) for v in Verdict}
        lines.append(
            f"Verdict: {self.verdict} ({', '.join(f'{n} {v}' for v, n in counts.items() if n)})"
        )
        return "\n".join(lines)


class NotDiagnosable(Exception):
    """The partner cannot be examined (not registered, no versions URL or token)."""


@dataclass
class _Answer:
    what: str
    http_status: int | None
    body: bytes


def _is_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _toggle_slash(url: str) -> str:
    parsed = httpx.URL(url)
    path = parsed.path
    return str(parsed.copy_with(path=path[:-1] if path.endswith("/") else path + "/"))


class _Doctor:
    def __init__(self, partner: Partner, progress: Callable[[Report], None] | None = None) -> None:
        self.partner = partner
        self.progress = progress
        self.token = tokens.outbound_token(partner)
        self.answers: list[_Answer] = []
        self.report = Report(partner.name, partner.versions_url, format_datetime(now_utc()))

    # --- plumbing --------------------------------------------------------------------------

    def _record(self, exchange: Exchange) -> None:
        what = f"{exchange.method} {exchange.url}"
        self.answers.append(_Answer(what, exchange.http_status, exchange.response_body))

    def client(self, token: str | None = None, encoding: TokenEncoding | None = None) -> OcpiClient:
        """Our token (or ``token``), no second try unencoded: each check sees the answer."""
        if token is None and encoding is None:
            client = liveness.client_for(
                self.partner,
                mark_seen_on_reply=False,
                read_timeout=settings.OCPI_DOCTOR_READ_TIMEOUT,
                encoding_fallback=False,
            )
        else:
            client = OcpiClient(
                token or self.token,
                encoding=encoding or TokenEncoding(self.partner.token_encoding),
                read_timeout=settings.OCPI_DOCTOR_READ_TIMEOUT,
                encoding_fallback=False,
                on_refused=urlrefusals.recorder(self.partner.pk),
                partner_id=self.partner.pk,
            )
        client.observers.append(self._record)
        return client

    def get(
        self, url: str, params: dict[str, str] | None = None, **how: Any
    ) -> OcpiReply | PartnerError:
        with self.client(**how) as client:
            try:
                return client.get(url, params=params)
            except PartnerError as exc:
                return exc

    def add(self, name: str, verdict: Verdict, summary: str, advice: str = "") -> None:
        self.report.checks.append(Check(name, verdict, summary, advice))
        if self.progress is not None:
            self.progress(self.report)

    # --- the checks ------------------------------------------------------------------------

    def run(self) -> Report:
        details_url = self.check_versions()
        endpoints = self.check_details(details_url) if details_url else None
        for identifier in LIST_MODULES:
            url = (endpoints or {}).get((identifier, "SENDER"))
            if url:
                self.check_paging(identifier, url)
                self.check_date_filter(identifier, url)
        self.check_token_encoding()
        self.check_wrong_token()
        self.check_trailing_slash(details_url)
        self.check_envelopes()
        return self.report

    def check_versions(self) -> str | None:
        name = "versions"
        answer = self.get(self.partner.versions_url)
        if isinstance(answer, PartnerError):
            self.add(
                name,
                Verdict.FAIL,
                answer.message,
                "The versions endpoint must answer our token with the list of versions.",
            )
            return None
        data = answer.data
        if not isinstance(data, list) or not all(
            isinstance(v, dict) and _is_str(v.get("version")) and _is_str(v.get("url"))
            for v in data
        ):
            self.add(
                name,
                Verdict.FAIL,
                "data is not a list of {version, url} objects.",
                'Answer e.g. {"data": [{"version": "2.2.1", "url": "https://…/2.2.1"}], …}.',
            )
            return None
        wanted = self.partner.version or "2.2.1"
        url = next((v["url"] for v in data if v["version"] == wanted), None)
        listed = ", ".join(str(v["version"]) for v in data) or "none"
        if url is None:
            self.add(
                name,
                Verdict.FAIL,
                f"version {wanted} (negotiated) is not listed (listed: {listed}).",
                "Reconnect or refresh the endpoints: the partner no longer offers our version.",
            )
            return None
        self.add(name, Verdict.PASS, f"versions {listed}; {wanted} at {url}.")
        return str(url)

    def check_details(self, url: str) -> dict[tuple[str, str], str] | None:
        name = "version details"
        answer = self.get(url)
        if isinstance(answer, PartnerError):
            self.add(name, Verdict.FAIL, answer.message, "The details URL of the versions list.")
            return None
        data = answer.data
        endpoints = data.get("endpoints") if isinstance(data, dict) else None
        wanted = self.partner.version or "2.2.1"
        problems = []
        if not isinstance(data, dict) or data.get("version") != wanted:
            problems.append(f"data.version is not {wanted!r}")
        if not isinstance(endpoints, list) or not endpoints:
            problems.append("data.endpoints is not a non-empty list")
            endpoints = []
        found: dict[tuple[str, str], str] = {}
        for item in endpoints:
            if not (
                isinstance(item, dict)
                and _is_str(item.get("identifier"))
                and item.get("role") in ROLES
                and _is_str(item.get("url"))
            ):
                problems.append(f"an endpoint is not {{identifier, role, url}}: {item!r:.80}")
                continue
            found[(item["identifier"], item["role"])] = item["url"]
        if not any(identifier == "credentials" for identifier, _ in found):
            problems.append("no credentials endpoint")
        if problems:
            self.add(
                name,
                Verdict.FAIL,
                "; ".join(problems) + ".",
                "Each endpoint: identifier (a module id), role SENDER or RECEIVER, and url.",
            )
            return found
        modules = ", ".join(f"{i} {r.lower()}" for i, r in sorted(found))
        self.add(name, Verdict.PASS, f"{len(found)} endpoints: {modules}.")
        return found

    def check_paging(self, identifier: str, url: str) -> None:
        name = f"{identifier} list paging"
        answer = self.get(url, {"offset": "0", "limit": "1"})
        if isinstance(answer, PartnerError):
            self.add(name, Verdict.FAIL, answer.message, "A sender list answers a plain GET.")
            return
        problems = []
        if not isinstance(answer.data, list):
            problems.append("data is not a list")
        headers = answer.headers
        total, limit = headers.get("X-Total-Count", ""), headers.get("X-Limit", "")
        if not total.strip().isdigit():
            problems.append("X-Total-Count is missing or not a number")
        if not limit.strip().isdigit():
            problems.append("X-Limit is missing or not a number")
        count = len(answer.data) if isinstance(answer.data, list) else 0
        more = total.strip().isdigit() and int(total) > count
        link = answer.next_link()
        if more and link is None:
            problems.append(f'{total} objects, {count} returned, but no Link rel="next"')
        if problems:
            self.add(
                name,
                Verdict.FAIL,
                "; ".join(problems) + ".",
                "Spec transport › Pagination: every page carries X-Total-Count and X-Limit, "
                'and Link: <next page URL>; rel="next" unless it is the last page. Without '
                "Link a pull stops after the first page.",
            )
            return
        paged = f"Link to {link}" if link else "one page only (Link not exercised)"
        self.add(name, Verdict.PASS, f"X-Total-Count {total}, X-Limit {limit}; {paged}.")

    def check_date_filter(self, identifier: str, url: str) -> None:
        name = f"{identifier} date_from"
        future = format_datetime((now_utc() + timedelta(days=365)).replace(microsecond=0))
        answer = self.get(url, {"date_from": future, "limit": "1"})
        if isinstance(answer, PartnerError):
            self.add(name, Verdict.FAIL, answer.message, "date_from is a standard parameter.")
            return
        total = answer.headers.get("X-Total-Count", "").strip()
        if (isinstance(answer.data, list) and answer.data) or (total.isdigit() and int(total)):
            self.add(
                name,
                Verdict.FAIL,
                f"date_from={future} (a year ahead) still returned objects "
                f"(X-Total-Count {total or '?'}).",
                "date_from must filter on last_updated: incremental pulls read everything "
                "again otherwise.",
            )
            return
        self.add(name, Verdict.PASS, f"date_from={future} returned nothing.")

    def check_token_encoding(self) -> None:
        name = "token encoding"
        url = self.partner.versions_url
        encoded = self.get(url, encoding=TokenEncoding.BASE64)
        plain = self.get(url, encoding=TokenEncoding.PLAIN)
        encoded_ok = isinstance(encoded, OcpiReply)
        plain_ok = isinstance(plain, OcpiReply)
        ours = self.partner.token_encoding
        if encoded_ok:
            also = " and unencoded" if plain_ok else " only"
            self.add(name, Verdict.PASS, f"our token is accepted Base64-encoded{also}.")
        elif plain_ok:
            self.add(
                name,
                Verdict.FAIL,
                "our token is refused Base64-encoded and accepted only unencoded "
                f"(we send it {ours}).",
                "OCPI 2.2.1 sends 'Token <base64 of the token>'; the partner behaves like "
                "2.1.1. We fall back to the unencoded form, but ask the partner to accept both.",
            )
        else:
            self.add(
                name,
                Verdict.FAIL,
                f"our token is refused in both forms ({encoded.message})",
                "Rotate the tokens or connect again: the partner does not know our token.",
            )

    def check_wrong_token(self) -> None:
        name = "wrong token refused"
        wrong = "doctor-" + secrets.token_urlsafe(18)
        answer = self.get(self.partner.versions_url, token=wrong, encoding=TokenEncoding.BASE64)
        if isinstance(answer, OcpiReply):
            self.add(
                name,
                Verdict.FAIL,
                "a made-up token got the versions list (HTTP 200).",
                "Every endpoint must check the token; answer HTTP 401 to an unknown one.",
            )
        elif answer.http_status == 401:
            self.add(name, Verdict.PASS, "a made-up token was answered HTTP 401.")
        elif answer.http_status is not None and 400 <= answer.http_status < 500:
            self.add(
                name,
                Verdict.WARN,
                f"a made-up token was answered HTTP {answer.http_status}, not 401.",
                "Spec transport › Authorization: an unknown token gets HTTP 401.",
            )
        else:
            self.add(name, Verdict.FAIL, answer.message, "An unknown token gets HTTP 401.")

    def check_trailing_slash(self, details_url: str | None) -> None:
        name = "trailing slash"
        failing = []
        for url in filter(None, (self.partner.versions_url, details_url)):
            other = _toggle_slash(url)
            answer = self.get(other)
            if isinstance(answer, PartnerError):
                failing.append(f"{other}: {answer.message}")
        if failing:
            self.add(
                name,
                Verdict.WARN,
                "; ".join(failing),
                "Serve a URL with and without its trailing slash: clients join paths "
                "differently. We call the URLs exactly as the partner gave them.",
            )
            return
        self.add(name, Verdict.PASS, "the versions and details URLs answer with or without '/'.")

    def check_envelopes(self) -> None:
        name = "envelope and timestamp"
        problems: dict[str, str] = {}  # one example per kind of problem
        for answer in self.answers:
            if answer.http_status is None or answer.http_status >= 500:
                continue
            problem = _envelope_problem(answer.body)
            if problem:
                problems.setdefault(problem, f"{answer.what} (HTTP {answer.http_status})")
        if not self.answers:
            self.add(name, Verdict.SKIP, "no answer to examine.")
        elif problems:
            self.add(
                name,
                Verdict.FAIL,
                "; ".join(f"{p}, e.g. {where}" for p, where in list(problems.items())[:3]),
                "Every answer, errors included, is {data, status_code (int), status_message, "
                "timestamp}; timestamps are RFC 3339 in UTC, e.g. 2015-06-29T20:39:09Z.",
            )
        else:
            self.add(name, Verdict.PASS, f"{len(self.answers)} answers, each a valid envelope.")


def _envelope_problem(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return "not JSON"
    if not isinstance(body, dict):
        return "not a JSON object"
    code = body.get("status_code")
    if isinstance(code, bool) or not isinstance(code, int):
        return f"status_code is not an integer ({code!r:.40})"
    if "status_message" in body and not isinstance(body["status_message"], str | None):
        return "status_message is not a string"
    stamp = body.get("timestamp")
    if not isinstance(stamp, str):
        return "no timestamp"
    try:
        parse_datetime(stamp)
    except ValueError:
        return f"timestamp {stamp[:40]!r} is not an OCPI DateTime (UTC, RFC 3339)"
    return ""


def check_diagnosable(partner: Partner) -> None:
    """Raise ``NotDiagnosable`` unless the partner is registered, with a URL and our token."""
    if partner.state != PartnerState.REGISTERED:
        raise NotDiagnosable(f"{partner.name} is {partner.state}, not REGISTERED.")
    if not partner.versions_url or not tokens.outbound_token(partner):
        raise NotDiagnosable(f"{partner.name} has no versions URL or no token to call it.")


def diagnose(partner: Partner, progress: Callable[[Report], None] | None = None) -> Report:
    """Run every check against ``partner`` (registered, with a versions URL and our token).

    ``progress`` is called with the report so far after each check (a run in the admin stores
    it: the page shows how far it got, and what it found before a time limit stopped it).
    """
    check_diagnosable(partner)
    return _Doctor(partner, progress).run()
