"""ocpi_import_tariffs (every spec example imports and round-trips) and ocpi_pull tariffs."""

from __future__ import annotations

import io
import json
import shutil

import pytest
from django.core.management import CommandError, call_command

from kit.models import ModuleSync, SyncState
from ocpi_platform.ocpi.client import use_transport
from tariffs.models import Tariff
from tests.fakes.module_partner import ModulePartner
from tests.fixtures_names import FIXTURES, TARIFF_EXAMPLES
from tests.tariffs.conftest import example

pytestmark = pytest.mark.django_db


def as_ours(data: dict) -> dict:
    return {**data, "country_code": "NL", "party_id": "ABC"}


@pytest.mark.parametrize("name", TARIFF_EXAMPLES)
def test_every_spec_example_imports_and_is_served_unchanged(tmp_path, api, emsp, name):
    data = as_ours(example(name))
    path = tmp_path / name
    path.write_text(json.dumps(data))
    call_command("ocpi_import_tariffs", str(path), stdout=io.StringIO())
    reply = api.get(f"/ocpi/2.2.1/sender/tariffs/{data['id']}", token=emsp.inbound_token)
    assert reply.data == data


def test_the_put_example_without_last_updated_is_stamped_now(tmp_path, capsys):
    path = tmp_path / "put.json"
    path.write_text(json.dumps(as_ours(example("tariff_put_example.json"))))
    call_command("ocpi_import_tariffs", str(path), "--json")
    summary = json.loads(capsys.readouterr().out)
    assert summary["created"] == 1
    assert summary["tariffs"][0]["tariff"] == "NL/ABC/12"
    assert "last_updated" in json.loads(Tariff.objects.get().ocpi_json)


def test_a_tariff_of_a_party_that_is_not_ours_fails_and_the_others_import(tmp_path, capsys):
    path = tmp_path / "two.json"
    path.write_text(json.dumps([example(), as_ours(example("tariff_2_alt_text.json"))]))
    with pytest.raises(CommandError, match="1 of 2"):
        call_command("ocpi_import_tariffs", str(path), "--json")
    summary = json.loads(capsys.readouterr().out)
    assert (summary["created"], summary["failed"]) == (1, 1)
    assert "not one of our CPO parties" in summary["tariffs"][0]["error"]
    assert Tariff.objects.count() == 1


def test_the_spec_examples_file_is_left_as_it_is(tmp_path):
    shutil.copy(FIXTURES / "tariff_1_simple_2hour.json", tmp_path / "t.json")
    assert json.loads((tmp_path / "t.json").read_text()) == example()


def test_ocpi_pull_tariffs_stores_the_partners_tariffs(cpo, capsys):
    fake = ModulePartner(
        module="tariffs",
        accepted_tokens={"partner-token-c"},
        objects=[example(n) for n in TARIFF_EXAMPLES[:5]],
    )
    with use_transport(fake.transport()):
        call_command("ocpi_pull", "tariffs", cpo.partner.name, "--json")
    summary = json.loads(capsys.readouterr().out)
    assert (summary["state"], summary["stored"], summary["pages"]) == ("DONE", 5, 3)
    stored = {
        t.object_id: json.loads(t.ocpi_json) for t in Tariff.objects.filter(partner=cpo.partner)
    }
    assert sorted(stored) == sorted(t["id"] for t in fake.objects)
    for data in fake.objects:
        assert stored[data["id"]] == data
    sync = ModuleSync.objects.get(partner=cpo.partner, module="tariffs")
    assert sync.state == SyncState.DONE

    # The next pull is incremental: it asks for date_from = the start of the last one.
    with use_transport(fake.transport()):
        call_command("ocpi_pull", "tariffs", cpo.partner.name, "--json")
    assert "date_from=" in fake.list_requests[-1].url


def test_a_full_pull_keeps_a_copy_the_list_left_out(cpo, capsys):
    fake = ModulePartner(module="tariffs", accepted_tokens={"partner-token-c"}, objects=[example()])
    with use_transport(fake.transport()):
        call_command("ocpi_pull", "tariffs", cpo.partner.name)
    capsys.readouterr()
    fake.objects = []
    with use_transport(fake.transport()):
        call_command("ocpi_pull", "tariffs", cpo.partner.name, "--full", "--json")
    summary = json.loads(capsys.readouterr().out)
    assert "kept" in summary["message"]
    assert Tariff.objects.filter(partner=cpo.partner).count() == 1
    assert not fake.object_requests  # the tariffs sender has no GET of one tariff


def test_ocpi_pull_of_an_unknown_module_says_which_exist(cpo):
    with pytest.raises(CommandError, match="locations"):
        call_command("ocpi_pull", "nothing", cpo.partner.name)
