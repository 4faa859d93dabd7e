"""What a server process does once its code is loaded, before it serves anything.

``settle()`` loads what the first request would (every URL pattern, and with them every view
module), then moves everything alive into the garbage collector's permanent generation
(``gc.freeze``). A full collection walks every object it tracks, holding the GIL: with
Django, DRF and the apps loaded that is over 100,000 objects, a pause of 50-110 ms measured
in a gunicorn worker, every few seconds under load, on every request in flight. Frozen, the
code's objects are no longer walked, and a full collection takes a few ms. Objects made later
are collected as before; nothing frozen is ever freed by a collection (these live as long as
the process anyway).
"""

from __future__ import annotations

import gc

from django.urls import get_resolver


def settle() -> None:
    get_resolver().url_patterns  # noqa: B018  (imports the URLconf and every view module)
    gc.collect()
    gc.freeze()
