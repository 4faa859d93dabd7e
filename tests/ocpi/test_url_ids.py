"""check_url_ids: ids in a URL follow the rules of the same field in a body; the plain cases are
decided without DRF's machinery and must give the very same verdicts."""

from __future__ import annotations

import pytest
from rest_framework import serializers

from ocpi_platform.ocpi.errors import InvalidParameters
from ocpi_platform.ocpi.fields import CiString, StrictChoice, _plainly_valid, check_url_ids

RULES = {
    "uid": CiString(36),
    "short": CiString(3),
    "type": StrictChoice(choices=["RFID", "AD_HOC_USER"]),
}
VALUES = [
    "",
    "A",
    "a" * 36,
    "a" * 37,
    "abc",
    "abcd",
    "with space",
    " lead",
    "tab\there",
    "nul\x00",
    "line\nbreak",
    "trailing\n",
    "\n",
    "\r\n",
    "é",
    "\u00a0nbsp",
    "\ud800",
    "\x7f",
    "RFID",
    "rfid",
    " RFID",
    "AD_HOC_USER",
    "~!@#$%^&*()_+{}|:<>?",
]


def full_verdict(rule: serializers.Field, value: str) -> bool:
    try:
        rule.run_validation(value)
    except serializers.ValidationError:
        return False
    return True


@pytest.mark.parametrize("name", sorted(RULES))
@pytest.mark.parametrize("value", VALUES)
def test_the_plain_path_agrees_with_the_full_validation(name, value):
    rule = RULES[name]
    expected = full_verdict(rule, value)

    if _plainly_valid(rule, value):
        assert expected
    if expected:
        check_url_ids({name: value}, RULES)
    else:
        with pytest.raises(InvalidParameters, match=f"The {name} in the URL is not valid"):
            check_url_ids({name: value}, RULES)


def test_the_plain_path_serves_the_common_ids():
    assert _plainly_valid(RULES["uid"], "012345678901234")
    assert _plainly_valid(RULES["type"], "RFID")
    assert not _plainly_valid(RULES["uid"], "x" * 37)


def test_a_rule_with_a_validator_of_its_own_takes_the_full_path():
    def no_x(value: str) -> None:
        if "x" in value:
            raise serializers.ValidationError("no x")

    rule = CiString(10, validators=[no_x])

    assert not _plainly_valid(rule, "xx")
    with pytest.raises(InvalidParameters, match="no x"):
        check_url_ids({"id": "xx"}, {"id": rule})
