"""The operators' admin: token A shown once, no token anywhere else, actions report skips."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from credentials import tokens
from credentials.models import (
    ConnectionStatus,
    InboundToken,
    Initiative,
    JobKind,
    Partner,
    PartnerJob,
    PartnerRole,
    PartnerState,
)
from ocpi_platform.ocpi.principal import TokenKind
from ocpi_platform.ocpi.types import now_utc

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:credentials_partner_changelist"
OUTBOUND = "partner-issued-token-0123456789"


def change_url(partner: Partner) -> str:
    return reverse("admin:credentials_partner_change", args=[partner.pk])


def messages_of(response) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


def shown_token_a(response) -> str:
    match = re.search(r'id="token-a">([^<]+)<', response.content.decode())
    assert match, "token A is not on the page"
    return match.group(1)


@pytest.fixture
def admin_registered() -> tuple[Partner, str]:
    """A registered partner: its token to call us (returned) and the token it gave us."""
    now = now_utc()
    partner = Partner.objects.create(
        name="Acme",
        initiated_by=Initiative.PARTNER,
        state=PartnerState.REGISTERED,
        version="2.2.1",
        status=ConnectionStatus.CONNECTED,
        last_connection=now - timedelta(minutes=3),
        registered_at=now,
    )
    tokens.set_outbound_token(partner, OUTBOUND)
    partner.save()
    PartnerRole.objects.create(partner=partner, role="CPO", country_code="DE", party_id="ACM")
    _, inbound = tokens.issue_inbound_token(partner, TokenKind.REGULAR)
    return partner, inbound


@pytest.fixture
def admin_invited() -> Partner:
    return Partner.objects.create(name="Invited Co", initiated_by=Initiative.PARTNER)


def test_invite_shows_token_a_once_and_it_works(admin_client: Client):
    url = reverse("admin:credentials_partner_invite")
    assert admin_client.get(url).status_code == 200

    posted = admin_client.post(url, {"name": "Newco"})

    # After a redirect (a reload does not invite again), once.
    assert posted.status_code == 302
    assert "token-a" in posted["Location"]
    response = admin_client.get(posted["Location"])
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    token_a = shown_token_a(response)
    html = response.content.decode()
    assert "http://testserver/ocpi/versions" in html
    assert "shown only once" in html
    row = tokens.find_active(token_a)
    assert row is not None
    assert row.partner.name == "Newco"
    assert row.kind == TokenKind.REGISTRATION
    # Nowhere else: not in a message, a cookie, the list, the partner page or its history.
    assert messages_of(response) == []
    assert token_a not in str(response.cookies)
    assert token_a not in posted["Location"]
    reloaded = admin_client.get(posted["Location"]).content.decode()
    assert token_a not in reloaded
    assert "shown once and is gone" in reloaded
    assert tokens.find_active(token_a) is not None  # the reload issued nothing, revoked nothing
    assert InboundToken.objects.filter(partner=row.partner).count() == 1
    for page in (
        reverse(CHANGELIST),
        change_url(row.partner),
        reverse("admin:credentials_partner_history", args=[row.partner.pk]),
        reverse("admin:credentials_partnerevent_changelist"),
    ):
        shown = admin_client.get(page)
        assert shown.status_code == 200
        assert token_a not in shown.content.decode()


def test_invite_again_needs_confirmation_and_replaces_token_a(admin_client: Client):
    url = reverse("admin:credentials_partner_invite")
    first = shown_token_a(admin_client.post(url, {"name": "Newco"}, follow=True))

    refused = admin_client.post(url, {"name": "Newco"})
    assert "already exists" in refused.content.decode()
    assert 'id="token-a"' not in refused.content.decode()
    assert tokens.find_active(first) is not None

    second = shown_token_a(admin_client.post(url, {"name": "Newco", "reinvite": "on"}, follow=True))
    assert second != first
    assert tokens.find_active(first) is None
    assert tokens.find_active(second) is not None


def test_invite_refuses_a_registered_name(admin_client: Client, admin_registered):
    response = admin_client.post(reverse("admin:credentials_partner_invite"), {"name": "Acme"})

    html = response.content.decode()
    assert "unregister it before" in html
    assert 'id="token-a"' not in html
    assert Partner.objects.get(name="Acme").state == PartnerState.REGISTERED


def test_change_page_shows_no_token(admin_client: Client, admin_registered):
    partner, inbound = admin_registered
    row = InboundToken.objects.get(partner=partner)

    response = admin_client.get(change_url(partner))

    html = response.content.decode()
    assert response.status_code == 200
    assert f"{OUTBOUND[:4]}…" in html
    assert f"{row.prefix}…" in html
    for secret in (OUTBOUND, partner.outbound_token_encrypted, inbound, row.digest):
        assert secret not in html
    assert "outbound_token_encrypted" not in html
    assert 'name="name"' in html
    assert 'name="state"' not in html


def test_change_page_after_invitation_shows_no_token_a(admin_client: Client):
    token_a = shown_token_a(
        admin_client.post(
            reverse("admin:credentials_partner_invite"), {"name": "Newco"}, follow=True
        )
    )
    partner = Partner.objects.get(name="Newco")

    html = admin_client.get(change_url(partner)).content.decode()

    assert token_a not in html
    assert f"{token_a[: tokens.PREFIX_LENGTH]}…" in html


def test_only_the_name_is_editable(admin_client: Client, admin_registered):
    partner, _ = admin_registered
    html = admin_client.get(change_url(partner)).content.decode()
    data = {"name": "Acme Europe", "state": PartnerState.FAILED}
    for match in re.finditer(r'<input type="hidden" name="([^"]+)"[^>]*value="([^"]*)"', html):
        data.setdefault(match.group(1), match.group(2))

    response = admin_client.post(change_url(partner), data)

    assert response.status_code == 302
    partner.refresh_from_db()
    assert partner.name == "Acme Europe"
    assert partner.state == PartnerState.REGISTERED
    assert partner.events.filter(kind="renamed").exists()


def test_no_add_form_and_no_deleting_registered_partners(
    admin_client: Client, admin_registered, admin_invited
):
    partner, _ = admin_registered
    assert admin_client.get(reverse("admin:credentials_partner_add")).status_code == 403
    delete = "admin:credentials_partner_delete"
    assert admin_client.get(reverse(delete, args=[partner.pk])).status_code == 403
    assert admin_client.get(reverse(delete, args=[admin_invited.pk])).status_code == 200

    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "delete_selected", "_selected_action": [partner.pk, admin_invited.pk]},
    )
    # Refused as a whole, saying why: no confirmation that silently leaves Acme out.
    assert response.status_code == 302
    assert messages_of(response) == [
        (
            "error",
            "Nothing deleted: Acme is registered. Unregister it first, or leave it out of the "
            "selection.",
        )
    ]
    assert Partner.objects.count() == 2
    admin_client.post(
        reverse(CHANGELIST),
        {"action": "delete_selected", "_selected_action": [admin_invited.pk], "post": "yes"},
    )
    assert list(Partner.objects.values_list("name", flat=True)) == ["Acme"]


def test_actions_start_jobs_and_report_skipped_partners(
    admin_client: Client, admin_registered, admin_invited
):
    partner, _ = admin_registered

    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "rotate_tokens", "_selected_action": [partner.pk, admin_invited.pk]},
    )

    assert response.status_code == 302
    reported = messages_of(response)
    assert (
        "warning",
        f"Skipped: Invited Co is {admin_invited.get_state_display()}, not registered.",
    ) in reported
    assert any(level == "success" and "1 partner (Acme)" in text for level, text in reported)
    assert list(PartnerJob.objects.values_list("partner__name", "kind")) == [
        ("Acme", JobKind.ROTATE)
    ]


def test_refresh_with_only_unregistered_partners_starts_nothing(
    admin_client: Client, admin_invited
):
    response = admin_client.post(
        reverse(CHANGELIST), {"action": "refresh_endpoints", "_selected_action": [admin_invited.pk]}
    )

    levels = [level for level, _ in messages_of(response)]
    assert levels == ["warning", "warning"]
    assert not PartnerJob.objects.exists()


def test_unregister_asks_for_confirmation(admin_client: Client, admin_registered, admin_invited):
    partner, _ = admin_registered
    selected = {"action": "unregister", "_selected_action": [partner.pk, admin_invited.pk]}

    confirmation = admin_client.post(reverse(CHANGELIST), selected)

    assert confirmation.status_code == 200
    assert "Yes, unregister" in confirmation.content.decode()
    assert not PartnerJob.objects.exists()

    done = admin_client.post(reverse(CHANGELIST), {**selected, "post": "yes"})

    assert done.status_code == 302
    assert list(PartnerJob.objects.values_list("kind", flat=True)) == [JobKind.UNREGISTER]
    assert any(level == "warning" and "Invited Co" in text for level, text in messages_of(done))


def test_connect_shows_errors_without_the_token(admin_client: Client):
    url = reverse("admin:credentials_partner_connect")
    bad_url = admin_client.post(
        url, {"name": "Them", "versions_url": "not a url", "token_a": "secret-token-a"}
    )
    too_long = admin_client.post(
        url, {"name": "Them", "versions_url": "https://p.test/versions", "token_a": "t" * 65}
    )

    assert "The versions URL is not a valid http(s) URL." in bad_url.content.decode()
    assert "secret-token-a" not in bad_url.content.decode()
    assert "Token A must be at most 64 characters." in too_long.content.decode()
    assert "t" * 65 not in too_long.content.decode()
    assert not Partner.objects.exists()


def test_connect_starts_the_registration(admin_client: Client):
    response = admin_client.post(
        reverse("admin:credentials_partner_connect"),
        {"name": "Them", "versions_url": "https://p.test/versions", "token_a": "their-a-1"},
    )

    partner = Partner.objects.get(name="Them")
    assert response.status_code == 302
    assert response["Location"] == change_url(partner)
    assert messages_of(response) == [
        ("success", "Registration with Them started; the result appears on this page.")
    ]
    assert partner.state == PartnerState.REGISTERING
    assert tokens.outbound_token(partner) == "their-a-1"
    assert partner.jobs.get().kind == JobKind.CONNECT
    assert "their-a-1" not in admin_client.get(change_url(partner)).content.decode()


def test_list_and_audit_pages(
    admin_client: Client, admin_registered, django_assert_max_num_queries
):
    partner, _ = admin_registered
    PartnerJob.objects.create(partner=partner, kind=JobKind.REFRESH)

    with django_assert_max_num_queries(10):
        listing = admin_client.get(reverse(CHANGELIST))
    html = listing.content.decode()
    assert "DE/ACM CPO" in html
    assert "3\xa0minutes ago" in html
    assert "Invite partner" in html
    assert "Connect to partner" in html
    assert admin_client.get(reverse(CHANGELIST), {"q": "ACM"}).context["cl"].result_count == 1
    for name in ("partnerjob", "partnerevent"):
        assert admin_client.get(reverse(f"admin:credentials_{name}_changelist")).status_code == 200
        assert admin_client.get(reverse(f"admin:credentials_{name}_add")).status_code == 403


# --- the partner page's buttons ----------------------------------------------------------------


def button_url(partner: Partner, action: str) -> str:
    return reverse("admin:credentials_partner_button", args=[partner.pk, action])


def test_the_partner_page_has_a_button_per_operation(admin_client: Client, admin_registered):
    partner, _ = admin_registered

    html = admin_client.get(change_url(partner)).content.decode()

    for label, action in [
        ("Ping now", "ping_now"),
        ("Rotate tokens", "rotate_tokens"),
        ("Re-fetch endpoints", "refresh_endpoints"),
        ("Suspend", "suspend"),
        ("Resume", "resume"),
        ("Unregister…", "unregister"),
        # registered by the locations app (partner_actions): a button without a line here
        ("Pull locations (changes since the last pull)", "pull_locations"),
        ("Pull all locations (full)", "pull_all_locations"),
    ]:
        assert f'action="{button_url(partner, action)}"' in html, action
        assert f">{label}</button>" in html, label


def test_a_button_runs_its_action_for_this_partner_and_comes_back(
    admin_client: Client, admin_registered, admin_invited
):
    partner, _ = admin_registered

    response = admin_client.post(button_url(partner, "rotate_tokens"))

    assert response.status_code == 302
    assert response["Location"] == change_url(partner)
    assert list(PartnerJob.objects.values_list("partner__name", "kind")) == [
        ("Acme", JobKind.ROTATE)
    ]
    assert any(level == "success" for level, _ in messages_of(response))

    suspended = admin_client.post(button_url(partner, "suspend"))
    assert suspended["Location"] == change_url(partner)
    partner.refresh_from_db()
    assert partner.status == ConnectionStatus.SUSPENDED


def test_the_unregister_button_asks_first(admin_client: Client, admin_registered):
    partner, _ = admin_registered
    url = button_url(partner, "unregister")

    confirmation = admin_client.post(url)
    assert confirmation.status_code == 200
    assert "Yes, unregister" in confirmation.content.decode()
    assert not PartnerJob.objects.exists()

    done = admin_client.post(url, {"post": "yes"})  # the confirmation posts to the same URL
    assert done["Location"] == change_url(partner)
    assert list(PartnerJob.objects.values_list("kind", flat=True)) == [JobKind.UNREGISTER]


def test_buttons_refuse_get_unknown_actions_and_users_without_permission(
    admin_client: Client, admin_registered, django_user_model
):
    partner, _ = admin_registered
    assert admin_client.get(button_url(partner, "rotate_tokens")).status_code == 302
    assert not PartnerJob.objects.exists()
    assert admin_client.post(button_url(partner, "delete_selected")).status_code == 403

    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename="view_partner"))
    client = Client()
    client.force_login(viewer)
    assert 'id="partner-buttons"' not in client.get(change_url(partner)).content.decode()
    assert client.post(button_url(partner, "rotate_tokens")).status_code == 403
    assert not PartnerJob.objects.exists()


def test_last_seen_never_says_0_minutes(admin_client: Client, admin_registered):
    partner, _ = admin_registered
    Partner.objects.filter(pk=partner.pk).update(last_connection=now_utc() - timedelta(seconds=20))

    html = admin_client.get(reverse(CHANGELIST)).content.decode()

    assert "0\xa0minutes" not in html
    assert "20 seconds ago" in html


def test_long_failure_reasons_keep_their_end(admin_client: Client, admin_invited):
    reason = "Registration failed: GET https://partner.example/ocpi/versions " + "x" * 400
    Partner.objects.filter(pk=admin_invited.pk).update(
        state=PartnerState.FAILED, failure_reason=reason + " HTTP 401"
    )

    html = admin_client.get(reverse(CHANGELIST)).content.decode()

    assert "x HTTP 401</span>" in html
