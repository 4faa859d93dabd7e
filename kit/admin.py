"""Admin pieces of the kit: the partner page's pull state and pull actions per module, and the
admin of a declared module's objects (ours editable as OCPI JSON, partners' copies read-only).

``register_pulls(puller)`` adds to the partner page (``credentials.admin``) an inline with the
module's sync row and two actions, "Pull {noun}" and "Pull all {noun} (full)", named
``pull_{module}`` and ``pull_all_{module}``. ``ObjectAdmin`` is the base of a module's
``ModelAdmin``: our object is edited as its OCPI JSON and saved through ``kit.services.put``
(validated, last_updated = now, pushed); a partner's copy is shown, never changed, and may
only be deleted (the partner sends it again on its next pull or push).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from credentials import admin as partner_admin
from credentials.models import Partner
from ocpi_platform.ocpi.errors import OcpiError

from . import push, services, sync
from .models import ModuleSync, OcpiObject
from .spec import ModuleSpec

if TYPE_CHECKING:
    _ObjectAdminBase = admin.ModelAdmin[Any]
    _ObjectFormBase = forms.ModelForm[Any]
else:
    _ObjectAdminBase = admin.ModelAdmin
    _ObjectFormBase = forms.ModelForm

SYNC_FIELDS = (
    "state",
    "started_at",
    "finished_at",
    "full",
    "pages",
    "total",
    "received",
    "stored",
    "rejected",
    "message",
    "synced_until",
)


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def sync_inline(puller: sync.Puller) -> type[partner_admin.ReadOnlyInline]:
    """The partner page's inline: how pulling the partner's objects of the module went."""

    class SyncInline(partner_admin.ReadOnlyInline):
        model = ModuleSync
        template = "admin/edit_inline/stacked.html"
        # One row per partner: Django titles the inline with the singular.
        verbose_name = verbose_name_plural = f"{puller.noun} pulled from the partner"
        fields = SYNC_FIELDS
        readonly_fields = fields

        def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
            return super().get_queryset(request).filter(module=puller.module)

    SyncInline.__name__ = SyncInline.__qualname__ = f"{puller.module.title()}SyncInline"
    return SyncInline


def request_pulls(
    puller: sync.Puller,
    model_admin: admin.ModelAdmin[Partner],
    request: HttpRequest,
    queryset: QuerySet[Partner],
    *,
    full: bool,
) -> None:
    queued: list[str] = []
    skipped: list[str] = []
    what = f"Full pull of {puller.noun}" if full else f"Pull of {puller.noun}"
    with transaction.atomic():
        for partner in queryset.prefetch_related("endpoints"):
            reason = sync.cannot_pull(puller, partner)
            if reason is not None:
                skipped.append(f"{partner.name}: {reason}")
                continue
            sync.request_pull(puller, partner.pk, full=full)
            queued.append(partner.name)
            model_admin.log_change(request, partner, f"Requested: {what.lower()}.")
    if queued:
        model_admin.message_user(
            request,
            f"{what} queued for {plural(len(queued), 'partner')} ({', '.join(queued)}); "
            "the progress appears on each partner's page.",
            messages.SUCCESS,
        )
    if skipped:
        model_admin.message_user(
            request, "Not pulled: " + "; ".join(skipped) + ".", messages.WARNING
        )


def pull_actions(puller: sync.Puller) -> list[Callable[..., None]]:
    def pull(model_admin: Any, request: HttpRequest, queryset: QuerySet[Partner]) -> None:
        request_pulls(puller, model_admin, request, queryset, full=False)

    def pull_all(model_admin: Any, request: HttpRequest, queryset: QuerySet[Partner]) -> None:
        request_pulls(puller, model_admin, request, queryset, full=True)

    pull.__name__ = f"pull_{puller.module}"
    pull_all.__name__ = f"pull_all_{puller.module}"
    return [
        admin.action(
            permissions=["change"], description=f"Pull {puller.noun} (changes since the last pull)"
        )(pull),
        admin.action(permissions=["change"], description=f"Pull all {puller.noun} (full)")(
            pull_all
        ),
    ]


_registered: set[str] = set()


def register_pulls(puller: sync.Puller) -> None:
    """The module's sync state and pull actions on the partner page (once per module)."""
    if puller.module in _registered:
        return
    _registered.add(puller.module)
    partner_admin.partner_inlines.append(sync_inline(puller))
    partner_admin.partner_actions.extend(pull_actions(puller))


# --- the objects of a declared module -----------------------------------------------------


class ObjectForm(_ObjectFormBase):
    document = forms.JSONField(
        label="OCPI object",
        help_text="The object as OCPI JSON; saving validates it, stamps last_updated and "
        "pushes it to the partners.",
        widget=forms.Textarea(attrs={"rows": 30, "cols": 100, "style": "font-family: monospace"}),
    )
    spec: ModuleSpec | None = None

    class Meta:
        fields: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.ocpi_json:
            self.initial["document"] = json.loads(self.instance.ocpi_json)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        data = cleaned.get("document")
        spec = self.spec
        if spec is None or data is None:
            return cleaned
        if not isinstance(data, dict):
            raise forms.ValidationError("The OCPI object must be a JSON object.")
        try:
            key = spec.key_of(data)
        except KeyError as exc:
            raise forms.ValidationError(f"The OCPI object needs {exc.args[0]}.") from None
        if self.instance.pk and key.upper() != (
            self.instance.cc_upper,
            self.instance.pid_upper,
            self.instance.id_upper,
            self.instance.object_type,
        ):
            raise forms.ValidationError("The key (country_code, party_id, id) cannot change.")
        data = {**data, spec.last_updated: data.get(spec.last_updated) or "2000-01-01T00:00:00Z"}
        try:
            services.validate(spec, data, partial=False, key=key)
            services.check_own_party(spec, key)
        except OcpiError as exc:
            raise forms.ValidationError(exc.message) from None
        cleaned["document"] = data
        return cleaned


class ObjectAdmin(_ObjectAdminBase):
    """Admin of a declared module's objects; set ``spec_id`` (the ModuleId)."""

    spec_id: Any = None
    form = ObjectForm
    list_display: tuple[str, ...] = ("__str__", "owner", "last_updated", "modified_at")
    list_filter = (("partner", admin.EmptyFieldListFilter),)
    search_fields = ("object_id", "party_id", "partner__name")
    list_select_related = ("partner",)
    readonly_fields = ("partner", "country_code", "party_id", "object_id", "last_updated",
                       "shown_document")  # fmt: skip

    @property
    def spec(self) -> ModuleSpec:
        from . import spec_of

        return spec_of(self.spec_id)

    @admin.display(description="owner")
    def owner(self, obj: OcpiObject) -> str:
        return obj.partner.name if obj.partner else "ours"

    @admin.display(description="OCPI object")
    def shown_document(self, obj: OcpiObject) -> str:
        return json.dumps(json.loads(obj.ocpi_json), indent=2) if obj.ocpi_json else ""

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        form.spec = self.spec  # type: ignore[attr-defined]
        return form

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and obj.partner_id is not None:
            return self.readonly_fields
        return ("document",) if obj is None else ("document", "last_updated")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and obj.partner_id is not None:
            return self.readonly_fields
        return ("last_updated",) if obj is not None else ()

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.partner_id is not None and request.method == "POST":
            return False  # a partner's copy is shown, never changed
        return super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        data = form.cleaned_data["document"]
        spec = self.spec
        outcome = services.put(spec, spec.key_of(data), data, owner=None)
        if outcome.obj is not None:
            obj.pk = outcome.obj.pk

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        spec = self.spec
        key = push.key_of(obj)
        if obj.partner_id is None:
            services.delete(spec, key, owner=None)  # pushed as DELETE where the module allows
        else:
            obj.delete()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            self.delete_model(request, obj)
