"""Helpers of the schema tests (locations, tariffs, tokens): errors as the envelope shows them,
changed copies of an example, plain output."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.serializers import ValidationError

from ocpi_platform.ocpi.envelope import describe_validation_errors

MISSING = object()  # for ``changed``: remove the field


def assert_plain(value: Any) -> None:
    """Plain dicts and lists all the way down."""
    if isinstance(value, dict):
        assert type(value) is dict
        for item in value.values():
            assert_plain(item)
    elif isinstance(value, list):
        assert type(value) is list
        for item in value:
            assert_plain(item)


def assert_same_key_order(rendered: Any, original: Any) -> None:
    """``rendered`` has the keys of ``original`` in the same order, all the way down."""
    if isinstance(original, dict):
        assert list(rendered) == list(original)
        for key, item in original.items():
            assert_same_key_order(rendered[key], item)
    elif isinstance(original, list):
        for mine, theirs in zip(rendered, original, strict=True):
            assert_same_key_order(mine, theirs)


def errors(validate: Callable[..., Any], data: Any, **kwargs: Any) -> list[str]:
    """The 'field: message' lines the envelope would show for a refused ``data``."""
    with pytest.raises(ValidationError) as info:
        validate(data, **kwargs)
    return describe_validation_errors(info.value.detail)


def assert_error(lines: list[str], expected: str) -> None:
    assert any(line.startswith(expected) for line in lines), lines


def changed(base: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with the value at ``path`` replaced (or removed: MISSING)."""
    data = copy.deepcopy(base)
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    if value is MISSING:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data
