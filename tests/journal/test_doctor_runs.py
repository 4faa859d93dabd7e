"""The partner doctor from the admin: the button queues a run (a Celery task runs it, here
called directly), the run's verdicts, time and author are stored and shown."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import httpx
import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from credentials.models import Partner, PartnerState
from journal import doctor, doctor_runs, tasks
from journal.models import DoctorRun, RunState
from ocpi_platform.ocpi.client import use_transport
from ocpi_platform.ocpi.types import now_utc
from tests.concurrency import race
from tests.conftest import make_registered
from tests.fakes.doctor_partner import DoctorPartner

pytestmark = pytest.mark.django_db


def page_of(partner) -> str:
    return reverse("admin:credentials_partner_change", args=[partner.pk])


def button_of(partner) -> str:
    return reverse("admin:credentials_partner_button", args=[partner.pk, "run_doctor"])


def fake_for(registered, breaks: str = "") -> DoctorPartner:
    return DoctorPartner(breaks=breaks, accepted_tokens={registered.outbound_token})


def click(client: Client, url: str, capture) -> tuple[object, mock.MagicMock]:
    """POST ``url``; the commit's callbacks run, with the task's ``delay`` mocked."""
    with mock.patch.object(tasks.run_doctor, "delay") as delay, capture(execute=True):
        response = client.post(url)
    return response, delay


def test_the_button_queues_a_run_and_the_page_shows_its_verdicts_when_done(
    admin_client, registered, django_capture_on_commit_callbacks
):
    partner = registered.partner
    assert "Run doctor" in admin_client.get(page_of(partner)).content.decode()

    with use_transport(httpx.MockTransport(lambda r: pytest.fail("a call in the request"))):
        response, delay = click(
            admin_client, button_of(partner), django_capture_on_commit_callbacks
        )

    assert response.status_code == 302
    assert response["Location"] == page_of(partner)
    run = DoctorRun.objects.get(partner=partner)
    assert (run.state, run.requested_by, run.checks) == (RunState.PENDING, "admin", [])
    delay.assert_called_once_with(run_id=run.pk)
    page = admin_client.get(page_of(partner)).content.decode()
    assert "Doctor queued for" in page  # the message after the redirect
    assert 'verdict-RUNNING">queued' in page
    assert ">queued<" in page

    with use_transport(fake_for(registered, "link").transport()):
        assert tasks.run_doctor(run_id=run.pk) == RunState.DONE

    run.refresh_from_db()
    assert run.verdict == "FAIL"
    assert run.started_at is not None
    assert run.finished_at is not None
    assert {"name": "locations list paging", "verdict": "FAIL"}.items() <= run.checks[2].items()
    page = admin_client.get(page_of(partner)).content.decode()
    assert "FAIL: locations list paging" in page
    assert 'verdict-RUNNING">queued' not in page
    details = admin_client.get(reverse("admin:journal_doctorrun_change", args=[run.pk]))
    text = details.content.decode()
    assert "Verdict per check" in text
    assert "rel=&quot;next&quot;" in text  # the advice
    assert "asked for by admin" in text
    assert 'http-equiv="refresh"' not in text


def test_a_second_click_while_a_run_is_under_way_queues_nothing(
    admin_client, registered, django_capture_on_commit_callbacks
):
    click(admin_client, button_of(registered.partner), django_capture_on_commit_callbacks)

    response, delay = click(
        admin_client, button_of(registered.partner), django_capture_on_commit_callbacks
    )

    assert response.status_code == 302
    assert DoctorRun.objects.count() == 1
    delay.assert_not_called()
    page = admin_client.get(page_of(registered.partner)).content.decode()
    assert "already running" in page


def test_the_doctor_page_reloads_while_the_run_is_under_way(
    admin_client, registered, django_capture_on_commit_callbacks
):
    url = reverse("admin:journal_partner_doctor", args=[registered.partner.pk])
    assert "Run doctor" in admin_client.get(url).content.decode()

    with (
        mock.patch.object(tasks.run_doctor, "delay"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = admin_client.post(url, {"run_doctor": "1"})

    assert response.status_code == 302
    assert response["Location"] == url
    page = admin_client.get(url).content.decode()
    assert 'http-equiv="refresh"' in page
    assert "Run again" not in page
    run = DoctorRun.objects.get()
    with use_transport(fake_for(registered).transport()):
        tasks.run_doctor(run_id=run.pk)
    page = admin_client.get(url).content.decode()
    assert 'http-equiv="refresh"' not in page
    assert "verdict-PASS" in page
    assert "Run again" in page


def test_a_partner_that_is_not_registered_gets_no_run(admin_client, registered):
    registered.partner.state = PartnerState.UNREGISTERED
    registered.partner.save()

    admin_client.post(button_of(registered.partner))

    assert not DoctorRun.objects.exists()
    page = admin_client.get(page_of(registered.partner)).content.decode()
    assert "Doctor not run" in page


def test_a_viewer_cannot_run_the_doctor_from_the_button(registered):
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_partner"))
    client = Client()
    client.force_login(viewer)

    assert client.post(button_of(registered.partner)).status_code == 403
    assert not DoctorRun.objects.exists()
    assert client.get(reverse("admin:journal_doctorrun_changelist")).status_code == 200


# --- the task ---------------------------------------------------------------------------------


def queued(registered) -> DoctorRun:
    with mock.patch.object(tasks.run_doctor, "delay"):
        run, created = doctor_runs.request_run(registered.partner, by="ops")
    assert created
    return run


def test_the_task_runs_a_run_once(registered):
    run = queued(registered)
    fake = fake_for(registered)

    with use_transport(fake.transport()):
        first = tasks.run_doctor(run_id=run.pk)
        calls = len(fake.requests)
        second = tasks.run_doctor(run_id=run.pk)  # the message delivered again

    assert (first, second) == (RunState.DONE, None)
    assert len(fake.requests) == calls  # no second round of calls
    run.refresh_from_db()
    assert run.verdict == "PASS"
    assert [c["verdict"] for c in run.checks] == ["PASS"] * len(run.checks)
    assert len(run.checks) == 8


def test_the_task_stores_why_a_partner_could_not_be_examined(registered):
    run = queued(registered)
    registered.partner.state = PartnerState.UNREGISTERED
    registered.partner.save()

    assert tasks.run_doctor(run_id=run.pk) == RunState.FAILED

    run.refresh_from_db()
    assert "not REGISTERED" in run.problem
    assert run.verdict == ""
    assert run.finished_at is not None


def test_a_run_stopped_by_its_time_limit_keeps_the_checks_done_until_then(registered):
    run = queued(registered)
    fake = fake_for(registered)
    inner = fake.transport()
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 4:
            raise SoftTimeLimitExceeded
        return inner.handle_request(request)

    with use_transport(httpx.MockTransport(handler)):
        assert tasks.run_doctor(run_id=run.pk) == RunState.FAILED

    run.refresh_from_db()
    assert "ran out of time" in run.problem
    assert [c["name"] for c in run.checks] == [
        "versions",
        "version details",
        "locations list paging",
    ]


def test_a_run_whose_worker_died_is_failed_and_a_new_one_may_start(registered):
    run = queued(registered)
    DoctorRun.objects.filter(pk=run.pk).update(
        state=RunState.RUNNING,
        started_at=now_utc() - doctor_runs.RUNNING_LOST_AFTER - timedelta(seconds=1),
    )

    again = queued(registered)

    run.refresh_from_db()
    assert run.state == RunState.FAILED
    assert "worker" in run.problem
    assert again.pk != run.pk
    assert tasks.run_doctor(run_id=run.pk) is None  # a late message does not run the lost one


def test_a_recent_run_under_way_is_not_failed(registered):
    run = queued(registered)
    DoctorRun.objects.filter(pk=run.pk).update(state=RunState.RUNNING, started_at=now_utc())

    with mock.patch.object(tasks.run_doctor, "delay"):
        same, created = doctor_runs.request_run(registered.partner, by="ops")

    assert (same.pk, created) == (run.pk, False)
    assert DoctorRun.objects.get(pk=run.pk).state == RunState.RUNNING


def test_requesting_a_run_for_a_partner_that_cannot_be_examined_raises(registered):
    registered.partner.state = PartnerState.FAILED
    registered.partner.save()

    with pytest.raises(doctor.NotDiagnosable):
        doctor_runs.request_run(registered.partner, by="ops")
    assert not DoctorRun.objects.exists()


# --- one run at a time, with real concurrent transactions ---------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_clicks_at_once_queue_one_run():
    partner = make_registered().partner

    def lock_the_partner():
        Partner.objects.select_for_update().get(pk=partner.pk)

    def click_once():
        return doctor_runs.request_run(partner, by="ops")[1]

    with mock.patch.object(tasks.run_doctor, "delay") as delay:
        created = race(click_once, click_once, hold=lock_the_partner)

    assert sorted(created) == [False, True]
    assert DoctorRun.objects.count() == 1
    delay.assert_called_once()


@pytest.mark.django_db(transaction=True)
def test_a_message_delivered_twice_at_once_runs_the_checks_once():
    partner = make_registered().partner
    with mock.patch.object(tasks.run_doctor, "delay"):
        run, _ = doctor_runs.request_run(partner, by="ops")
    report = doctor.Report(partner.name, partner.versions_url, "2026-01-01T00:00:00Z")

    # No HTTP here: the threads do not see a use_transport of this one, the checks are stubbed.
    with mock.patch.object(doctor, "diagnose", return_value=report) as diagnose:
        results = race(
            lambda: tasks.run_doctor(run_id=run.pk), lambda: tasks.run_doctor(run_id=run.pk)
        )

    assert sorted(results, key=str) == [RunState.DONE, None]
    assert diagnose.call_count == 1
    assert DoctorRun.objects.get(pk=run.pk).state == RunState.DONE
