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
from datetime import datetime
from typing import Any
from urllib.parse import quote

from django.db import IntegrityError, transaction
from rest_framework import serializers

from credentials.liveness import came_back
from credentials.models import ConnectionStatus, HubParty, Partner, PartnerRole, PartnerState
from ocpi_platform.ocpi.errors import Forbidden, InvalidParameters, NotFound
from ocpi_platform.ocpi.fields import OcpiDateTime, PatternString, StrictChoice
from ocpi_platform.ocpi.pagination import PageRequest
from ocpi_platform.ocpi.parties import has_role
from ocpi_platform.ocpi.principal import PartnerPrincipal
from ocpi_platform.ocpi.registry import ModuleId
from ocpi_platform.ocpi.types import InterfaceRole, Role, format_datetime
from outbox.services import Message, Target, enqueue

MODULE = ModuleId.HUB_CLIENT_INFO


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
    key = {
        "hub_id": hub_id,
        "country_code": url_party[0],
        "party_id": url_party[1],
        "role": data["role"],
    }
    with transaction.atomic():
        # Compare-and-set under the row's lock (read after the wait for it): the newest
        # last_updated wins whatever the interleaving.
        row = HubParty.objects.select_for_update().filter(**key).first()
        if row is None:
            try:
                with transaction.atomic():  # a savepoint: a concurrent create may win
                    HubParty.objects.create(
                        **key, status=data["status"], last_updated=data["last_updated"]
                    )
                return Outcome(created=True)
            except IntegrityError:
                # The other PUT has committed (the unique index waited for it): compare.
                row = HubParty.objects.select_for_update().get(**key)
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


@dataclass(frozen=True)
class Connection:
    """One party of one of our connections, as its ClientInfo describes it."""

    partner_id: int
    country_code: str
    party_id: str
    role: str
    status: str
    changed: datetime

    @property
    def key(self) -> str:
        return f"{self.country_code}/{self.party_id}/{self.role}".upper()

    def info(self) -> dict[str, Any]:
        return render(self.country_code, self.party_id, self.role, self.status, self.changed)

    def message(self) -> Message:
        info = self.info()
        # A configuration module: no routing headers (no sender party, no receiver party).
        path = f"{quote(self.country_code, safe='')}/{quote(self.party_id, safe='')}"
        return Message(MODULE, self.key, path, "PUT", info, {self.key: info})


def connections(partner_ids: Iterable[int] | None = None) -> list[Connection]:
    """The parties of our connections with their status and when it last changed.

    ClientInfo is never deleted (spec): an unregistered connection keeps its former parties
    (``Partner.former_parties``) with its last status, unless the party registered again through
    another connection. Ordered by partner, then party: a stable order for the pages.
    """
    partners = Partner.objects.prefetch_related("roles").order_by("pk")
    if partner_ids is not None:
        partners = partners.filter(pk__in=list(partner_ids))
    live: list[Connection] = []
    former: list[Connection] = []
    for partner in partners:
        changed = partner.status_since or partner.created_at
        for role in partner.roles.all():
            live.append(
                Connection(
                    partner.pk,
                    role.country_code,
                    role.party_id,
                    role.role,
                    partner.status,
                    changed,
                )
            )
        if partner.state == PartnerState.UNREGISTERED:
            for party in partner.former_parties or []:
                former.append(
                    Connection(
                        partner.pk,
                        party["country_code"],
                        party["party_id"],
                        party["role"],
                        partner.status,
                        changed,
                    )
                )
    if former:  # a former party registered again (by any connection) is listed once, live
        registered = PartnerRole.objects.values_list("country_code", "party_id", "role")
        taken = {f"{cc}/{pid}/{role}".upper() for cc, pid, role in registered}
        former = [c for c in former if c.key not in taken]
    return sorted(live + former, key=lambda c: (c.partner_id, c.key))


def page(page: PageRequest, *, caller_id: int) -> tuple[int, list[dict[str, Any]]]:
    """Sender GET: the ClientInfo of every other connection's parties."""
    rows = [c for c in connections() if c.partner_id != caller_id]
    if page.date_from:
        rows = [c for c in rows if c.changed >= page.date_from]
    if page.date_to:
        rows = [c for c in rows if c.changed < page.date_to]
    return len(rows), [c.info() for c in rows[page.offset : page.offset + page.limit]]


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
    for connection in connections([partner.pk]):
        count += enqueue(connection.message(), to)
    return count


def full_resend(partner_ids: Iterable[int]) -> int:
    """Queue the ClientInfo of every other connection for these partners (new or back)."""
    if not we_are_hub():
        return 0
    to = targets(partner_ids)
    count = 0
    with transaction.atomic():
        for connection in connections():
            others = [t for t in to if t.partner_id != connection.partner_id]
            count += enqueue(connection.message(), others)
    return count


def current_body(key: str) -> dict[str, Any] | None:
    """Outbox retry: the current ClientInfo of ``CC/PID/ROLE``, or None when it is unknown."""
    found = [c for c in connections() if c.key == key.upper()]
    return found[0].info() if found else None


def on_status_changed(sender: Any, *, partner: Partner, old: str, new: str, **kwargs: Any) -> None:
    """Inside the status change's transaction: tell the others; resend to one that is back."""
    push_status(partner)
    if came_back(old, new):
        full_resend([partner.pk])


def on_partner_registered(sender: Any, *, partner_id: int, **kwargs: Any) -> None:
    """A new connection learns the status of every other one."""
    full_resend([partner_id])
