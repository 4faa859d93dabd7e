"""The journal in the admin: a browsable, filterable list of calls, the newest on the partner's
page (an inline with quick filters), bodies on request, and the partner doctor's page.

Wired into the partner page through ``credentials.admin.partner_inlines`` only: the inline's
header carries the links and buttons (buttons post with ``formaction``, the partner form's CSRF
token goes along; its fields are ignored).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator
from django.utils.timezone import localtime
from django.views.decorators.http import require_POST

from credentials import admin as partner_admin
from credentials.models import Partner
from ocpi_platform.ocpi.types import now_utc

from . import doctor, doctor_runs, recorder
from .models import BodyCapture, Direction, DoctorRun, Entry, RunState

if TYPE_CHECKING:
    from django import forms

    _EntryAdminBase = admin.ModelAdmin[Entry]
    _RunAdminBase = admin.ModelAdmin[DoctorRun]
    _FormSetBase = BaseInlineFormSet[Entry, Partner, forms.ModelForm[Entry]]
    _RunFormSetBase = BaseInlineFormSet[DoctorRun, Partner, forms.ModelForm[DoctorRun]]
else:
    _EntryAdminBase = _RunAdminBase = admin.ModelAdmin
    _FormSetBase = _RunFormSetBase = BaseInlineFormSet

INLINE_ROWS = 20
DOCTOR_INLINE_ROWS = 5
CAPTURE_MINUTES = (15, 60)


def _can_change_partner(request: HttpRequest) -> bool:
    opts = Partner._meta
    return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}")


def _can_view_partner(request: HttpRequest) -> bool:
    opts = Partner._meta
    return _can_change_partner(request) or request.user.has_perm(
        f"{opts.app_label}.{get_permission_codename('view', opts)}"
    )


class OutcomeFilter(admin.SimpleListFilter):
    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("ok", "success (HTTP 2xx, OCPI 1xxx)"),
            ("error", "any error"),
            ("http", "HTTP 4xx/5xx"),
            ("ocpi", "OCPI 2xxx-4xxx"),
            ("none", "no answer"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Entry]) -> QuerySet[Entry]:
        ok = Q(http_status__gte=200, http_status__lt=300) & (
            Q(ocpi_status__isnull=True) | Q(ocpi_status__lt=2000)
        )
        chosen = {
            "ok": ok,
            "error": ~ok | Q(http_status__isnull=True),
            "http": Q(http_status__gte=400),
            "ocpi": Q(ocpi_status__gte=2000),
            "none": Q(http_status__isnull=True),
        }.get(self.value() or "")
        return queryset if chosen is None else queryset.filter(chosen)


def _outcome(obj: Entry) -> SafeString:
    failed = obj.http_status is None or obj.http_status >= 400 or (obj.ocpi_status or 0) >= 2000
    colour = "#c62828" if failed else "#2e7d32"
    return format_html(
        '<span style="white-space:nowrap"><b style="color:{}">{}</b> · {}</span>',
        colour,
        obj.http_status if obj.http_status is not None else "no answer",
        obj.ocpi_status if obj.ocpi_status is not None else "–",
    )


@admin.register(Entry)
class EntryAdmin(partner_admin._ReadOnlyAdminMixin, _EntryAdminBase):
    # Narrow columns (merged direction and method, wrapped path and error, the error's cause
    # first): HTTP, OCPI and the error stay on screen at 1,400 px.
    list_display = (
        "when",
        "partner_name",
        "call",
        "where",
        "outcome",
        "duration_ms",
        "correlation",
        "why",
    )
    list_filter = ("direction", OutcomeFilter, "method", "partner")
    search_fields = ("path", "correlation_id", "request_id", "error")
    search_help_text = "Path, X-Correlation-ID, X-Request-ID or error text."
    list_select_related = ("partner",)
    date_hierarchy = "created_at"
    # The journal is large: no COUNT(*) of the whole table, no counts per filter choice.
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100
    readonly_fields = (
        "created_at",
        "partner",
        "direction",
        "method",
        "path",
        "http_status",
        "ocpi_status",
        "duration_ms",
        "request_id",
        "correlation_id",
        "error",
        "request_body",
        "response_body",
    )
    fields = readonly_fields

    @admin.display(description="time", ordering="created_at")
    def when(self, obj: Entry) -> SafeString:
        moment = localtime(obj.created_at)
        return format_html(
            '<span class="ocpi-nowrap" title="{}">{}<br>{}</span>',
            moment.strftime("%Y-%m-%d %H:%M:%S.%f %Z"),
            moment.strftime("%Y-%m-%d"),
            moment.strftime("%H:%M:%S.%f")[:-3] + moment.strftime(" %Z"),
        )

    @admin.display(description="partner", ordering="partner__name", empty_value="-")
    def partner_name(self, obj: Entry) -> SafeString | None:
        if obj.partner is None:
            return None
        return format_html('<span class="ocpi-name">{}</span>', obj.partner.name)

    @admin.display(description="call", ordering="direction")
    def call(self, obj: Entry) -> SafeString:
        """Direction and method in one narrow column."""
        inbound = obj.direction == Direction.IN
        return format_html(
            '<span class="ocpi-nowrap" title="{}">{} {}</span>',
            obj.get_direction_display(),
            "←" if inbound else "→",
            obj.method,
        )

    @admin.display(description="path", ordering="path")
    def where(self, obj: Entry) -> SafeString:
        return format_html('<span class="ocpi-path">{}</span>', obj.path)

    @admin.display(description="HTTP · OCPI")
    def outcome(self, obj: Entry) -> SafeString:
        return _outcome(obj)

    @admin.display(description="time", ordering="created_at")
    def at(self, obj: Entry) -> SafeString:
        moment = localtime(obj.created_at)
        return format_html(
            '<span title="{}">{}</span>',
            moment.strftime("%Y-%m-%d %Z"),
            moment.strftime("%H:%M:%S.%f")[:-3],
        )

    @admin.display(description="correlation id")
    def correlation(self, obj: Entry) -> SafeString:
        return format_html(
            '<span title="{}">{}</span>', obj.correlation_id, Truncator(obj.correlation_id).chars(9)
        )

    @admin.display(description="error")
    def why(self, obj: Entry) -> SafeString | str:
        """The row shows the call: an error that starts with it starts with its cause."""
        return partner_admin.wrapped_reason(obj.error, drop_call=True) if obj.error else ""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) or _can_view_partner(request)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    # --- the partner page's buttons ----------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path(
                "partner/<int:partner_id>/doctor/",
                view(self.doctor_view),
                name="journal_partner_doctor",
            ),
            path(
                "partner/<int:partner_id>/bodies/",
                view(require_POST(self.bodies_view)),
                name="journal_partner_bodies",
            ),
            *super().get_urls(),
        ]

    def bodies_view(self, request: HttpRequest, partner_id: int) -> HttpResponse:
        """Turn journaling of bodies on (for N minutes) or off for one partner."""
        if not _can_change_partner(request):
            raise PermissionDenied
        partner = get_object_or_404(Partner, pk=partner_id)
        minutes = request.POST.get("journal_bodies_minutes", "")
        if minutes.isdigit() and int(minutes) in CAPTURE_MINUTES:
            row = recorder.capture_bodies(partner.pk, int(minutes), by=request.user.get_username())
            until = localtime(row.until).strftime("%H:%M:%S %Z")
            self.message_user(
                request,
                f"Bodies of {partner}'s calls are journaled until {until} (tokens redacted).",
                messages.WARNING,
            )
        else:
            recorder.stop_capture(partner.pk)
            self.message_user(request, f"Bodies of {partner}'s calls are no longer journaled.")
        return HttpResponseRedirect(reverse("admin:credentials_partner_change", args=[partner.pk]))

    def doctor_view(self, request: HttpRequest, partner_id: int) -> HttpResponse:
        """GET: what the doctor does, its latest run (reloading while it runs) and a button;
        POST: queue a run (a worker runs it) and come back here."""
        if not _can_change_partner(request):
            raise PermissionDenied
        partner = get_object_or_404(Partner, pk=partner_id)
        here = reverse("admin:journal_partner_doctor", args=[partner.pk])
        if request.method == "POST" and "run_doctor" in request.POST:
            queue_doctor_runs(self, request, Partner.objects.filter(pk=partner.pk))
            return HttpResponseRedirect(here)
        doctor_runs.fail_lost_runs(partner.pk)
        run = DoctorRun.objects.filter(partner=partner).first()
        context = {
            **self.admin_site.each_context(request),
            "title": f"Partner doctor: {partner}",
            "opts": Partner._meta,
            "app_label": Partner._meta.app_label,
            "partner": partner,
            "run": run,
            "runs_url": reverse("admin:journal_doctorrun_changelist")
            + f"?partner__id__exact={partner.pk}",
            "about": doctor.__doc__,
        }
        return TemplateResponse(request, "admin/journal/doctor.html", context)


@admin.action(permissions=["change"], description="Run the doctor on selected partners")
def run_doctor(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Partner]
) -> None:
    """A partner action (and the partner page's "Run doctor" button): queue a run each."""
    queue_doctor_runs(modeladmin, request, queryset)


def queue_doctor_runs(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Partner]
) -> None:
    queued: list[str] = []
    for partner in queryset.order_by("name"):
        try:
            _, created = doctor_runs.request_run(partner, by=request.user.get_username())
        except doctor.NotDiagnosable as exc:
            modeladmin.message_user(request, f"Doctor not run: {exc}", messages.WARNING)
            continue
        if created:
            queued.append(partner.name)
        else:
            modeladmin.message_user(
                request,
                f"The doctor is already running for {partner}: its verdicts appear on the "
                "partner's page when it is done.",
                messages.INFO,
            )
    if queued:
        modeladmin.message_user(
            request,
            f"Doctor queued for {', '.join(queued)}: the checks run in the background (up to "
            "a few minutes); the verdicts appear on the partner's page.",
            messages.SUCCESS,
        )


def _verdict_badge(verdict: str) -> SafeString:
    return format_html('<span class="verdict verdict-{}">{}</span>', verdict, verdict)


def _run_outcome(run: DoctorRun) -> SafeString:
    """The run's state or verdict, and the checks that did not pass."""
    if run.state == RunState.PENDING:
        return mark_safe('<span class="verdict verdict-RUNNING">queued</span>')
    if run.state == RunState.RUNNING:
        return format_html(
            '<span class="verdict verdict-RUNNING">running</span> {} so far',
            partner_admin._plural(len(run.checks), "check"),
        )
    if run.state == RunState.FAILED:
        return format_html(
            '<span class="verdict verdict-FAIL">not run</span> <span class="ocpi-reason">{}</span>',
            run.problem,
        )
    bad = [
        f"{c.get('verdict')}: {c.get('name')}"
        for c in run.checks
        if isinstance(c, dict) and c.get("verdict") in ("FAIL", "WARN")
    ]
    detail = "; ".join(bad) if bad else f"{len(run.checks)} checks passed"
    return format_html(
        '{} <span class="ocpi-reason">{}</span>', _verdict_badge(run.verdict), detail
    )


class RunStateFilter(admin.SimpleListFilter):
    title = "verdict"
    parameter_name = "verdict"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("PASS", "PASS"),
            ("WARN", "WARN"),
            ("FAIL", "FAIL"),
            ("active", "queued or running"),
            ("not_run", "could not run"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[DoctorRun]) -> QuerySet[DoctorRun]:
        value = self.value()
        if value == "active":
            return queryset.filter(state__in=(RunState.PENDING, RunState.RUNNING))
        if value == "not_run":
            return queryset.filter(state=RunState.FAILED)
        if value in ("PASS", "WARN", "FAIL"):
            return queryset.filter(state=RunState.DONE, verdict=value)
        return queryset


@admin.register(DoctorRun)
class DoctorRunAdmin(partner_admin._ReadOnlyAdminMixin, _RunAdminBase):
    change_form_template = "admin/journal/doctorrun/change_form.html"
    list_display = ("requested", "partner_link", "requested_by", "outcome", "finished_at")
    list_filter = (RunStateFilter, "partner")
    list_select_related = ("partner",)
    search_fields = ("partner__name", "requested_by")
    search_help_text = "Partner name or who asked."
    date_hierarchy = "requested_at"
    show_full_result_count = False
    fields = (
        "partner",
        "requested_by",
        "requested_at",
        "started_at",
        "finished_at",
        "state",
        "verdict",
        "versions_url",
        "problem",
    )
    readonly_fields = fields

    @admin.display(description="requested", ordering="requested_at")
    def requested(self, obj: DoctorRun) -> str:
        return localtime(obj.requested_at).strftime("%Y-%m-%d %H:%M:%S %Z")

    @admin.display(description="partner", ordering="partner__name")
    def partner_link(self, obj: DoctorRun) -> SafeString:
        return partner_admin._partner_link(obj.partner_id, obj.partner.name)

    @admin.display(description="outcome")
    def outcome(self, obj: DoctorRun) -> SafeString:
        return _run_outcome(obj)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) or _can_view_partner(request)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        run = DoctorRun.objects.select_related("partner").filter(pk=object_id).first()
        if run is not None:
            doctor_runs.fail_lost_runs(run.partner_id)
            run.refresh_from_db()
        context = {"run": run, **(extra_context or {})}
        return super().change_view(request, object_id, form_url, context)


class RecentEntries(_FormSetBase):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.queryset is not None:
            self.queryset = self.queryset[:INLINE_ROWS]


class JournalInline(partner_admin.ReadOnlyInline):
    """The newest calls with this partner, quick filters, bodies on request, the doctor."""

    model = Entry
    formset = RecentEntries
    template = "admin/journal/journal_inline.html"
    verbose_name_plural = f"request journal (newest {INLINE_ROWS})"
    fields = ("at", "call", "where", "outcome", "duration_ms", "correlation", "why")
    readonly_fields = fields
    outcome = EntryAdmin.outcome
    call = EntryAdmin.call
    where = EntryAdmin.where

    at = EntryAdmin.at
    correlation = EntryAdmin.correlation
    why = EntryAdmin.why

    def get_formset(self, request: HttpRequest, obj: Partner | None = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        formset.journal = _journal_links(obj) if obj is not None else None  # type: ignore[attr-defined]
        return formset


class RecentRuns(_RunFormSetBase):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.queryset is not None:
            self.queryset = self.queryset[:DOCTOR_INLINE_ROWS]


class DoctorRunInline(partner_admin.ReadOnlyInline):
    """The partner's newest doctor runs: queued, running, or their verdicts."""

    model = DoctorRun
    formset = RecentRuns
    template = "admin/journal/doctorrun_inline.html"
    verbose_name = "doctor run"
    verbose_name_plural = f"partner doctor (newest {DOCTOR_INLINE_ROWS} runs)"
    fields = ("requested", "requested_by", "outcome", "details")
    readonly_fields = fields
    requested = DoctorRunAdmin.requested
    outcome = DoctorRunAdmin.outcome

    @admin.display(description="")
    def details(self, obj: DoctorRun) -> SafeString:
        url = reverse("admin:journal_doctorrun_change", args=[obj.pk])
        return format_html('<a href="{}">verdict per check</a>', url)

    def get_formset(self, request: HttpRequest, obj: Partner | None = None, **kwargs: Any) -> Any:
        if obj is not None:
            doctor_runs.fail_lost_runs(obj.pk)
        return super().get_formset(request, obj, **kwargs)


def _journal_links(partner: Partner) -> dict[str, Any]:
    base = reverse("admin:journal_entry_changelist") + f"?partner__id__exact={partner.pk}"
    capture = BodyCapture.objects.filter(partner=partner, until__gt=now_utc()).first()
    return {
        "all": base,
        "inbound": f"{base}&direction__exact={Direction.IN}",
        "outbound": f"{base}&direction__exact={Direction.OUT}",
        "errors": f"{base}&outcome=error",
        "bodies_url": reverse("admin:journal_partner_bodies", args=[partner.pk]),
        "capture_until": capture.until if capture else None,
        "capture_minutes": CAPTURE_MINUTES,
    }


partner_admin.partner_inlines.extend((DoctorRunInline, JournalInline))
partner_admin.partner_actions.append(run_doctor)
partner_admin.partner_buttons.append(("Run doctor", "run_doctor"))
