"""Resolving a token in the request path is a lookup and the throttled "seen" write; a status
change that the sign of life causes runs as a task (item 18 of the hardening issue)."""

from __future__ import annotations

import pytest

from credentials import tasks as credential_tasks
from credentials.models import ConnectionStatus, Partner, StatusChange

pytestmark = pytest.mark.django_db


def test_a_broker_that_is_down_does_not_fail_the_request(
    api, registered, monkeypatch, django_capture_on_commit_callbacks
):
    def broker_down(**kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(credential_tasks.recover_partner, "delay", broker_down)
    Partner.objects.filter(pk=registered.partner.pk).update(status=ConnectionStatus.OFFLINE)

    with django_capture_on_commit_callbacks(execute=True):
        reply = api.get("/ocpi/versions", token=registered.inbound_token)

    assert (reply.status, reply.code) == (200, 1000)
    partner = Partner.objects.get(pk=registered.partner.pk)
    assert partner.status == ConnectionStatus.OFFLINE  # the next "seen" enqueues again
    assert partner.last_connection is not None


def test_a_suspended_partner_seen_in_a_request_enqueues_nothing(
    api, registered, monkeypatch, django_capture_on_commit_callbacks
):
    queued: list[dict] = []
    monkeypatch.setattr(credential_tasks.recover_partner, "delay", lambda **kw: queued.append(kw))
    Partner.objects.filter(pk=registered.partner.pk).update(status=ConnectionStatus.SUSPENDED)

    with django_capture_on_commit_callbacks(execute=True):
        assert api.get("/ocpi/versions", token=registered.inbound_token).code == 1000

    assert queued == []
    partner = Partner.objects.get(pk=registered.partner.pk)
    assert partner.status == ConnectionStatus.SUSPENDED
    assert partner.last_connection is not None


def test_the_task_leaves_a_partner_unregistered_meanwhile_alone(registered):
    Partner.objects.filter(pk=registered.partner.pk).update(
        state="UNREGISTERED", status=ConnectionStatus.OFFLINE
    )

    assert credential_tasks.recover_partner(partner_id=registered.partner.pk) is False
    assert not StatusChange.objects.exists()
