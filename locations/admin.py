"""The operators' admin for locations: ours (edited here, pushed on save) and partners' copies.

Our own locations, EVSEs and connectors are edited here. Every save goes through
``services.saved_in_admin`` in the admin's transaction: the changed objects and the location get
``last_updated`` = now, the stored OCPI JSON is rendered again and the location is PUT to the
partners through the outbox. Our EVSEs and connectors are never deleted (sessions and CDRs refer
to them): an EVSE that is gone gets status REMOVED.

A partner's copy belongs to the partner: it is shown read-only and may only be deleted (the
partner sends it again on the next pull).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.db import models, transaction
from django.db.models import Count, Max, QuerySet
from django.forms.fields import InvalidJSONInput
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from rest_framework.exceptions import ValidationError as SchemaError

from kit import admin as kit_admin
from kit import services as kit_services
from ocpi_platform.ocpi.envelope import describe_validation_errors
from ocpi_platform.ocpi.parties import our_parties
from ocpi_platform.ocpi.registry import ModuleId
from ocpi_platform.ocpi.types import Role, format_datetime, now_utc

from . import push, schema, services, sync
from .models import Connector, Evse, Location
from .render import CONNECTOR_FIELDS, COORDINATES, EVSE_FIELDS, LOCATION_FIELDS

if TYPE_CHECKING:
    _LocationAdminBase = admin.ModelAdmin[Location]
    _EvseAdminBase = admin.ModelAdmin[Evse]
    _EvseInlineBase = admin.TabularInline[Evse, Location]
    _ConnectorInlineBase = admin.TabularInline[Connector, Evse]
    _LocationFormBase = forms.ModelForm[Location]
    _EvseFormBase = forms.ModelForm[Evse]
    _ConnectorFormBase = forms.ModelForm[Connector]
    _EvseFormSetBase = BaseInlineFormSet[Evse, Location, forms.ModelForm[Evse]]
    _ConnectorFormSetBase = BaseInlineFormSet[Connector, Evse, forms.ModelForm[Connector]]
else:
    # django-stubs generics are not subscriptable at runtime (no django_stubs_ext here).
    _LocationAdminBase = _EvseAdminBase = admin.ModelAdmin
    _EvseInlineBase = _ConnectorInlineBase = admin.TabularInline
    _LocationFormBase = _EvseFormBase = _ConnectorFormBase = forms.ModelForm
    _EvseFormSetBase = _ConnectorFormSetBase = BaseInlineFormSet

REMOVED_HELP = (
    "EVSEs are never deleted (sessions and CDRs refer to them): set the status REMOVED instead."
)
KEY_HELP = "Fixed once the location exists: partners know it by this key."


# --- form fields ----------------------------------------------------------------------------


class JsonText(forms.JSONField):
    """A JSON field edited as indented JSON text; empty means null (the field is absent)."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, InvalidJSONInput):
            return value
        if value is None:
            return ""
        return json.dumps(value, indent=2, ensure_ascii=False, cls=self.encoder)


def _json_overrides(rows: int, cols: int) -> dict[type[models.Field[Any, Any]], dict[str, Any]]:
    widget = forms.Textarea(attrs={"rows": rows, "cols": cols, "class": "vLargeTextField"})
    return {models.JSONField: {"form_class": JsonText, "widget": widget}}


def _coordinate(value: str, pattern: str, limit: int, example: str) -> str:
    """OCPI GeoLocation: decimal degrees as text, 5 to 7 decimals, within ±limit."""
    value = value.strip()
    if not re.fullmatch(pattern, value):
        raise forms.ValidationError(
            f"Use decimal degrees with 5 to 7 decimals, e.g. {example} (OCPI regex {pattern})."
        )
    if abs(float(value)) > limit:
        raise forms.ValidationError(f"Must be between -{limit} and {limit}.")
    return value


def _check_latitude(value: str | None) -> str | None:
    return None if value is None else _coordinate(value, schema.LATITUDE, 90, "51.047599")


def _check_longitude(value: str | None) -> str | None:
    return None if value is None else _coordinate(value, schema.LONGITUDE, 180, "3.729944")


def _ocpi_check(
    form: forms.ModelForm[Any],
    table: Sequence[tuple[str, str]],
    validator: Callable[..., dict[str, Any]],
) -> None:
    """Validate the form's values with the OCPI schema; each problem goes to its form field.

    The fields the form does not edit keep the stored value. Fields that already failed the
    form's own validation are left out (partial validation: only the fields given are checked).
    """
    data: dict[str, Any] = {}
    field_of: dict[str, str] = {}

    def value(attr: str) -> Any:
        if attr in form.cleaned_data:
            return form.cleaned_data[attr]
        if attr not in form.fields:
            return getattr(form.instance, attr, None)
        return None  # it failed already

    for name, attr in table:
        if name == "last_updated":
            continue
        if attr == COORDINATES:
            latitude, longitude = value("latitude"), value("longitude")
            field_of[name] = "latitude"
            if latitude is not None and longitude is not None:
                data[name] = {"latitude": latitude, "longitude": longitude}
            continue
        field_of[name] = attr
        current = value(attr)
        if current is not None:
            data[name] = current
    data["last_updated"] = format_datetime(now_utc())
    try:
        validator(data, partial=True)
    except SchemaError as exc:
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        for name, problem in detail.items():
            lines = describe_validation_errors(problem)
            target = field_of.get(str(name))
            if target is not None and target in form.fields and not form.has_error(target):
                form.add_error(target, lines)
            elif target is None or not form.has_error(target):
                label = "" if name == "non_field_errors" else f"{name}: "
                form.add_error(None, [label + line for line in lines])


# --- forms ----------------------------------------------------------------------------------


def _cpo_parties() -> list[tuple[str, str]]:
    return [(p.country_code, p.party_id) for p in our_parties() if p.role == Role.CPO]


class LocationForm(_LocationFormBase):
    class Meta:
        model = Location
        exclude = ("partner",)
        help_texts = {"country_code": KEY_HELP, "party_id": KEY_HELP, "location_id": KEY_HELP}

    def clean_country_code(self) -> str:
        return str(self.cleaned_data["country_code"]).strip().upper()

    def clean_party_id(self) -> str:
        return str(self.cleaned_data["party_id"]).strip().upper()

    def clean_latitude(self) -> str | None:
        return _check_latitude(self.cleaned_data.get("latitude"))

    def clean_longitude(self) -> str | None:
        return _check_longitude(self.cleaned_data.get("longitude"))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.instance.pk is None:
            self._check_new_key(cleaned)
        _ocpi_check(self, LOCATION_FIELDS, schema.validate_location)
        return cleaned

    def _check_new_key(self, cleaned: dict[str, Any]) -> None:
        """A new location of ours belongs to one of our CPO parties and has a free key."""
        cc, pid, ident = (cleaned.get(k) for k in ("country_code", "party_id", "location_id"))
        if not (cc and pid):
            return
        parties = _cpo_parties()
        if (cc, pid) not in parties:
            ours = ", ".join(f"{c}/{p}" for c, p in parties)
            self.add_error(
                "party_id",
                f"{cc}/{pid} is not one of our CPO parties; a new location belongs to one of "
                + (f"them: {ours}." if ours else "them, and OCPI_PARTIES lists no CPO party."),
            )
        elif ident and Location.objects.ci(cc, pid, ident).exists():
            self.add_error(
                "location_id",
                f"A location {cc}/{pid}/{ident} exists already (ids are compared "
                "case-insensitively).",
            )


class EvseForm(_EvseFormBase):
    class Meta:
        model = Evse
        exclude = ("location", "position")
        help_texts = {"status": REMOVED_HELP, "uid": KEY_HELP}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None and "uid" in self.fields:
            self.fields["uid"].disabled = True  # the key partners know it by

    def clean_latitude(self) -> str | None:
        return _check_latitude(self.cleaned_data.get("latitude"))

    def clean_longitude(self) -> str | None:
        return _check_longitude(self.cleaned_data.get("longitude"))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        coordinates = ("latitude", "longitude")
        checkable = all(f in self.fields and not self.has_error(f) for f in coordinates)
        if checkable and (cleaned.get("latitude") is None) != (cleaned.get("longitude") is None):
            self.add_error("latitude", "Give both latitude and longitude, or neither.")
        _ocpi_check(self, EVSE_FIELDS, schema.validate_evse)
        return cleaned


class ConnectorForm(_ConnectorFormBase):
    # Absent stays null (not ""); a URL typed without a scheme gets https.
    terms_and_conditions = forms.URLField(
        max_length=255, required=False, empty_value=None, assume_scheme="https"
    )

    class Meta:
        model = Connector
        exclude = ("evse", "position")
        help_texts = {"connector_id": KEY_HELP}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None and "connector_id" in self.fields:
            self.fields["connector_id"].disabled = True

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        _ocpi_check(self, CONNECTOR_FIELDS, schema.validate_connector)
        return cleaned


def _unique_ci(formset: BaseInlineFormSet[Any, Any, Any], attr: str, what: str) -> None:
    """CiString ids: unique within the parent, compared case-insensitively."""
    seen: set[str] = set()
    for form in formset.forms:
        value = getattr(form, "cleaned_data", {}).get(attr)
        if not value:
            continue
        if value.upper() in seen:
            form.add_error(attr, f"Another {what} has the id {value} (ids ignore case).")
        seen.add(value.upper())


class EvseFormSet(_EvseFormSetBase):
    def clean(self) -> None:
        super().clean()
        _unique_ci(self, "uid", "EVSE")


class ConnectorFormSet(_ConnectorFormSetBase):
    def clean(self) -> None:
        super().clean()
        _unique_ci(self, "connector_id", "connector")


# --- helpers --------------------------------------------------------------------------------


_plural = kit_admin.plural


def _ours(location: Location | None) -> bool:
    """None: a location being added in the admin, which is always ours."""
    return location is None or location.partner_id is None


def _save_placed(formset: BaseInlineFormSet[Any, Any, Any], siblings: QuerySet[Any]) -> None:
    """Save the inline's rows; new ones go after the existing ones (OCPI keeps the order)."""
    instances = formset.save(commit=False)
    last = siblings.aggregate(last=Max("position"))["last"]
    position = 0 if last is None else last + 1
    for obj in instances:
        if obj.pk is None:
            obj.position = position
            position += 1
        obj.save()
    formset.save_m2m()


def _changed_pks(formsets: Iterable[Any], model: type[models.Model]) -> list[int]:
    pks: list[int] = []
    for formset in formsets:
        if getattr(formset, "model", None) is model:
            pks += [obj.pk for obj in getattr(formset, "new_objects", [])]
            pks += [obj.pk for obj, _ in getattr(formset, "changed_objects", [])]
    return pks


def _pretty_json(value: Any) -> SafeString:
    return format_html(
        '<pre style="white-space: pre-wrap; margin: 0;">{}</pre>',
        json.dumps(value, indent=2, ensure_ascii=False),
    )


def _warn_if_not_ocpi(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, loc: Location
) -> None:
    """After a save: say what partners will refuse (the admin lets an unfinished EVSE be saved)."""
    empty = list(loc.evses.annotate(n=Count("connectors")).filter(n=0).exclude(status="REMOVED"))
    if empty:
        links = format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            ((reverse("admin:locations_evse_change", args=[e.pk]), e.uid) for e in empty),
        )
        model_admin.message_user(
            request,
            format_html(
                "An OCPI EVSE needs at least one connector; add connectors to: {}. "
                "Partners refuse the location until then.",
                links,
            ),
            messages.WARNING,
        )
    try:
        schema.validate_location(services.document(loc))
    except SchemaError as exc:
        lines = [
            line
            for line in describe_validation_errors(exc.detail)
            if not (empty and "at least one connector" in line)
        ]
        if lines:
            model_admin.message_user(
                request,
                "The location is not valid OCPI, partners may refuse it: " + "; ".join(lines),
                messages.WARNING,
            )
    _warn_unknown_tariffs(model_admin, request, loc)


def _warn_unknown_tariffs(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, loc: Location
) -> None:
    """Connectors may name tariffs we do not hold (yet): saved anyway, the operator is told."""
    doc = services.document(loc)
    named = {
        str(tariff_id)
        for evse in doc.get("evses") or []
        for connector in evse.get("connectors") or []
        for tariff_id in connector.get("tariff_ids") or []
    }
    unknown = kit_services.unknown_ids(ModuleId.TARIFFS, named, owner=None)
    if unknown:
        model_admin.message_user(
            request,
            "Connectors name tariffs we do not have (yet): " + ", ".join(unknown) + ".",
            messages.WARNING,
        )


class OwnerFilter(admin.SimpleListFilter):
    title = "owner"
    parameter_name = "owner"
    path = "partner"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        return [("ours", "Ours"), ("partners", "Partners' copies")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "ours":
            return queryset.filter(**{f"{self.path}__isnull": True})
        if self.value() == "partners":
            return queryset.filter(**{f"{self.path}__isnull": False})
        return queryset


class EvseOwnerFilter(OwnerFilter):
    path = "location__partner"


# --- inlines --------------------------------------------------------------------------------


class EvseInline(_EvseInlineBase):
    model = Evse
    form = EvseForm
    formset = EvseFormSet
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name = "EVSE"
    verbose_name_plural = "EVSEs (connectors are edited on each EVSE's page)"
    fields = (
        "uid",
        "evse_id",
        "status",
        "capabilities",
        "floor_level",
        "physical_reference",
        "latitude",
        "longitude",
        "connector_link",
        "last_updated",
    )
    readonly_fields = ("connector_link", "last_updated")
    formfield_overrides = _json_overrides(1, 24)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Evse]:
        return super().get_queryset(request).annotate(connector_count=Count("connectors"))

    @admin.display(description="connectors")
    def connector_link(self, obj: Evse) -> SafeString | str:
        if obj.pk is None:
            return "save first"
        count = getattr(obj, "connector_count", None)
        if count is None:
            count = obj.connectors.count()
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:locations_evse_change", args=[obj.pk]),
            _plural(count, "connector") if count else "none: add one",
        )

    # The inline signature takes the parent object (django-stubs ignores the override too).
    def has_add_permission(self, request: HttpRequest, obj: Location | None) -> bool:  # type: ignore[override]
        return _ours(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Location | None = None) -> bool:  # type: ignore[override]
        return _ours(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Location | None = None) -> bool:  # type: ignore[override]
        return False


class ConnectorInline(_ConnectorInlineBase):
    model = Connector
    form = ConnectorForm
    formset = ConnectorFormSet
    can_delete = False
    verbose_name_plural = "connectors (never deleted: partners and CDRs refer to them)"
    fields = (
        "connector_id",
        "standard",
        "format",
        "power_type",
        "max_voltage",
        "max_amperage",
        "max_electric_power",
        "tariff_ids",
        "terms_and_conditions",
        "last_updated",
    )
    readonly_fields = ("last_updated",)
    formfield_overrides = _json_overrides(1, 16)

    def get_extra(self, request: HttpRequest, obj: Evse | None = None, **kwargs: Any) -> int:
        """An empty row for an EVSE without connectors (OCPI needs one)."""
        if obj is not None and _ours(obj.location) and not obj.connectors.exists():
            return 1
        return 0

    def has_add_permission(self, request: HttpRequest, obj: Evse | None) -> bool:  # type: ignore[override]
        return (obj is None or _ours(obj.location)) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Evse | None = None) -> bool:  # type: ignore[override]
        return (obj is None or _ours(obj.location)) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Evse | None = None) -> bool:  # type: ignore[override]
        return False


# --- locations ------------------------------------------------------------------------------


@admin.register(Location)
class LocationAdmin(_LocationAdminBase):
    form = LocationForm
    inlines = (EvseInline,)
    list_display = (
        "country_code",
        "party_id",
        "location_id",
        "name",
        "city",
        "owned_by",
        "shared",
        "evse_count",
        "last_updated",
    )
    list_display_links = ("location_id",)
    list_filter = (
        OwnerFilter,
        ("partner", admin.RelatedOnlyFieldListFilter),
        "shared",
        "publish",
        "country_code",
        "party_id",
    )
    list_select_related = ("partner",)
    search_fields = ("location_id", "name", "city", "address", "evses__uid", "evses__evse_id")
    search_help_text = "Location id, name, city, address, or an EVSE's uid or EVSE ID."
    actions = ("push_again", "delete_selected")
    show_full_result_count = False
    formfield_overrides = _json_overrides(4, 80)
    fieldsets = (
        (None, {"fields": ("country_code", "party_id", "location_id", "owned_by", "shared")}),
        (
            "Place",
            {
                "fields": (
                    "name",
                    "address",
                    "city",
                    "postal_code",
                    "state",
                    "country",
                    "latitude",
                    "longitude",
                    "time_zone",
                    "parking_type",
                )
            },
        ),
        ("Publication", {"fields": ("publish", "publish_allowed_to")}),
        (
            "Details (JSON, as in OCPI)",
            {
                "classes": ("collapse",),
                "fields": (
                    "related_locations",
                    "directions",
                    "operator",
                    "suboperator",
                    "owner",
                    "facilities",
                    "opening_times",
                    "charging_when_closed",
                    "images",
                    "energy_mix",
                ),
            },
        ),
        ("Record", {"fields": ("last_updated", "created_at", "ocpi_document")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Location]:
        return super().get_queryset(request).annotate(n_evses=Count("evses", distinct=True))

    def get_readonly_fields(self, request: HttpRequest, obj: Location | None = None) -> list[str]:
        fields = ["owned_by", "last_updated", "created_at", "ocpi_document"]
        if obj is not None:
            fields += ["country_code", "party_id", "location_id"]
        return fields

    # --- columns and read-only fields ---------------------------------------------------------

    @admin.display(description="owner", ordering="partner__name")
    def owned_by(self, obj: Location) -> SafeString | str:
        if obj.partner_id is None:
            return "ours"
        url = reverse("admin:credentials_partner_change", args=[obj.partner_id])
        return format_html('<a href="{}">{}</a>', url, obj.partner.name if obj.partner else "")

    @admin.display(description="EVSEs", ordering="n_evses")
    def evse_count(self, obj: Location) -> int:
        count = getattr(obj, "n_evses", None)
        return obj.evses.count() if count is None else int(count)

    @admin.display(description="OCPI JSON (as served and pushed)")
    def ocpi_document(self, obj: Location) -> SafeString | str:
        if obj.pk is None:
            return "Rendered when the location is saved."
        return _pretty_json(services.document(obj))

    # --- permissions --------------------------------------------------------------------------

    def has_change_permission(self, request: HttpRequest, obj: Location | None = None) -> bool:
        """A partner's copy is the partner's: shown, never edited here."""
        return _ours(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Location | None = None) -> bool:
        """Our locations stay (set EVSEs REMOVED instead); a partner's copy may be dropped."""
        if obj is not None and obj.partner_id is None:
            return False
        return super().has_delete_permission(request, obj)

    # --- saving -------------------------------------------------------------------------------

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: Any) -> None:
        if formset.model is Evse:
            _save_placed(formset, Evse.objects.filter(location=form.instance))
        else:
            super().save_formset(request, form, formset, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: Any) -> None:
        """After the location and its EVSEs: last_updated, the JSON and the push (same txn)."""
        super().save_related(request, form, formsets, change)
        location: Location = form.instance
        if location.partner_id is not None:
            return
        evses = _changed_pks(formsets, Evse)
        if change and not form.has_changed() and not evses:
            return  # nothing changed: nothing to tell the partners
        services.saved_in_admin(location, evses=evses)
        if change and "shared" in form.changed_data and not location.shared:
            self.message_user(
                request,
                "The location is no longer sent to partners. They keep the copy they have: to "
                "withdraw it, set its EVSEs REMOVED before turning 'shared' off.",
                messages.WARNING,
            )
        _warn_if_not_ocpi(self, request, location)

    # --- actions ------------------------------------------------------------------------------

    @admin.action(permissions=["change"], description="Push again to partners")
    def push_again(self, request: HttpRequest, queryset: QuerySet[Location]) -> None:
        """PUT the selected locations (ours, shared) to every partner that receives locations."""
        selected = list(queryset.select_related(None).order_by("pk"))
        theirs = [loc for loc in selected if loc.partner_id is not None]
        private = [loc for loc in selected if loc.partner_id is None and not loc.shared]
        mine = [loc for loc in selected if loc.partner_id is None and loc.shared]
        to = push.targets()
        if theirs:
            self.message_user(
                request,
                f"Skipped {_plural(len(theirs), 'partner location')}: a partner's copy is not "
                "ours to send.",
                messages.WARNING,
            )
        if private:
            self.message_user(
                request,
                f"Skipped {_plural(len(private), 'location')} that are not shared "
                f"({', '.join(str(loc) for loc in private)}).",
                messages.WARNING,
            )
        if not mine:
            return
        if not to:
            self.message_user(
                request,
                "Nothing queued: no registered partner has a locations RECEIVER endpoint.",
                messages.WARNING,
            )
            return
        with transaction.atomic():
            for location in mine:
                push.location_put(location, services.document(location), to)
        self.message_user(
            request,
            f"Queued {_plural(len(mine), 'location')} for {_plural(len(to), 'partner')}; "
            "see the outbox for the deliveries.",
            messages.SUCCESS,
        )

    @admin.action(permissions=["delete"], description="Delete selected partners' copies")
    def delete_selected(
        self, request: HttpRequest, queryset: QuerySet[Location]
    ) -> TemplateResponse | None:
        """Django's delete action (with its confirmation), our own locations left out."""
        ours = queryset.filter(partner__isnull=True).count()
        if ours:
            self.message_user(
                request,
                f"Not deleted: {_plural(ours, 'location')} of ours. Our locations stay; set "
                "their EVSEs REMOVED instead.",
                messages.WARNING,
            )
        deletable = queryset.filter(partner__isnull=False)
        if not deletable.exists():
            return None
        return django_delete_selected(self, request, deletable)


# --- EVSEs ------------------------------------------------------------------------------------


@admin.register(Evse)
class EvseAdmin(_EvseAdminBase):
    form = EvseForm
    inlines = (ConnectorInline,)
    list_display = (
        "uid",
        "evse_id",
        "location_link",
        "status",
        "connector_count",
        "last_updated",
    )
    list_filter = ("status", EvseOwnerFilter)
    list_select_related = ("location", "location__partner")
    search_fields = ("uid", "evse_id", "location__location_id", "location__name")
    search_help_text = "EVSE uid or EVSE ID, or the location's id or name."
    show_full_result_count = False
    formfield_overrides = _json_overrides(3, 80)
    fields = (
        "location_link",
        "uid",
        "evse_id",
        "status",
        "status_schedule",
        "capabilities",
        "floor_level",
        "latitude",
        "longitude",
        "physical_reference",
        "directions",
        "parking_restrictions",
        "images",
        "last_updated",
    )
    readonly_fields = ("location_link", "uid", "last_updated")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Evse]:
        return (
            super()
            .get_queryset(request)
            .select_related("location", "location__partner")
            .annotate(n_connectors=Count("connectors"))
        )

    @admin.display(description="location", ordering="location__location_id")
    def location_link(self, obj: Evse) -> SafeString:
        location = obj.location
        owner = "ours" if location.partner is None else location.partner.name
        return format_html(
            '<a href="{}">{}</a> ({})',
            reverse("admin:locations_location_change", args=[location.pk]),
            str(location),
            owner,
        )

    @admin.display(description="connectors", ordering="n_connectors")
    def connector_count(self, obj: Evse) -> int:
        count = getattr(obj, "n_connectors", None)
        return obj.connectors.count() if count is None else int(count)

    def has_add_permission(self, request: HttpRequest) -> bool:
        """EVSEs are added on their location's page."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Evse | None = None) -> bool:
        return (obj is None or _ours(obj.location)) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Evse | None = None) -> bool:
        """Ours: never (set REMOVED). A partner's: only with its location (the cascade)."""
        if obj is None or _ours(obj.location):
            return False
        return super().has_delete_permission(request, obj)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: Any) -> None:
        if formset.model is Connector:
            _save_placed(formset, Connector.objects.filter(evse=form.instance))
        else:
            super().save_formset(request, form, formset, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: Any) -> None:
        super().save_related(request, form, formsets, change)
        evse: Evse = form.instance
        location = evse.location
        if location.partner_id is not None:
            return
        connectors = _changed_pks(formsets, Connector)
        evses = [evse.pk] if form.has_changed() else []
        if not evses and not connectors:
            return
        services.saved_in_admin(location, evses=evses, connectors=connectors)
        _warn_if_not_ocpi(self, request, location)


# --- on the partner page: the location sync and the pull actions (the kit's) ------------------

kit_admin.register_pulls(sync.PULLER)
