"""The operators' admin for partners: status, history, and the credentials operations.

Token values are never displayed: inbound tokens show their lookup prefix, the outbound token
its hint. The single exception is token A right after an invitation, rendered once in the POST
response (never put in a message, a URL or a log line).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.options import IS_POPUP_VAR, InlineModelAdmin
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.forms import BaseForm
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.timezone import localtime
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from ocpi_platform.humanize import ago
from ocpi_platform.ocpi.registry import versions_url
from ocpi_platform.ocpi.types import now_utc

from . import handshake, liveness, tokens
from .forms import ConnectPartnerForm, InvitePartnerForm
from .models import (
    ConnectionStatus,
    HubParty,
    InboundToken,
    JobKind,
    JobState,
    Partner,
    PartnerEndpoint,
    PartnerEvent,
    PartnerJob,
    PartnerRole,
    PartnerState,
    StatusChange,
)

if TYPE_CHECKING:
    from django import forms

    _PartnerAdminBase = admin.ModelAdmin[Partner]
    _JobAdminBase = admin.ModelAdmin[PartnerJob]
    _EventAdminBase = admin.ModelAdmin[PartnerEvent]
    _InlineBase = admin.TabularInline[Any, Partner]
    _FormSetBase = BaseInlineFormSet[Any, Partner, forms.ModelForm[Any]]
else:
    # django-stubs generics are not subscriptable at runtime (no django_stubs_ext here).
    _PartnerAdminBase = _JobAdminBase = _EventAdminBase = admin.ModelAdmin
    _InlineBase = admin.TabularInline
    _FormSetBase = BaseInlineFormSet

TEMPLATES = "admin/credentials/partner"

# Other apps add their own inlines and actions to the partner page here (their admin modules
# append at import), so that this app needs no import of theirs.
partner_inlines: list[type[InlineModelAdmin[Any, Partner]]] = []
partner_actions: list[Callable[..., HttpResponse | None]] = []
# The buttons on the partner's page: (label, name of an admin action of the partner list). A
# button runs its action for this one partner (same permissions, messages and confirmation
# pages) and comes back to the page. Every action in ``partner_actions`` gets a button too; add
# a button here for one that is not a list action, e.g. ``("Run doctor", "run_doctor")``.
partner_buttons: list[tuple[str, str]] = [
    ("Ping now", "ping_now"),
    ("Rotate tokens", "rotate_tokens"),
    ("Re-fetch endpoints", "refresh_endpoints"),
    ("Suspend", "suspend"),
    ("Resume", "resume"),
    ("Unregister…", "unregister"),
]
TOKEN_A_SESSION_KEY = "ocpi_token_a"  # noqa: S105  (a session key, no secret)
RECENT_ROWS = 50  # rows per history inline (events, jobs, tokens) on the partner page

STATE_COLOURS = {
    PartnerState.REGISTERED: "#2e7d32",
    PartnerState.INVITED: "#1565c0",
    PartnerState.REGISTERING: "#ef6c00",
    PartnerState.FAILED: "#c62828",
    PartnerState.UNREGISTERED: "#757575",
}

STATUS_COLOURS = {
    ConnectionStatus.CONNECTED: "#2e7d32",
    ConnectionStatus.PLANNED: "#1565c0",
    ConnectionStatus.OFFLINE: "#c62828",
    ConnectionStatus.SUSPENDED: "#6a1b9a",
}

JOB_STATE_COLOURS = {
    JobState.PENDING: "#757575",
    JobState.RUNNING: "#ef6c00",
    JobState.SUCCEEDED: "#2e7d32",
    JobState.FAILED: "#c62828",
}


def _badge(value: str, title: str, colour: str) -> SafeString:
    return format_html(
        '<span title="{}" style="color: {}; font-weight: 600;">{}</span>', title, colour, value
    )


def _exact_time(moment: datetime) -> str:
    return localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")


def _short(text: str, length: int) -> SafeString:
    """A long text cut to ``length`` characters, the full text as tooltip."""
    return format_html('<span title="{}">{}</span>', text, Truncator(text).chars(length))


# A call at the start of a failure reason ("PUT https://…/LOC1 failed with HTTP 401: …").
_CALL = re.compile(r"^(?:GET|PUT|PATCH|POST|DELETE) https?://\S+\s+")
_URL = re.compile(r"https?://([^/\s?#]+)[^\s]*")


def reason_cause(text: str, *, drop_call: bool = False) -> str:
    """A failure reason as a list shows it: the URLs it quotes cut to their host, and with
    ``drop_call`` (the row shows the method and path already) a leading "METHOD URL " dropped,
    so what matters ("HTTP 401", "Connection refused") comes first."""
    if drop_call:
        text = _CALL.sub("", text, count=1)
    return _URL.sub(r"\1", text)


def wrapped_reason(text: str, length: int = 300, *, drop_call: bool = False) -> SafeString:
    """A failure reason in a narrow wrapped column: the cause is at its end ("HTTP 401",
    "Connection refused"), so a long one keeps its end; the full text as tooltip."""
    cause = reason_cause(text, drop_call=drop_call)
    shown = cause if len(cause) <= length else "…" + cause[-length:]
    return format_html('<span class="ocpi-reason" title="{}">{}</span>', text, shown)


def compact_time(moment: datetime, now: datetime | None = None) -> SafeString:
    """A list column's time: "16:02:49 UTC" today, "2026-11-30 16:02 UTC" before; the exact
    time as tooltip."""
    local, today = localtime(moment), localtime(now or now_utc()).date()
    shown = local.strftime("%H:%M:%S %Z" if local.date() == today else "%Y-%m-%d %H:%M %Z")
    return format_html('<span class="ocpi-nowrap" title="{}">{}</span>', _exact_time(moment), shown)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# --- read-only inlines of the partner page ----------------------------------------------------


class RecentFormSet(_FormSetBase):
    """Only the newest rows (the model's ordering is newest first): pages stay small."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.queryset is not None:
            self.queryset = self.queryset[:RECENT_ROWS]


class ReadOnlyInline(_InlineBase):
    """Rows managed by the protocol: shown to whoever may see the partner, never edited."""

    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False

    # The inline signature takes the parent object (django-stubs ignores the override too).
    def has_add_permission(self, request: HttpRequest, obj: Partner | None) -> bool:  # type: ignore[override]
        return False

    def has_change_permission(self, request: HttpRequest, obj: Partner | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Partner | None = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Partner | None = None) -> bool:
        opts = Partner._meta
        return any(
            request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")
            for action in ("view", "change")
        )


class RoleInline(ReadOnlyInline):
    model = PartnerRole
    verbose_name = "party"
    verbose_name_plural = "parties (roles)"
    fields = ("role", "country_code", "party_id", "business_name")
    readonly_fields = fields

    @admin.display(description="business name")
    def business_name(self, obj: PartnerRole) -> str:
        details = obj.business_details if isinstance(obj.business_details, dict) else {}
        return str(details.get("name") or "")


class EndpointInline(ReadOnlyInline):
    model = PartnerEndpoint
    verbose_name_plural = "endpoints"
    fields = ("identifier", "role", "url")
    readonly_fields = fields


class InboundTokenInline(ReadOnlyInline):
    """Tokens the partner presents to us. Only the lookup prefix is shown, never the digest."""

    model = InboundToken
    formset = RecentFormSet
    verbose_name = "token the partner uses to call us"
    verbose_name_plural = "tokens the partner uses to call us (newest first)"
    fields = ("kind", "token_prefix", "created_at", "expires_at", "revoked_at", "active")
    readonly_fields = fields

    @admin.display(description="token")
    def token_prefix(self, obj: InboundToken) -> str:
        return f"{obj.prefix}…"

    @admin.display(description="active", boolean=True)
    def active(self, obj: InboundToken) -> bool:
        now = now_utc()
        return obj.revoked_at is None and (obj.expires_at is None or obj.expires_at > now)


class JobInline(ReadOnlyInline):
    model = PartnerJob
    formset = RecentFormSet
    verbose_name = "operation"
    verbose_name_plural = f"operations (newest {RECENT_ROWS})"
    fields = ("kind", "job_state", "message", "created_at", "started_at", "finished_at")
    readonly_fields = fields

    @admin.display(description="state")
    def job_state(self, obj: PartnerJob) -> SafeString:
        return _badge(obj.state, obj.get_state_display(), JOB_STATE_COLOURS[JobState(obj.state)])


class StatusChangeInline(ReadOnlyInline):
    model = StatusChange
    formset = RecentFormSet
    verbose_name = "status change"
    verbose_name_plural = f"status changes (newest {RECENT_ROWS})"
    fields = ("created_at", "old_status", "new_status", "reason")
    readonly_fields = fields


class HubPartyInline(ReadOnlyInline):
    """Parties behind a hub partner, as its ClientInfo pushes describe them."""

    model = HubParty
    fk_name = "hub"
    verbose_name = "party behind this hub"
    verbose_name_plural = "parties behind this hub (hubclientinfo)"
    fields = ("country_code", "party_id", "role", "status", "last_updated", "received_at")
    readonly_fields = fields


class EventInline(ReadOnlyInline):
    model = PartnerEvent
    formset = RecentFormSet
    verbose_name = "event"
    verbose_name_plural = f"recent events (newest {RECENT_ROWS})"
    fields = ("created_at", "kind", "message")
    readonly_fields = fields


# --- partners ---------------------------------------------------------------------------------


@admin.register(Partner)
class PartnerAdmin(_PartnerAdminBase):
    change_list_template = f"{TEMPLATES}/change_list.html"
    change_form_template = f"{TEMPLATES}/change_form.html"
    list_display = (
        "name",
        "state_badge",
        "initiated",
        "version",
        "role_list",
        "status_badge",
        "last_seen",
        "failure",
        "registered",
    )
    list_filter = ("state", "status", "initiated_by")
    search_fields = ("name", "roles__party_id", "roles__country_code")
    search_help_text = "Name, party id or country code of one of its parties."
    actions = (
        "ping_now",
        "suspend",
        "resume",
        "rotate_tokens",
        "refresh_endpoints",
        "unregister",
        "delete_selected",
    )
    # Only the operator's label is editable; everything else is managed by the protocol.
    exclude = ("outbound_token_encrypted",)
    readonly_fields = (
        "state",
        "initiated_by",
        "failure_reason",
        "version",
        "versions_url",
        "status",
        "status_since",
        "last_connection",
        "ping_failures",
        "last_ping_at",
        "last_ping_error",
        "registered_at",
        "busy_since",
        "outbound_token",
        "token_encoding",
        "history_links",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("name", "state", "initiated_by", "failure_reason")}),
        (
            "Connection",
            {
                "fields": (
                    "version",
                    "versions_url",
                    "registered_at",
                    "busy_since",
                )
            },
        ),
        (
            "Liveness (HubClientInfo)",
            {
                "fields": (
                    "status",
                    "status_since",
                    "last_connection",
                    "ping_failures",
                    "last_ping_at",
                    "last_ping_error",
                )
            },
        ),
        ("Token we use to call the partner", {"fields": ("outbound_token", "token_encoding")}),
        ("Records", {"fields": ("history_links", "created_at", "updated_at")}),
    )
    inlines = (
        RoleInline,
        EndpointInline,
        StatusChangeInline,
        HubPartyInline,
        InboundTokenInline,
        JobInline,
        EventInline,
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Partner]:
        return super().get_queryset(request).prefetch_related("roles")

    def get_inlines(
        self, request: HttpRequest, obj: Partner | None
    ) -> list[type[InlineModelAdmin[Any, Any]]]:
        return [*super().get_inlines(request, obj), *partner_inlines]

    def get_actions(
        self, request: HttpRequest
    ) -> dict[str, tuple[Callable[..., str], str, str] | None]:
        """Our actions, then those other apps registered in ``partner_actions``."""
        actions = super().get_actions(request)
        if IS_POPUP_VAR in request.GET:
            return actions
        for func in partner_actions:
            needed: Iterable[str] = getattr(func, "allowed_permissions", ())
            if all(getattr(self, f"has_{perm}_permission")(request) for perm in needed):
                action = self.get_action(func)
                if action is not None:
                    actions[action[1]] = action
        return actions

    # --- columns and read-only fields ---------------------------------------------------------

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj: Partner) -> SafeString:
        state = PartnerState(obj.state)
        return _badge(state.value, state.label, STATE_COLOURS[state])

    @admin.display(description="initiated by", ordering="initiated_by")
    def initiated(self, obj: Partner) -> SafeString:
        return format_html(
            '<span title="{}">{}</span>', obj.get_initiated_by_display(), obj.initiated_by.lower()
        )

    @admin.display(description="roles")
    def role_list(self, obj: Partner) -> str:
        return ", ".join(str(role) for role in obj.roles.all())

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Partner) -> SafeString:
        status = ConnectionStatus(obj.status)
        since = f" since {_exact_time(obj.status_since)}" if obj.status_since else ""
        title = f"{status.label}{since}"
        if obj.ping_failures:
            title += f"; {_plural(obj.ping_failures, 'failed ping')}: {obj.last_ping_error}"
        return _badge(status.value, title, STATUS_COLOURS[status])

    @admin.display(description="last seen", ordering="last_connection", empty_value="never")
    def last_seen(self, obj: Partner) -> SafeString | None:
        if obj.last_connection is None:
            return None
        return format_html(
            '<span title="{}">{}</span>',
            _exact_time(obj.last_connection),
            ago(obj.last_connection, now_utc()),
        )

    @admin.display(description="registered at", ordering="registered_at", empty_value="-")
    def registered(self, obj: Partner) -> SafeString | None:
        return compact_time(obj.registered_at) if obj.registered_at else None

    @admin.display(description="failure reason")
    def failure(self, obj: Partner) -> SafeString | str:
        return wrapped_reason(obj.failure_reason) if obj.failure_reason else ""

    @admin.display(description="token")
    def outbound_token(self, obj: Partner) -> str:
        """The hint only: the token itself stays encrypted."""
        return f"{obj.outbound_token_hint}…" if obj.outbound_token_hint else "none"

    @admin.display(description="full history")
    def history_links(self, obj: Partner) -> SafeString:
        events = reverse("admin:credentials_partnerevent_changelist")
        jobs = reverse("admin:credentials_partnerjob_changelist")
        return format_html(
            '<a href="{}?partner__id__exact={}">{}</a> · <a href="{}?partner__id__exact={}">{}</a>',
            events,
            obj.pk,
            _plural(obj.events.count(), "event"),
            jobs,
            obj.pk,
            _plural(obj.jobs.count(), "operation"),
        )

    # --- permissions --------------------------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Partners are created by an invitation or a connection, never by the add form."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Partner | None = None) -> bool:
        if obj is not None and obj.is_registered:
            return False  # unregister first: deleting would leave the partner calling us
        return super().has_delete_permission(request, obj)

    def has_invite_permission(self, request: HttpRequest) -> bool:
        """Inviting or connecting creates a partner: the model's add permission."""
        codename = get_permission_codename("add", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    def get_deleted_objects(
        self, objs: Sequence[Partner] | QuerySet[Partner], request: HttpRequest
    ) -> tuple[list[str], dict[str, int], set[str], list[str]]:
        """A partner's operations and events go with it, although nobody may delete them alone."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        cascaded = {str(PartnerJob._meta.verbose_name), str(PartnerEvent._meta.verbose_name)}
        return deleted, counts, {p for p in perms_needed if str(p) not in cascaded}, protected

    # --- change page --------------------------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: Partner, form: Any, change: Any) -> None:
        """Only the name is the operator's: the rest of the row (status, last connection, ...)
        may have changed since the form was loaded and is not written back."""
        previous = Partner.objects.filter(pk=obj.pk).values_list("name", flat=True).first()
        if change:
            obj.save(update_fields=["name", "updated_at"])
        else:
            super().save_model(request, obj, form, change)
        if change and previous is not None and previous != obj.name:
            handshake.record(obj, "renamed", f"Renamed from {previous} to {obj.name}.")

    # --- list page, actions -------------------------------------------------------------------

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {"has_invite_permission": self.has_invite_permission(request)}
        return super().changelist_view(request, {**context, **(extra_context or {})})

    def _start_jobs(
        self, request: HttpRequest, partners: QuerySet[Partner], kind: JobKind, what: str
    ) -> None:
        """Request one job per partner; report how many started and why others were skipped."""
        started: list[str] = []
        for partner in partners:
            try:
                handshake.request_job(partner, kind)
            except handshake.HandshakeFailed as exc:
                self.message_user(request, f"Skipped: {exc.message}", messages.WARNING)
            else:
                started.append(partner.name)
                self.log_change(request, partner, f"Requested: {kind.label}.")
        if started:
            self.message_user(
                request,
                f"{what} started for {_plural(len(started), 'partner')} "
                f"({', '.join(started)}); the results appear on each partner's page.",
                messages.SUCCESS,
            )
        else:
            self.message_user(request, f"No {what.lower()} started.", messages.WARNING)

    @admin.action(permissions=["change"], description="Ping selected partners now")
    def ping_now(self, request: HttpRequest, queryset: QuerySet[Partner]) -> None:
        from .tasks import ping_partners

        partners = list(liveness.pingable().filter(pk__in=queryset.values("pk")))
        skipped = [p.name for p in queryset if p not in partners]
        if skipped:
            self.message_user(
                request,
                f"Not pinged (not registered, or suspended): {', '.join(skipped)}.",
                messages.WARNING,
            )
        if partners:
            ping_partners.delay(partner_ids=[p.pk for p in partners])
            self.message_user(
                request,
                f"Ping started for {', '.join(p.name for p in partners)}; the status and the "
                "last ping's outcome appear in the list and on each partner's page.",
                messages.SUCCESS,
            )

    def _switch(
        self,
        request: HttpRequest,
        queryset: QuerySet[Partner],
        switch: Callable[[Partner, str], bool],
        verb: str,
        outcome: str,
        none: str,
    ) -> None:
        """Suspend or resume each partner; report which ones changed."""
        done = [p for p in queryset if switch(p, f"{verb} by {request.user} in the admin")]
        for partner in done:
            self.log_change(request, partner, f"{verb.capitalize()}.")
        if done:
            names = ", ".join(p.name for p in done)
            self.message_user(request, f"{verb.capitalize()}: {names}. {outcome}", messages.SUCCESS)
        else:
            self.message_user(request, none, messages.WARNING)

    @admin.action(permissions=["change"], description="Suspend selected partners (no traffic)")
    def suspend(self, request: HttpRequest, queryset: QuerySet[Partner]) -> None:
        self._switch(
            request,
            queryset,
            liveness.suspend,
            "suspended",
            "Nothing is sent to them until they are resumed.",
            "No partner suspended (they were suspended already).",
        )

    @admin.action(permissions=["change"], description="Resume selected suspended partners")
    def resume(self, request: HttpRequest, queryset: QuerySet[Partner]) -> None:
        self._switch(
            request,
            queryset,
            liveness.resume,
            "resumed",
            "What they missed is sent again in full.",
            "No partner resumed (none of them was suspended).",
        )

    @admin.action(permissions=["change"], description="Rotate tokens of selected partners")
    def rotate_tokens(self, request: HttpRequest, queryset: QuerySet[Partner]) -> None:
        self._start_jobs(request, queryset, JobKind.ROTATE, "Token rotation")

    @admin.action(permissions=["change"], description="Re-fetch endpoints of selected partners")
    def refresh_endpoints(self, request: HttpRequest, queryset: QuerySet[Partner]) -> None:
        self._start_jobs(request, queryset, JobKind.REFRESH, "Endpoint refresh")

    @admin.action(permissions=["change"], description="Unregister selected partners…")
    def unregister(
        self, request: HttpRequest, queryset: QuerySet[Partner]
    ) -> TemplateResponse | None:
        """Ends the connection: asks for a confirmation first (like the delete action)."""
        partners = list(queryset)
        registered = [p for p in partners if p.is_registered]
        if request.POST.get("post") == "yes" or not registered:
            self._start_jobs(request, queryset, JobKind.UNREGISTER, "Unregistration")
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Unregister partners?",
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "media": self.media,
            "partners": partners,
            "registered": registered,
            "skipped": [p for p in partners if not p.is_registered],
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, f"{TEMPLATES}/unregister_confirmation.html", context)

    @admin.action(permissions=["delete"], description="Delete selected partners (not registered)")
    def delete_selected(
        self, request: HttpRequest, queryset: QuerySet[Partner]
    ) -> TemplateResponse | None:
        """Django's delete action (with its confirmation), refused as a whole while the
        selection holds a registered partner (never a partial delete that skips some)."""
        registered = [p.name for p in queryset.filter(state=PartnerState.REGISTERED)]
        if registered:
            self.message_user(
                request,
                f"Nothing deleted: {', '.join(registered)} "
                f"{'is' if len(registered) == 1 else 'are'} registered. Unregister "
                f"{'it' if len(registered) == 1 else 'them'} first, or leave "
                f"{'it' if len(registered) == 1 else 'them'} out of the selection.",
                messages.ERROR,
            )
            return None
        return django_delete_selected(self, request, queryset)

    # --- buttons of the partner page --------------------------------------------------------

    def _missing(self, request: HttpRequest, object_id: str) -> HttpResponse:
        self.message_user(request, f"No partner with id {object_id}.", messages.WARNING)
        return HttpResponseRedirect(
            reverse(f"{self.admin_site.name}:credentials_partner_changelist")
        )

    def buttons(self, request: HttpRequest) -> list[tuple[str, str]]:
        """(label, action) of the partner page: ``partner_buttons``, then every action other
        apps registered, as far as the user may run them."""
        actions = self.get_actions(request)
        buttons = [(label, name) for label, name in partner_buttons if name in actions]
        listed = {name for _, name in buttons}
        for func in partner_actions:
            name = getattr(func, "__name__", "")
            if name in actions and name not in listed:
                buttons.append((str(actions[name][2]), name))  # type: ignore[index]
                listed.add(name)
        return buttons

    def button_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        """A button of the partner page: its action for this partner, then back to the page
        (or the action's own page, e.g. the confirmation of an unregistration)."""
        if request.method != "POST":
            return HttpResponseRedirect(
                reverse(f"{self.admin_site.name}:credentials_partner_change", args=[object_id])
            )
        partner = self.get_object(request, object_id)
        if partner is None:
            return self._missing(request, object_id)
        if action not in {name for _, name in self.buttons(request)}:
            raise PermissionDenied
        func = self.get_actions(request)[action][0]  # type: ignore[index]
        response = func(self, request, Partner.objects.filter(pk=partner.pk))
        if isinstance(response, HttpResponse):
            return response
        return HttpResponseRedirect(
            reverse(f"{self.admin_site.name}:credentials_partner_change", args=[partner.pk])
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = {"partner_buttons": self.buttons(request), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, context)

    # --- invite and connect -------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("invite/", self.admin_site.admin_view(self.invite_view), name=f"{info}_invite"),
            path("connect/", self.admin_site.admin_view(self.connect_view), name=f"{info}_connect"),
            path(
                "<path:object_id>/token-a/",
                self.admin_site.admin_view(self.token_a_view),
                name=f"{info}_token_a",
            ),
            path(
                "<path:object_id>/do/<str:action>/",
                self.admin_site.admin_view(self.button_view),
                name=f"{info}_button",
            ),
            *super().get_urls(),
        ]

    def _page_context(self, request: HttpRequest, title: str) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "has_view_permission": self.has_view_permission(request),
        }

    def _render_form(
        self, request: HttpRequest, form: BaseForm, title: str, intro: str, submit: str
    ) -> HttpResponse:
        context = {
            **self._page_context(request, title),
            "form": form,
            "intro": intro,
            "submit_label": submit,
            "media": self.media + form.media,
        }
        return render(request, f"{TEMPLATES}/partner_form.html", context)

    @method_decorator(sensitive_variables("token_a"))
    def invite_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_invite_permission(request):
            raise PermissionDenied
        form = InvitePartnerForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            try:
                partner, token_a = handshake.invite_partner(name=form.cleaned_data["name"])
            except handshake.HandshakeFailed as exc:
                form.add_error(None, exc.message)
            else:
                self.log_addition(request, partner, "Invited: token A issued.")
                # Shown after a redirect (a reload must not invite again), once: the session
                # holds it encrypted until the next page takes it out.
                request.session[TOKEN_A_SESSION_KEY] = [partner.pk, tokens.encrypt(token_a)]
                return HttpResponseRedirect(
                    reverse(
                        f"{self.admin_site.name}:credentials_partner_token_a", args=[partner.pk]
                    )
                )
        return self._render_form(
            request,
            form,
            title="Invite a partner",
            intro="The partner registers with us: we issue a token A for it, to be handed over "
            "with our versions URL. The token is shown once, on the next page.",
            submit="Invite and show token A",
        )

    @method_decorator(sensitive_variables("token_a", "context", "stored"))
    def token_a_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Token A, once, right after the invitation: taken out of the session (a reload
        finds it gone and says so), never in a message or a URL, not cached."""
        if not self.has_invite_permission(request):
            raise PermissionDenied
        partner = self.get_object(request, object_id)
        if partner is None:
            return self._missing(request, object_id)
        stored = request.session.get(TOKEN_A_SESSION_KEY)
        token_a = ""
        if isinstance(stored, list) and len(stored) == 2 and stored[0] == partner.pk:
            del request.session[TOKEN_A_SESSION_KEY]
            token_a = tokens.decrypt(stored[1])
        context = {
            **self._page_context(request, f"Token A for {partner.name}"),
            "partner": partner,
            "token_a": token_a,
            "versions_url": versions_url(),
        }
        response = render(request, f"{TEMPLATES}/invite_result.html", context)
        add_never_cache_headers(response)
        return response

    @method_decorator(sensitive_post_parameters("token_a"))
    @method_decorator(sensitive_variables("form"))
    def connect_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_invite_permission(request):
            raise PermissionDenied
        form = ConnectPartnerForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            name = form.cleaned_data["name"]
            try:
                job = handshake.connect_partner(
                    name=name,
                    versions_url=form.cleaned_data["versions_url"],
                    token_a=form.cleaned_data["token_a"],
                )
            except handshake.HandshakeFailed as exc:
                form.add_error(None, exc.message)
            else:
                partner = job.partner
                self.log_change(request, partner, "Connect requested (registration started).")
                self.message_user(
                    request,
                    f"Registration with {partner.name} started; the result appears on this page.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse(f"{self.admin_site.name}:credentials_partner_change", args=[partner.pk])
                )
        return self._render_form(
            request,
            form,
            title="Connect to a partner",
            intro="We register with the partner, using the versions URL and token A it gave "
            "us. The registration runs in the background; its result appears on the "
            "partner's page.",
            submit="Connect",
        )


# --- operations and events (read-only, for the whole platform) ---------------------------------


class _ReadOnlyAdminMixin:
    """Audit rows: written by the services only."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _partner_link(partner_id: int, name: str) -> SafeString:
    url = reverse("admin:credentials_partner_change", args=[partner_id])
    return format_html('<a href="{}">{}</a>', url, name)


@admin.register(PartnerJob)
class PartnerJobAdmin(_ReadOnlyAdminMixin, _JobAdminBase):
    list_display = (
        "id",
        "partner_link",
        "kind",
        "job_state",
        "short_message",
        "created_at",
        "finished_at",
    )
    list_filter = ("kind", "state")
    list_select_related = ("partner",)
    search_fields = ("partner__name",)
    search_help_text = "Partner name."
    fields = ("partner", "kind", "state", "message", "created_at", "started_at", "finished_at")
    readonly_fields = fields
    show_full_result_count = False

    @admin.display(description="partner", ordering="partner__name")
    def partner_link(self, obj: PartnerJob) -> SafeString:
        return _partner_link(obj.partner_id, obj.partner.name)

    @admin.display(description="state", ordering="state")
    def job_state(self, obj: PartnerJob) -> SafeString:
        return _badge(obj.state, obj.get_state_display(), JOB_STATE_COLOURS[JobState(obj.state)])

    @admin.display(description="message")
    def short_message(self, obj: PartnerJob) -> SafeString:
        return _short(obj.message, 100)


@admin.register(PartnerEvent)
class PartnerEventAdmin(_ReadOnlyAdminMixin, _EventAdminBase):
    list_display = ("created_at", "partner_link", "kind", "short_message")
    list_filter = ("kind",)
    list_select_related = ("partner",)
    search_fields = ("message", "partner__name")
    search_help_text = "Words of the message, or the partner name."
    fields = ("partner", "created_at", "kind", "message")
    readonly_fields = fields
    show_full_result_count = False

    @admin.display(description="partner", ordering="partner__name")
    def partner_link(self, obj: PartnerEvent) -> SafeString:
        return _partner_link(obj.partner_id, obj.partner.name)

    @admin.display(description="message")
    def short_message(self, obj: PartnerEvent) -> SafeString:
        return _short(obj.message, 120)
