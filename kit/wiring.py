"""What ``declare`` does with a spec: registry entries, routes, outbox hook, signals, pull."""

from __future__ import annotations

from typing import Any

from .spec import ModuleSpec, ObjectKey


def puller(spec: ModuleSpec) -> Any:
    """The pull of the module (``kit.sync``): objects stored as a partner's PUT."""
    from django.db import transaction

    from . import services, sync, tasks

    module = spec.identifier.value

    def store(owner: int, key: ObjectKey, item: Any) -> None:
        services.put(spec, key, item, owner=owner)

    def store_page(owner: int, items: list[tuple[ObjectKey, Any]]) -> list[Any]:
        return services.put_page(spec, items, owner=owner)

    def send(partner_id: int, full: bool, countdown: float) -> None:
        kwargs = {"module": module, "partner_id": partner_id, "full": full}
        transaction.on_commit(lambda: tasks.pull.apply_async(kwargs=kwargs, countdown=countdown))

    return sync.Puller(
        module=module,
        noun=f"{spec.name}s",
        owner=spec.owner,
        receiving_roles=tuple(r.value for r in spec.receiving_roles),
        model=spec.model,
        id_column="object_id",
        store=store,
        send=send,
        store_page=store_page,
        id_field=spec.id_field,
        type_field=spec.type_field,
        type_default=spec.type_default,
        check_unlisted=spec.check_unlisted,
    )


def wire(spec: ModuleSpec) -> None:
    from credentials.signals import partner_registered, partner_status_changed
    from ocpi_platform.ocpi import registry
    from ocpi_platform.ocpi.types import InterfaceRole
    from outbox import services as outbox

    from . import push, routes, sync, tasks

    routes.mount(spec)
    registry.register(
        registry.ModuleEndpoint(
            spec.identifier, InterfaceRole.SENDER, f"ocpi:{spec.prefix}-sender", spec.we_send
        )
    )
    registry.register(
        registry.ModuleEndpoint(
            spec.identifier,
            InterfaceRole.RECEIVER,
            f"ocpi:{spec.prefix}-receiver",
            spec.we_receive,
        )
    )
    uid = f"kit-{spec.identifier.value}"
    partner_registered.connect(tasks.registered_receiver(spec), dispatch_uid=uid, weak=False)
    partner_status_changed.connect(tasks.status_receiver(spec), dispatch_uid=uid, weak=False)
    outbox.current_state[spec.identifier.value] = push.current_state_of(spec)
    if spec.pull:
        pull = puller(spec)
        sync.register(pull)
        from . import admin

        admin.register_pulls(pull)  # the sync state and pull actions on the partner page
