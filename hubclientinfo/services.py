"""HubClientInfo (spec mod_hub_client_info): the status of parties connected through a hub.

* Receiver (every platform connected to a hub): a partner registered as HUB PUTs the ClientInfo of
  the parties behind it; we keep it per (country_code, party_id, role) on ``HubParty``.
* Sender and push (when one of our parties is a HUB): the ClientInfo of our connections comes
  from the partners' roles and their liveness status (``Partner.status``). Every status change is
  PUT to the reachable partners with a hubclientinfo RECEIVER endpoint, through the outbox.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F, QuerySet
from django.db.models.functions import Coalesce
from django.db.models.lookups import GreaterThanOrEqual, LessThan
from rest_framework import serializers

from credentials.models import ConnectionStatus, HubParty, Partner, PartnerRole
from ocpi_platform.ocpi.errors import Forbidden, InvalidParameters, NotFound
from ocpi_platform.ocpi.fields import OcpiDateTime, PatternString, StrictChoice
from ocpi_platform.ocpi.pagination import PageRequest
from ocpi_platform.ocpi.parties import has_role
from ocpi_platform.ocpi.principal import PartnerPrincipal
from ocpi_platform.ocpi.types import InterfaceRole, Role, format_datetime
from outbox.services import Message, Target, enqueue

MODULE = "hubclientinfo"


def we_are_hub() -> bool:
    return has_role(Role.HUB)


# --- the ClientInfo object ------------------------------------------------------------------------


class ClientInfoSerializer(serializers.Serializer[Any]):
    party_id = PatternString(3, r"[A-Za-z0-9]{3}", "three letters or digits")
    country_code = PatternString(2, r"[A-Za-z]{2}", "an ISO 3166-1 alpha-2 country code")
    role = StrictChoice([r.value for r in Role])
    status = StrictChoice([s.value for s in ConnectionStatus])
    last_updated = OcpiDateTime()


def validate(body: Any) -> dict[str, Any]:
    serializer = ClientInfoSerializer(data=body)
    if not serializer.is_valid():
        raise serializers.ValidationError(serializer.errors)
    data: dict[str, Any] = dict(serializer.validated_data)
    data["country_code"] = data["country_code"].upper()
    data["party_id"] = data["party_id"].upper()
    return data


def render(
    country_code: str, party_id: str, role: str, status: str, last_updated: Any
) -> dict[str, Any]:
    return {
        "party_id": party_id,
        "country_code": country_code,
        "role": role,
        "status": status,
        "last_updated": format_datetime(last_updated),
    }


# --- receiver: a hub tells us about the parties behind it ----------------------------------------


def require_hub(principal: PartnerPrincipal) -> None:
    if not any(p.role == Role.HUB for p in principal.parties):
        raise Forbidden(
            "Only a partner registered with the role HUB may use the hubclientinfo receiver "
            "endpoint; your credentials do not list role HUB."
        )


@dataclass(frozen=True)
class Outcome:
    created: bool
    message: str | None = None


def put(hub_id: int, country_code: str, party_id: str, body: Any) -> Outcome:
    """Store the hub's ClientInfo. The URL must name the party the body describes."""
    data = validate(body)
    url_party = (country_code.upper(), party_id.upper())
    if (data["country_code"], data["party_id"]) != url_party:
        raise InvalidParameters(
            f"The ClientInfo describes {data['country_code']}/{data['party_id']}, but the URL "
            f"names {url_party[0]}/{url_party[1]}; they must be the same party."
        )
    key = {"hub_id": hub_id, "country_code": url_party[0], "party_id": url_party[1]}
    with transaction.atomic():
        row = HubParty.objects.select_for_update().filter(**key, role=data["role"]).first()
        if row is None:
            HubParty.objects.create(
                **key, role=data["role"], status=data["status"], last_updated=data["last_updated"]
            )
            return Outcome(created=True)
        if data["last_updated"] < row.last_updated:
            return Outcome(
                created=False,
                message=(
                    "Not applied: the stored ClientInfo is newer "
                    f"(last_updated {format_datetime(row.last_updated)})."
                ),
            )
        row.status = data["status"]
        row.last_updated = data["last_updated"]
        row.save(update_fields=["status", "last_updated"])
        # received_at is the default of a new row only; keep the first time we heard of it.
    return Outcome(created=False)


def get(hub_id: int, country_code: str, party_id: str) -> dict[str, Any]:
    """The stored ClientInfo of the party; when it has several roles, the newest one."""
    row = (
        HubParty.objects.filter(
            hub_id=hub_id, country_code=country_code.upper(), party_id=party_id.upper()
        )
        .order_by("-last_updated", "role")
        .first()
    )
    if row is None:
        raise NotFound(f"No ClientInfo of {country_code.upper()}/{party_id.upper()} is stored.")
    return render(row.country_code, row.party_id, row.role, row.status, row.last_updated)


# --- sender and push: we are the hub ------------------------------------------------------------


# When a connection's ClientInfo last changed: its last status change, else its creation.
CHANGED = Coalesce(F("partner__status_since"), F("partner__created_at"))


def _connections() -> QuerySet[PartnerRole]:
    """The parties of our connections, with their status and its last change."""
    return PartnerRole.objects.select_related("partner").annotate(changed=CHANGED).order_by("pk")


def _info(row: PartnerRole) -> dict[str, Any]:
    return render(
        row.country_code,
        row.party_id,
        row.role,
        row.partner.status,
        getattr(row, "changed", None) or row.partner.status_since or row.partner.created_at,
    )


def page(page: PageRequest, *, caller_id: int) -> tuple[int, list[dict[str, Any]]]:
    """Sender GET: the ClientInfo of every other connection's parties, oldest row first."""
    rows = _connections().exclude(partner_id=caller_id)
    if page.date_from:
        rows = rows.filter(GreaterThanOrEqual(CHANGED, page.date_from))
    if page.date_to:
        rows = rows.filter(LessThan(CHANGED, page.date_to))
    total = rows.count()
    return total, [_info(r) for r in rows[page.offset : page.offset + page.limit]]


def _key(country_code: str, party_id: str, role: str) -> str:
    return f"{country_code}/{party_id}/{role}".upper()


def _message(row: PartnerRole) -> Message:
    info = _info(row)
    key = _key(row.country_code, row.party_id, row.role)
    # A configuration module: no routing headers (no sender party, no receiver party).
    return Message(MODULE, key, f"{row.country_code}/{row.party_id}", "PUT", info, {key: info})


def targets(partner_ids: Iterable[int] | None = None) -> list[Target]:
    """Reachable partners with a hubclientinfo RECEIVER endpoint."""
    partners = Partner.objects.reachable().filter(
        endpoints__identifier=MODULE, endpoints__role=InterfaceRole.RECEIVER
    )
    if partner_ids is not None:
        partners = partners.filter(pk__in=list(partner_ids))
    return [Target(pk) for pk in sorted(set(partners.values_list("pk", flat=True)))]


def push_status(partner: Partner) -> int:
    """Queue the partner's ClientInfo (one per role) for every other receiver."""
    if not we_are_hub():
        return 0
    to = [t for t in targets() if t.partner_id != partner.pk]
    count = 0
    for row in _connections().filter(partner_id=partner.pk):
        count += enqueue(_message(row), to)
    return count


def full_resend(partner_ids: Iterable[int]) -> int:
    """Queue the ClientInfo of every other connection for these partners (new or back)."""
    if not we_are_hub():
        return 0
    count = 0
    with transaction.atomic():
        for target in targets(partner_ids):
            for row in _connections().exclude(partner_id=target.partner_id):
                count += enqueue(_message(row), [target])
    return count


def current_body(key: str) -> dict[str, Any] | None:
    """Outbox retry: the current ClientInfo of ``CC/PID/ROLE``, or None when it is gone."""
    country_code, party_id, role = key.split("/")
    row = (
        _connections()
        .filter(country_code__iexact=country_code, party_id__iexact=party_id, role=role)
        .first()
    )
    return None if row is None else _info(row)


def on_status_changed(sender: Any, *, partner: Partner, old: str, new: str, **kwargs: Any) -> None:
    """Inside the status change's transaction: tell the others; resend to one that is back."""
    push_status(partner)
    if new == ConnectionStatus.CONNECTED and old in (
        ConnectionStatus.OFFLINE,
        ConnectionStatus.SUSPENDED,
    ):
        full_resend([partner.pk])


def on_partner_registered(sender: Any, *, partner_id: int, **kwargs: Any) -> None:
    """A new connection learns the status of every other one."""
    full_resend([partner_id])
