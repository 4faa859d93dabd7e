"""Fixtures of the core tests: the locations CPO partner, to push real objects through the core."""

from __future__ import annotations

from tests.locations.conftest import cpo  # noqa: F401 (a fixture, shared)
