"""Settings of the benchmark server: the production settings plus the ``/bench/ceiling`` view.

Everything else (database, secrets, DEBUG, connection reuse) comes from the environment exactly
as in production; ``bench/locations.py`` sets it.
"""

from __future__ import annotations

from ocpi_platform.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
