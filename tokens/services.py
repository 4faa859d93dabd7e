"""Changes of our own tokens beyond the kit's PUT: blocking and unblocking (pushed as PATCH).

Every way in (admin action, shell, import) goes through the kit's write path, so the same
validation, ``last_updated`` stamp and outbox push apply.
"""

from __future__ import annotations

import kit
from kit import services
from kit.push import key_of
from ocpi_platform.ocpi.errors import InvalidParameters
from ocpi_platform.ocpi.registry import ModuleId
from ocpi_platform.ocpi.types import format_datetime, now_utc

from .models import Token


def set_valid(token: Token, valid: bool) -> services.Outcome:
    """Block (``valid=False``) or unblock one of our tokens; the CPOs get a PATCH of ``valid``.
    Tokens are never deleted: blocking is how a token stops charging."""
    if token.partner_id is not None:
        raise InvalidParameters("A partner's token is its own: only its eMSP can block it.")
    spec = kit.spec_of(ModuleId.TOKENS)
    body = {"valid": valid, "last_updated": format_datetime(now_utc())}
    return services.patch(spec, key_of(token), body, owner=None)
