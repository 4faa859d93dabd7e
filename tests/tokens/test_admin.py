"""The tokens admin: ours added and edited as OCPI JSON (validated, pushed), partners' copies
read-only, block/unblock actions that push a PATCH of valid, no delete."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import reverse

from outbox.models import Delivery
from tests.conftest import RegisteredPartner
from tokens.models import Token

from .conftest import own_token, partner_token, token_data

pytestmark = pytest.mark.django_db
ADD = reverse("admin:tokens_token_add")
LIST = reverse("admin:tokens_token_changelist")


def test_an_operator_adds_our_token_and_it_is_pushed(
    admin_client: Any, cpo: RegisteredPartner
) -> None:
    response = admin_client.post(ADD, {"document": json.dumps(token_data())})
    assert response.status_code == 302, response.content.decode()[:2000]
    token = Token.objects.get()
    assert (token.partner, token.object_id, token.object_type) == (None, "TOKEN1", "RFID")
    assert Delivery.objects.filter(module="tokens", method="PUT").count() == 1


def test_an_invalid_token_names_the_field_and_nothing_is_stored(admin_client: Any) -> None:
    response = admin_client.post(ADD, {"document": json.dumps(token_data(whitelist="MAYBE"))})
    assert response.status_code == 200
    assert "whitelist" in response.content.decode()
    assert not Token.objects.exists()


def test_block_and_unblock_push_a_patch_of_ours_only(
    admin_client: Any, cpo: RegisteredPartner, emsp: RegisteredPartner
) -> None:
    ours = own_token()
    theirs = partner_token(emsp, "THEIRS")
    Delivery.objects.update(state="SENT")
    selected = [ours.pk, theirs.pk]
    response = admin_client.post(
        LIST, {"action": "block", "_selected_action": selected}, follow=True
    )
    text = response.content.decode()
    assert "1 token blocked" in text
    assert "1 partner token left alone" in text
    assert Token.objects.get(pk=ours.pk).valid is False
    assert Token.objects.get(pk=theirs.pk).valid is True
    (row,) = Delivery.objects.filter(module="tokens", method="PATCH")
    assert set(row.body) == {"valid", "last_updated"}
    admin_client.post(LIST, {"action": "unblock", "_selected_action": [ours.pk]})
    assert Token.objects.get(pk=ours.pk).valid is True


def test_a_partners_copy_is_read_only_and_no_token_is_deleted(
    admin_client: Any, emsp: RegisteredPartner
) -> None:
    theirs = partner_token(emsp)
    page = reverse("admin:tokens_token_change", args=[theirs.pk])
    assert admin_client.get(page).status_code == 200
    assert admin_client.post(page, {"document": "{}"}).status_code == 403
    delete = reverse("admin:tokens_token_delete", args=[theirs.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert Token.objects.filter(pk=theirs.pk).exists()
