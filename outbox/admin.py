"""The outbox in the admin: what we owe partners, what was sent, what failed and why.

Rows are written and sent by the services only: nothing here is edited. The operator can retry
failed or cancelled rows, and start the sending of pending rows now.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from credentials.admin import compact_time, wrapped_reason
from credentials.models import PartnerState
from ocpi_platform.ocpi.types import now_utc

from . import services
from .models import Delivery, DeliveryState

if TYPE_CHECKING:
    _DeliveryAdminBase = admin.ModelAdmin[Delivery]
else:
    # django-stubs generics are not subscriptable at runtime (no django_stubs_ext here).
    _DeliveryAdminBase = admin.ModelAdmin

STATE_COLOURS = {
    DeliveryState.PENDING: "#1565c0",
    DeliveryState.SENDING: "#ef6c00",
    DeliveryState.SENT: "#2e7d32",
    DeliveryState.FAILED: "#c62828",
    DeliveryState.CANCELLED: "#757575",
}
RETRYABLE = (DeliveryState.FAILED, DeliveryState.CANCELLED)


def _plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {words or word + 's'}"


@admin.register(Delivery)
class DeliveryAdmin(_DeliveryAdminBase):
    # Few, narrow columns: the partner's answer and the error stay on screen at 1,400 px.
    list_display = (
        "id",
        "partner_link",
        "message",
        "state_badge",
        "answer",
        "short_error",
        "times",
    )
    ordering = ("-id",)  # newest first: new rows on the first page
    list_filter = ("state", "partner", "module", "method")
    list_select_related = ("partner",)
    search_fields = ("key", "path", "correlation_id")
    search_help_text = "Object key or path (e.g. NL/ABC/LOC1), or a correlation id."
    actions = ("retry", "send_now")
    show_full_result_count = False
    fieldsets = (
        (None, {"fields": ("partner", "module", "method", "path", "key", "state")}),
        (
            "Sending",
            {
                "fields": (
                    "attempts",
                    "changes",
                    "next_attempt_at",
                    "http_status",
                    "ocpi_status",
                    "last_error",
                    "correlation_id",
                )
            },
        ),
        ("Routing", {"fields": ("from_party", "to_party")}),
        ("Record", {"fields": ("created_at", "updated_at", "sent_at")}),
        ("Body", {"fields": ("pretty_body",)}),
    )
    readonly_fields = (
        "partner",
        "module",
        "method",
        "path",
        "key",
        "state",
        "attempts",
        "changes",
        "next_attempt_at",
        "http_status",
        "ocpi_status",
        "last_error",
        "correlation_id",
        "from_party",
        "to_party",
        "created_at",
        "updated_at",
        "sent_at",
        "pretty_body",
    )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, object] | None = None
    ) -> HttpResponse:
        """The header says how many rows failed for good (also ``manage.py ocpi_outbox``)."""
        failed = Delivery.objects.failed_count()
        if failed:
            extra_context = {
                "subtitle": f"{_plural(failed, 'delivery', 'deliveries')} failed for good "
                "(state FAILED): fix the cause, then retry them.",
                **(extra_context or {}),
            }
        return super().changelist_view(request, extra_context)

    # --- columns and read-only fields ---------------------------------------------------------

    @admin.display(description="partner", ordering="partner__name")
    def partner_link(self, obj: Delivery) -> SafeString:
        url = reverse("admin:credentials_partner_change", args=[obj.partner_id])
        return format_html('<a href="{}">{}</a>', url, obj.partner.name)

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj: Delivery) -> SafeString:
        """The state, and the number of attempts under it (one column less at 1,400 px)."""
        state = DeliveryState(obj.state)
        return format_html(
            '<span title="{}" style="color: {}; font-weight: 600;">{}</span>'
            '<br><span class="ocpi-nowrap quiet">{}</span>',
            state.label,
            STATE_COLOURS[state],
            state.value,
            _plural(obj.attempts, "attempt"),
        )

    @admin.display(description="message", ordering="path")
    def message(self, obj: Delivery) -> SafeString:
        changes = f" ({obj.changes} changes)" if obj.changes > 1 else ""
        return format_html(
            '<span class="ocpi-nowrap">{} {}</span> <span class="ocpi-path">{}</span>{}',
            obj.method,
            obj.module,
            obj.path,
            changes,
        )

    @admin.display(description="HTTP / OCPI")
    def answer(self, obj: Delivery) -> SafeString | str:
        if obj.http_status is None and obj.ocpi_status is None:
            return "-"
        return format_html(
            '<span class="ocpi-nowrap">{} / {}</span>',
            obj.http_status or "-",
            obj.ocpi_status or "-",
        )

    @admin.display(description="created / next or sent", ordering="created_at")
    def times(self, obj: Delivery) -> SafeString:
        """Created, and under it when it was sent or is tried next: one column for both."""
        now = now_utc()
        if obj.sent_at is not None:
            then = format_html("sent {}", compact_time(obj.sent_at, now))
        elif obj.state in (DeliveryState.PENDING, DeliveryState.SENDING):
            then = format_html("next {}", compact_time(obj.next_attempt_at, now))
        else:
            then = format_html("{}", "")
        return format_html(
            '{}<br><span class="quiet">{}</span>', compact_time(obj.created_at, now), then
        )

    @admin.display(description="last error")
    def short_error(self, obj: Delivery) -> SafeString | str:
        """The row shows the call (method, path): the error starts with its cause."""
        return wrapped_reason(obj.last_error, drop_call=True) if obj.last_error else ""

    @admin.display(description="from (OCPI-from-*)")
    def from_party(self, obj: Delivery) -> str:
        return f"{obj.from_country_code}/{obj.from_party_id}" if obj.from_party_id else "-"

    @admin.display(description="to (OCPI-to-*)")
    def to_party(self, obj: Delivery) -> str:
        return f"{obj.to_country_code}/{obj.to_party_id}" if obj.to_party_id else "-"

    @admin.display(description="body")
    def pretty_body(self, obj: Delivery) -> SafeString:
        return format_html(
            '<pre style="white-space: pre-wrap; margin: 0;">{}</pre>',
            json.dumps(obj.body, indent=2, ensure_ascii=False),
        )

    # --- permissions --------------------------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        """Only with a partner that is not registered any more (deleting the partner)."""
        if obj is None or obj.partner.state == PartnerState.REGISTERED:
            return False
        return super().has_delete_permission(request, obj)

    def has_send_permission(self, request: HttpRequest) -> bool:
        """Retrying and sending now change the rows' state: the model's change permission."""
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    # --- actions ------------------------------------------------------------------------------

    @admin.action(permissions=["send"], description="Retry (failed or cancelled rows)")
    def retry(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        rows = list(queryset.select_related(None).only("pk", "state", "partner_id"))
        count = services.retry(rows)
        skipped = len(rows) - count
        text = (
            f"{_plural(count, 'delivery', 'deliveries')} queued again (with the object's state now)"
        )
        if skipped:
            text += (
                f"; {skipped} skipped (only failed or cancelled rows of objects we still send "
                "are retried)"
            )
        self.message_user(request, text + ".", messages.SUCCESS if count else messages.WARNING)

    @admin.action(permissions=["send"], description="Send pending now")
    def send_now(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        """Start the drain of each selected row's partner; pending rows waiting out a backoff
        become due now (the drain sends a partner's rows in order, so it would wait for them)."""
        rows = list(queryset.select_related(None).only("pk", "state", "partner_id"))
        pending = [row.pk for row in rows if row.state == DeliveryState.PENDING]
        partners = {row.partner_id for row in rows}
        now = now_utc()
        with transaction.atomic():
            Delivery.objects.filter(
                pk__in=pending, state=DeliveryState.PENDING, next_attempt_at__gt=now
            ).update(next_attempt_at=now, updated_at=now)
            services.schedule(partners, force=True)
        self.message_user(
            request,
            f"Sending started for {_plural(len(partners), 'partner')} "
            f"({_plural(len(pending), 'pending row')} selected); "
            "each partner's rows go out in order.",
            messages.SUCCESS,
        )
