"""Every declared module's routes (``kit.routes.patterns``): one mounted URL module."""

from __future__ import annotations

from django.urls import URLPattern

from .routes import patterns
from .spec import declared

urlpatterns: list[URLPattern] = [url for spec in declared() for url in patterns(spec)]
