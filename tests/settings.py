"""Test settings: the project settings on PostgreSQL, with a fixed OCPI identity."""

from __future__ import annotations

import os

os.environ.setdefault("OCPI_IGNORE_DOTENV", "1")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ocpi")

from ocpi_platform.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
OCPI_PUBLIC_URL = "http://testserver"
OCPI_PARTIES = "NL:ABC:CPO,NL:ABC:EMSP"
OCPI_BUSINESS_NAME = "Test Platform"
# An accidental .delay() in an in-process test never reaches a network broker.
CELERY_BROKER_URL = "memory://"
CELERY_BROKER_TRANSPORT_OPTIONS = {}
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
# Tests reuse token values across test databases: resolve every request (a test enables it).
OCPI_AUTH_CACHE_SECONDS = 0
# In-process tests list right after a write: read the database (the listing tests enable it).
OCPI_LIST_CACHE_SECONDS = 0
# The request journal is off (its write would count in the query budgets of other tests);
# tests/journal turns it on, writing each entry at once (no thread outside the transaction).
OCPI_JOURNAL = False
OCPI_JOURNAL_FLUSH_SECONDS = 0
