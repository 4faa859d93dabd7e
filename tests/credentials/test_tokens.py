"""Resolved tokens of registered partners are reused for OCPI_AUTH_CACHE_SECONDS; how tokens
are generated."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from credentials import tokens

VERSION = "/ocpi/2.2.1"


@pytest.fixture(autouse=True)
def _cache_on(settings: Any) -> Iterator[None]:
    settings.OCPI_AUTH_CACHE_SECONDS = 60
    tokens.forget_resolved()
    yield
    tokens.forget_resolved()


def queries(api, token: str) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as captured:
        reply = api.get(VERSION, token=token)
    return reply.status, len(captured.captured_queries)


def test_a_registered_partners_token_is_looked_up_once(api, registered):
    status, first = queries(api, registered.inbound_token)
    assert status == 200
    status, second = queries(api, registered.inbound_token)
    assert status == 200
    assert second < first
    assert second == 0  # version details need no query of their own


def test_a_revoked_token_is_refused_at_once(api, registered):
    assert api.get(VERSION, token=registered.inbound_token).status == 200

    tokens.revoke(registered.partner.inbound_tokens.all())

    assert api.get(VERSION, token=registered.inbound_token).status == 401


def test_token_a_is_never_kept(api, invited):
    assert api.get("/ocpi/versions", token=invited.token_a).status == 200
    assert tokens._principals == {}


def test_with_the_cache_off_every_request_looks_the_token_up(api, registered, settings):
    settings.OCPI_AUTH_CACHE_SECONDS = 0
    api.get(VERSION, token=registered.inbound_token)
    assert tokens._principals == {}
    assert queries(api, registered.inbound_token)[1] > 0


def test_a_generated_token_never_starts_with_a_dash(monkeypatch):
    """Operators paste tokens after --token-a: a leading dash would read as an option."""
    drawn = iter(["-starts-with-a-dash", "fine-token"])
    monkeypatch.setattr(tokens.secrets, "token_urlsafe", lambda n: next(drawn))

    assert tokens.generate_token() == "fine-token"


def test_the_token_digest_is_the_hmac_sha256_of_the_key_in_use(settings):
    import hashlib
    import hmac

    from credentials.tokens import digest

    for key in ("first-key-" * 5, "second-key-" * 5):
        settings.OCPI_TOKEN_HMAC_KEY = key
        for token in ("abc", "x" * 64, "ümlaut"):
            expected = hmac.new(key.encode(), token.encode(), hashlib.sha256).hexdigest()
            assert digest(token) == expected
