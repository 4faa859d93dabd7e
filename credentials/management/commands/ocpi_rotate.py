from __future__ import annotations

from credentials.management.base import JobCommand
from credentials.models import JobKind


class Command(JobCommand):
    help = "Rotate the tokens with a registered partner (credentials PUT)."
    kind = JobKind.ROTATE
