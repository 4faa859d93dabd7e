"""WSGI entry point (gunicorn ocpi_platform.wsgi)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocpi_platform.settings")

application = get_wsgi_application()

from ocpi_platform import warm  # noqa: E402  (after Django's setup)

warm.settle()
