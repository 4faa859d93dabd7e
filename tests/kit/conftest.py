"""The kit is tested through its first declared module, tariffs (its fixtures)."""

from __future__ import annotations

from tests.tariffs.conftest import cpo, emsp, spec

__all__ = ["cpo", "emsp", "spec"]
