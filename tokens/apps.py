from __future__ import annotations

from typing import Any

from django.apps import AppConfig

# Roles that receive tokens from an eMSP (spec mod_tokens: the CPO; a hub relays to CPOs).
RECEIVING_ROLES = ("CPO", "HUB")


def _validate(data: Any, *, partial: bool, key: Any) -> dict[str, Any]:
    from . import schema

    token_key = (
        schema.TokenKey(key.country_code, key.party_id, key.object_id, key.object_type or "RFID")
        if key is not None
        else None
    )
    return schema.validate_token(data, partial=partial, key=token_key)


class TokensConfig(AppConfig):
    name = "tokens"
    verbose_name = "OCPI tokens"

    def ready(self) -> None:
        import kit
        from ocpi_platform.ocpi import registry
        from ocpi_platform.ocpi.types import Role

        from . import schema
        from .models import Token

        kit.declare(
            kit.ModuleSpec(
                identifier=registry.ModuleId.TOKENS,
                owner=Role.EMSP,
                receiving_roles=tuple(Role(r) for r in RECEIVING_ROLES),
                model=Token,
                validate=_validate,
                render=schema.render_token,
                name="token",
                id_field="uid",
                type_field="type",
                type_default="RFID",
                type_values=tuple(schema.TOKEN_TYPES),
                sender_methods=frozenset({"LIST"}),
                receiver_methods=frozenset({"GET", "PUT", "PATCH"}),
                push_patch_fields=frozenset({"valid", "whitelist"}),
                push_delete=False,
                check_unlisted=False,
            )
        )
        # Our own on top of the kit: POST {tokens}/{uid}/authorize (ocpi:tokens-sender-...).
        registry.mount("tokens.urls")
