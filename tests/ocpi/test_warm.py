"""A server process freezes what it has loaded before it serves (``ocpi_platform.warm``), so that
full garbage collections do not walk the code's objects in the middle of requests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import gc, json, sys
import ocpi_platform.wsgi
frozen = gc.get_freeze_count()
gc.collect()
print(json.dumps({
    "frozen": frozen,
    "tracked": len(gc.get_objects()),
    "views_loaded": "tokens.views" in sys.modules and "locations.views" in sys.modules,
}))
"""


def test_the_wsgi_entry_point_loads_the_views_and_freezes_them():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])

    assert found["views_loaded"]
    # Django, DRF and the apps are frozen; a collection walks only what came after.
    assert found["frozen"] > 50_000
    assert found["tracked"] < found["frozen"] / 10
