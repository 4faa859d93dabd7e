"""The outbox admin: what we owe partners, read-only, with the retry and send-now actions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from credentials.models import PartnerState
from ocpi_platform.ocpi.types import now_utc
from outbox import services as outbox
from outbox.models import Delivery, DeliveryState
from tests.outbox.test_push import ours, receiver, scheduled

pytestmark = pytest.mark.django_db

ERROR = "PUT …/NL/ABC/LOC1 was refused: <b>bad</b> & worse"


def changelist() -> str:
    return reverse("admin:outbox_delivery_changelist")


def change_url(row: Delivery) -> str:
    return reverse("admin:outbox_delivery_change", args=[row.pk])


def messages_of(response: Any) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m.message)) for m in get_messages(response.wsgi_request)]


def one_of_each() -> dict[str, Delivery]:
    """Rows of the partner(s) in every state, one location each (LOC-PENDING, LOC-SENT, ...)."""
    out = {}
    for state in DeliveryState.values:
        ours(f"LOC-{state}")
        row = Delivery.objects.order_by("-id").first()
        assert row is not None
        Delivery.objects.filter(pk=row.pk).update(
            state=state,
            attempts=0 if state == DeliveryState.PENDING else 1,
            last_error=ERROR if state == DeliveryState.FAILED else "",
            correlation_id=f"corr-{state.lower()}",
        )
        row.refresh_from_db()
        out[state] = row
    return out


def action_names(response: Any) -> list[str]:
    form = response.context["action_form"]
    return [] if form is None else [name for name, _ in form.fields["action"].choices if name]


# --- pages -------------------------------------------------------------------------------------


def test_the_list_and_each_row_render_in_every_state(
    admin_client: Client, emsp, django_assert_max_num_queries
):
    rows = one_of_each()

    with django_assert_max_num_queries(12):  # no query per row
        listing = admin_client.get(changelist())

    assert listing.status_code == 200
    html = listing.content.decode()
    for state in DeliveryState.values:
        assert f">{state}</span>" in html
    assert "de-emsp" in html
    assert "NL/ABC/LOC-FAILED" in html
    assert "&lt;b&gt;bad&lt;/b&gt; &amp; worse" in html
    assert "<b>bad</b>" not in html

    for state, row in rows.items():
        page = admin_client.get(change_url(row))
        assert page.status_code == 200, state
        html = page.content.decode()
        assert "NL/ABC" in html  # from
        assert "DE/XYZ" in html  # to
        assert f"corr-{state.lower()}" in html
        assert f"&quot;id&quot;: &quot;LOC-{state}&quot;" in html  # the body, pretty-printed
        assert 'name="_save"' not in html
    assert "&lt;b&gt;bad&lt;/b&gt;" in admin_client.get(change_url(rows["FAILED"])).content.decode()


def test_search_finds_a_row_by_correlation_id_or_path(admin_client: Client, emsp):
    one_of_each()

    by_correlation = admin_client.get(changelist(), {"q": "corr-sent"})
    by_path = admin_client.get(changelist(), {"q": "nl/abc/loc-failed"})

    assert [r.path for r in by_correlation.context["cl"].result_list] == ["NL/ABC/LOC-SENT"]
    assert [r.path for r in by_path.context["cl"].result_list] == ["NL/ABC/LOC-FAILED"]


# --- read-only ---------------------------------------------------------------------------------


def test_rows_cannot_be_added_changed_or_deleted(admin_client: Client, emsp):
    rows = one_of_each()
    failed = rows["FAILED"]

    assert admin_client.get(reverse("admin:outbox_delivery_add")).status_code == 403
    response = admin_client.post(
        change_url(failed), {"state": "SENT", "method": "PATCH", "body": "{}"}
    )
    assert response.status_code == 403
    delete = reverse("admin:outbox_delivery_delete", args=[failed.pk])
    assert admin_client.get(delete).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403

    failed.refresh_from_db()
    assert (failed.state, failed.method) == (DeliveryState.FAILED, "PUT")
    assert Delivery.objects.count() == len(DeliveryState.values)
    listing = admin_client.get(changelist())
    assert sorted(action_names(listing)) == ["retry", "send_now"]  # no delete_selected


def test_rows_of_a_partner_that_is_not_registered_any_more_can_be_deleted(
    admin_client: Client, emsp
):
    ours()
    row = Delivery.objects.get()
    emsp.partner.state = PartnerState.UNREGISTERED
    emsp.partner.save()
    delete = reverse("admin:outbox_delivery_delete", args=[row.pk])

    assert admin_client.get(delete).status_code == 200
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    assert not Delivery.objects.exists()


# --- actions -----------------------------------------------------------------------------------


def test_retry_requeues_failed_and_cancelled_rows_and_says_so(
    admin_client: Client, emsp, fake, django_capture_on_commit_callbacks
):
    rows = one_of_each()
    Delivery.objects.filter(pk=rows["SENDING"].pk).update(state=DeliveryState.SENT)
    selected = [rows[s].pk for s in ("PENDING", "SENT", "FAILED", "CANCELLED")]

    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            changelist(), {"action": "retry", "_selected_action": selected}
        )

    assert response.status_code == 302
    assert messages_of(response) == [
        (
            "success",
            "2 deliveries queued again (with the object's state now); 2 skipped (only failed or "
            "cancelled rows of objects we still send are retried).",
        )
    ]
    states = dict(Delivery.objects.values_list("path", "state"))
    assert states == {
        "NL/ABC/LOC-PENDING": DeliveryState.PENDING,
        "NL/ABC/LOC-SENDING": DeliveryState.SENT,
        "NL/ABC/LOC-SENT": DeliveryState.SENT,
        "NL/ABC/LOC-FAILED": DeliveryState.PENDING,
        "NL/ABC/LOC-CANCELLED": DeliveryState.PENDING,
    }
    assert scheduled(callbacks) == [(emsp.partner.pk, 0)]

    assert outbox.drain(emsp.partner.pk) == 3
    assert sorted(r.url.rsplit("/", 1)[1] for r in fake.pushes) == [
        "LOC-CANCELLED",
        "LOC-FAILED",
        "LOC-PENDING",
    ]


def test_retry_of_rows_that_did_not_fail_warns(
    admin_client: Client, emsp, django_capture_on_commit_callbacks
):
    rows = one_of_each()

    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            changelist(), {"action": "retry", "_selected_action": [rows["SENT"].pk]}
        )

    assert messages_of(response) == [
        (
            "warning",
            "0 deliveries queued again (with the object's state now); 1 skipped (only failed or "
            "cancelled rows of objects we still send are retried).",
        )
    ]
    assert Delivery.objects.get(pk=rows["SENT"].pk).state == DeliveryState.SENT
    assert scheduled(callbacks) == []


def test_send_now_makes_selected_waiting_rows_due_and_starts_their_partners(
    admin_client: Client, emsp, fake, django_capture_on_commit_callbacks
):
    other = receiver("fr-nsp", country_code="FR", party_id="NSP", role="NSP")
    ours("LOC1")
    ours("LOC2")
    later = now_utc() + timedelta(hours=1)
    Delivery.objects.filter(partner=emsp.partner).update(next_attempt_at=later, attempts=3)
    waiting, also_waiting = Delivery.objects.filter(partner=emsp.partner).order_by("id")
    Delivery.objects.filter(partner=other.partner).update(state=DeliveryState.FAILED)
    failed = Delivery.objects.filter(partner=other.partner).first()
    assert failed is not None

    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            changelist(), {"action": "send_now", "_selected_action": [waiting.pk, failed.pk]}
        )

    assert messages_of(response) == [
        (
            "success",
            "Sending started for 2 partners (1 pending row selected); each partner's rows go "
            "out in order.",
        )
    ]
    waiting.refresh_from_db()
    assert waiting.next_attempt_at <= now_utc()
    assert waiting.attempts == 3
    assert Delivery.objects.get(pk=also_waiting.pk).next_attempt_at == later  # not selected
    assert Delivery.objects.get(pk=failed.pk).state == DeliveryState.FAILED  # not retried
    assert sorted(scheduled(callbacks)) == sorted([(emsp.partner.pk, 0), (other.partner.pk, 0)])

    assert outbox.drain(emsp.partner.pk) == 1
    assert [r.url.rsplit("/", 1)[1] for r in fake.pushes] == ["LOC1"]
    assert Delivery.objects.get(pk=waiting.pk).state == DeliveryState.SENT


def test_actions_need_the_change_permission(client: Client, emsp):
    rows = one_of_each()
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_delivery"))
    client.force_login(viewer)

    listing = client.get(changelist())
    assert listing.status_code == 200
    assert action_names(listing) == []
    assert client.get(change_url(rows["FAILED"])).status_code == 200

    response = client.post(
        changelist(), {"action": "retry", "_selected_action": [rows["FAILED"].pk]}
    )

    assert response.status_code in (200, 302)
    assert Delivery.objects.get(pk=rows["FAILED"].pk).state == DeliveryState.FAILED
