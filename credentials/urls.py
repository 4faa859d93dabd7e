from __future__ import annotations

from django.urls import re_path

from . import views

# Paths answer with and without a trailing slash, without redirects.
urlpatterns = [
    re_path(r"^versions/?$", views.VersionListView.as_view(), name="versions"),
    re_path(r"^2\.2\.1/?$", views.VersionDetailView.as_view(), name="version-details"),
    re_path(r"^2\.2\.1/credentials/?$", views.CredentialsView.as_view(), name="credentials"),
]
