"""The module kit: one declaration per OCPI module, the plumbing from it.

Declaring a module
==================

A functional module (tariffs, tokens, ...) is one app. It defines its storage model on
``kit.models.OcpiObject`` (a document-stored client owned object) and declares itself once, in
``AppConfig.ready()``::

    # tariffs/models.py
    from kit.models import OcpiObject

    class Tariff(OcpiObject):
        currency = models.CharField(max_length=3)          # indexed columns that pay, if any

        class Meta(OcpiObject.Meta):
            constraints = OcpiObject.key_constraints()     # unique case-insensitive key

    # tariffs/apps.py
    class TariffsConfig(AppConfig):
        name = "tariffs"

        def ready(self) -> None:
            import kit
            from ocpi_platform.ocpi.registry import ModuleId
            from ocpi_platform.ocpi.types import Role
            from . import schema
            from .models import Tariff

            kit.declare(
                kit.ModuleSpec(
                    identifier=ModuleId.TARIFFS,
                    owner=Role.CPO,
                    receiving_roles=(Role.EMSP, Role.NSP, Role.NAP, Role.SCSP, Role.OTHER,
                                     Role.HUB),
                    model=Tariff,
                    validate=lambda data, partial, key: schema.validate_tariff(data),
                    render=schema.render_tariff,
                    name="tariff",
                    receiver_methods=frozenset({"GET", "PUT", "DELETE"}),
                    push_delete=True,
                )
            )

From that the kit provides (see each module of the package):

- ``kit.routes``: the version-details entries (``ocpi:{prefix}-sender`` / ``-receiver``,
  enabled when we hold the owner role / a receiving role) and the URL routes, mounted through
  ``registry.mount`` (no manual include);
- ``kit.views``/``kit.services``: the sender list (offset, limit, date_from, date_to, Link,
  X-Total-Count, X-Limit) and sender GET of one object; the receiver
  ``/{country_code}/{party_id}/{id}[?type=...]`` with GET/PUT/PATCH/DELETE as declared (the
  URL's party must be one of the caller's, the body's ids must match the URL's, the newest
  ``last_updated`` wins under a row lock; PATCH needs ``last_updated``; 2001 naming the field);
- ``kit.push``: our changes through the outbox (PUT on change, PATCH where declared, DELETE
  when removed where declared), full resend on registration and on return to CONNECTED;
- ``kit.sync``: the pull of a partner's sender list into ``kit.models.ModuleSync`` (one row
  per partner and module), ``manage.py ocpi_pull MODULE NAME``;
- ``kit.admin``: admin base classes (our objects editable, partners' read-only);
- ``tests/fakes/module_partner.py``: a fake partner serving any declared module.

The services are called with the spec: ``kit.services.put(spec, key, data, owner=None)`` is our
own change (stamped now, pushed), ``owner=partner_id`` a partner's copy. ``kit.spec_of(ModuleId)``
gives a declared module's spec.

API stability: ``ModuleSpec``'s fields and ``declare``/``spec_of`` keep their meaning; new
fields get defaults. Changes are noted here:

- after the first commit: ``ModuleSpec.check_unlisted`` (default True); ``OcpiObject.assign``
  (copy indexed columns from a validated object) and ``OcpiObject.list_indexes()``; the
  ``validate`` hook is called ``validate(data, partial=..., key=...)`` with keywords.
"""

from __future__ import annotations

from .spec import ModuleSpec, ObjectKey, declare, declared, spec_of

__all__ = ["ModuleSpec", "ObjectKey", "declare", "declared", "spec_of"]
