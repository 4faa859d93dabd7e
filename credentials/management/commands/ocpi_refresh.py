from __future__ import annotations

from credentials.management.base import JobCommand
from credentials.models import JobKind


class Command(JobCommand):
    help = "Re-fetch a registered partner's versions and endpoints."
    kind = JobKind.REFRESH
