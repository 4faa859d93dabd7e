from __future__ import annotations

from credentials.management.base import JobCommand
from credentials.models import JobKind


class Command(JobCommand):
    help = "Unregister a partner (credentials DELETE): all traffic with it stops."
    kind = JobKind.UNREGISTER
