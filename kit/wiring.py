"""What ``declare`` does with a spec: registry entries, routes, outbox hook, signals."""

from __future__ import annotations

from .spec import ModuleSpec


def wire(spec: ModuleSpec) -> None:
    from credentials.signals import partner_registered, partner_status_changed
    from ocpi_platform.ocpi import registry
    from ocpi_platform.ocpi.types import InterfaceRole
    from outbox import services as outbox

    from . import push, routes, tasks

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
