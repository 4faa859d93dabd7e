"""Settings of the tokens benchmark server: ``bench.settings`` with ``/bench/ceiling/tokens``."""

from __future__ import annotations

from bench.settings import *  # noqa: F403

ROOT_URLCONF = "bench.tokens_urls"
