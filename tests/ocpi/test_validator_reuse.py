"""Validation reuses one serializer per class, kind and thread: nothing of one object's
validation (its values, its errors, a PATCH's optional fields) reaches the next one."""

from __future__ import annotations

import threading

import pytest
from rest_framework.exceptions import ValidationError

from ocpi_platform.ocpi.fields import validate_object
from tests.conftest import load_example
from tokens.schema import TokenSerializer

FULL = load_example("token_example_2_full_rfid.json")


def test_a_bad_object_between_two_good_ones_leaves_nothing_behind():
    first = validate_object(TokenSerializer, FULL)
    with pytest.raises(ValidationError) as refused:
        validate_object(TokenSerializer, {**FULL, "whitelist": "SOMETIMES", "uid": None})
    again = validate_object(TokenSerializer, {**FULL, "uid": "OTHER"})

    assert set(refused.value.detail) == {"whitelist", "uid"}
    assert first["uid"] == FULL["uid"]
    assert again["uid"] == "OTHER"
    assert again["whitelist"] == FULL["whitelist"]


def test_a_patch_does_not_make_a_puts_fields_optional():
    patched = validate_object(
        TokenSerializer, {"valid": False, "last_updated": FULL["last_updated"]}, partial=True
    )
    with pytest.raises(ValidationError) as refused:
        validate_object(TokenSerializer, {"valid": False, "last_updated": FULL["last_updated"]})

    assert patched == {"valid": False, "last_updated": patched["last_updated"]}
    assert "uid" in refused.value.detail
    with pytest.raises(ValidationError) as no_stamp:
        validate_object(TokenSerializer, {"valid": False}, partial=True)
    assert set(no_stamp.value.detail) == {"last_updated"}


def test_threads_validate_at_once_each_their_own_object():
    results: dict[int, str] = {}

    def run(n: int) -> None:
        for _ in range(200):
            results[n] = validate_object(TokenSerializer, {**FULL, "uid": f"U{n}"})["uid"]
            if results[n] != f"U{n}":
                return

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == {n: f"U{n}" for n in range(4)}
