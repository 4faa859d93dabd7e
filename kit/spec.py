"""``ModuleSpec``: what a module declares; ``declare`` wires it (see the package docstring)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from ocpi_platform.ocpi.registry import ModuleId
from ocpi_platform.ocpi.types import Role

if TYPE_CHECKING:
    from .models import OcpiObject

Methods = frozenset[str]


@dataclass(frozen=True)
class ObjectKey:
    """The key of a client owned object: ``{country_code}/{party_id}/{object_id}``, with the
    ``type`` query parameter for modules that have one (tokens: ``object_type``)."""

    country_code: str
    party_id: str
    object_id: str
    object_type: str = ""

    def _base(self) -> str:
        return "/".join(
            quote(p, safe="") for p in (self.country_code, self.party_id, self.object_id)
        )

    def _query(self) -> str:
        return f"?type={quote(self.object_type, safe='')}" if self.object_type else ""

    @property
    def path(self) -> str:
        """The URL path under the module's endpoint (ids percent-encoded, one segment each)."""
        return self._base() + self._query()

    @property
    def key(self) -> str:
        """The outbox coalescing key: the ids in upper case (CiString), the type as is."""
        return self._base().upper() + self._query()

    @classmethod
    def from_key(cls, key: str) -> ObjectKey:
        path, _, query = key.partition("?type=")
        cc, pid, oid = (unquote(p) for p in path.split("/"))
        return cls(cc, pid, oid, unquote(query))

    def upper(self) -> tuple[str, str, str, str]:
        return (
            self.country_code.upper(),
            self.party_id.upper(),
            self.object_id.upper(),
            self.object_type,
        )

    def __str__(self) -> str:
        return "/".join((self.country_code, self.party_id, self.object_id)) + (
            f" ({self.object_type})" if self.object_type else ""
        )


Validate = Callable[..., dict[str, Any]]  # validate(data, *, partial: bool, key: ObjectKey|None)
Render = Callable[[Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class ModuleSpec:
    """One OCPI module's declaration.

    - ``identifier``: the module id; ``url_prefix`` (default: the id) names the routes
      ``sender/{prefix}``, ``receiver/{prefix}`` and the URL names ``ocpi:{prefix}-sender``...
    - ``owner``: the role that owns the data (we send when we hold it);
      ``receiving_roles``: the roles that receive it, in order of preference for the
      OCPI-to-* headers of a push (we receive when we hold one).
    - ``model``: the storage model, a subclass of ``kit.models.OcpiObject``.
    - ``validate(data, *, partial, key)``: the object (``partial``: a PATCH body) as a dict of
      what was present, DateTimes as aware datetimes; raises DRF ``ValidationError``. ``key`` is
      the object the URL names (None outside a receiver request).
    - ``render(validated)``: OCPI JSON of a validated object (nulls left out).
    - ``id_field``: the body field of the object id (tokens: ``uid``); ``type_field``: the body
      field that is also the ``type`` query parameter of the key (tokens: ``type``), with
      ``type_default`` when the URL has none (``RFID``); ``type_values``: the values the
      ``type`` of a URL may take (another is answered 2001 naming ``type``; empty: any).
    - ``last_updated``: the body field that carries it (top level).
    - ``sender_methods``: ``LIST`` (GET list) and/or ``GET`` (GET one object);
      ``receiver_methods``: a subset of GET, PUT, PATCH, DELETE. Others answer an OCPI error.
    - PATCH rules: ``patchable`` the fields a received PATCH may carry (None: any but the key);
      ``push_patch_fields``: a change of ours that touches only these fields is pushed as a
      PATCH of them (plus last_updated), any other as a PUT; ``push_delete``: a removal of ours
      is pushed as DELETE (False: the module never deletes, e.g. tokens).
    - ``name``: the object's name in messages ("tariff").
    - ``pull``: whether the kit pulls partners' sender lists into our copies;
      ``check_unlisted``: after a complete full pull, a copy the list left out is asked for
      (sender GET of one object) and deleted when the partner answers it does not exist
      (False: such copies are kept, for modules whose sender has no GET of one object).
    """

    identifier: ModuleId
    owner: Role
    receiving_roles: tuple[Role, ...]
    model: type[OcpiObject]
    validate: Validate
    render: Render
    name: str = "object"
    id_field: str = "id"
    type_field: str | None = None
    type_default: str = ""
    type_values: tuple[str, ...] = ()
    last_updated: str = "last_updated"
    sender_methods: Methods = frozenset({"LIST", "GET"})
    receiver_methods: Methods = frozenset({"GET", "PUT", "PATCH", "DELETE"})
    patchable: frozenset[str] | None = None
    push_patch_fields: frozenset[str] = frozenset()
    push_delete: bool = True
    pull: bool = True
    check_unlisted: bool = True
    url_prefix: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)  # module-specific, unused by the kit

    @property
    def prefix(self) -> str:
        return self.url_prefix or self.identifier.value

    @property
    def key_fields(self) -> tuple[str, ...]:
        base = ("country_code", "party_id", self.id_field)
        return (*base, self.type_field) if self.type_field else base

    def key_of(self, data: Mapping[str, Any]) -> ObjectKey:
        """The key a (validated) body names."""
        kind = str(data.get(self.type_field) or self.type_default) if self.type_field else ""
        return ObjectKey(
            str(data["country_code"]), str(data["party_id"]), str(data[self.id_field]), kind
        )

    def we_send(self) -> bool:
        from ocpi_platform.ocpi.parties import has_role

        return has_role(self.owner)

    def we_receive(self) -> bool:
        from ocpi_platform.ocpi.parties import our_parties

        roles = {r.value for r in self.receiving_roles}
        return any(p.role in roles for p in our_parties())


_specs: dict[ModuleId, ModuleSpec] = {}


def declare(spec: ModuleSpec) -> ModuleSpec:
    """Wire a module from its declaration: call once from ``AppConfig.ready()``."""
    _specs[spec.identifier] = spec
    from . import wiring

    wiring.wire(spec)
    return spec


def spec_of(identifier: ModuleId | str) -> ModuleSpec:
    return _specs[ModuleId(identifier)]


def declared() -> list[ModuleSpec]:
    return list(_specs.values())
