"""The operators' admin for tokens: ours (we are the eMSP) edited as OCPI JSON (validated,
stamped, pushed as PUT on save), partners' copies read-only (``kit.admin.ObjectAdmin``).

Tokens are never deleted (spec mod_tokens): there is no delete here. "Block" and "Unblock"
set ``valid`` on our selected tokens and push a PATCH of it to the CPOs
(``tokens.services.set_valid``); partners' copies are left alone (only their eMSP blocks them).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from kit import admin as kit_admin
from ocpi_platform.ocpi.errors import OcpiError
from ocpi_platform.ocpi.registry import ModuleId

from . import services
from .models import Token


@admin.register(Token)
class TokenAdmin(kit_admin.ObjectAdmin):
    spec_id = ModuleId.TOKENS
    list_display = (
        "__str__",
        "owner",
        "valid",
        "whitelist",
        "contract_id",
        "last_updated",
    )
    list_filter = (  # type: ignore[assignment]
        ("partner", admin.EmptyFieldListFilter),
        "valid",
        "whitelist",
        "object_type",
    )
    search_fields = ("object_id", "contract_id", "party_id", "partner__name")  # type: ignore[assignment]
    actions = ("block", "unblock")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _set_valid(self, request: HttpRequest, queryset: QuerySet[Token], valid: bool) -> None:
        changed, skipped, failed = 0, 0, []
        for token in queryset:
            if token.partner_id is not None:
                skipped += 1
                continue
            if token.valid == valid:
                continue
            try:
                services.set_valid(token, valid)
            except OcpiError as exc:
                failed.append(f"{token}: {exc.message}")
                continue
            changed += 1
            self.log_change(request, token, "Blocked." if valid is False else "Unblocked.")
        verb = "unblocked" if valid else "blocked"
        self.message_user(
            request,
            f"{kit_admin.plural(changed, 'token')} {verb}; the CPOs are sent a PATCH of valid.",
            messages.SUCCESS,
        )
        if skipped:
            self.message_user(
                request,
                f"{kit_admin.plural(skipped, 'partner token')} left alone: only its eMSP "
                "can block it.",
                messages.WARNING,
            )
        if failed:
            self.message_user(request, "Not changed: " + "; ".join(failed), messages.ERROR)

    @admin.action(permissions=["change"], description="Block the selected tokens (valid = false)")
    def block(self, request: HttpRequest, queryset: QuerySet[Token]) -> None:
        self._set_valid(request, queryset, False)

    @admin.action(permissions=["change"], description="Unblock the selected tokens (valid = true)")
    def unblock(self, request: HttpRequest, queryset: QuerySet[Token]) -> None:
        self._set_valid(request, queryset, True)
