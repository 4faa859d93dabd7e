from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from journal import recorder


@pytest.fixture(autouse=True)
def _journal_on(settings: Any) -> Iterator[None]:
    """The journal is off in the other tests (tests/settings.py); here it is on."""
    settings.OCPI_JOURNAL = True
    recorder.forget_captures()
    yield
    recorder.forget_captures()
