"""``ocpi_pull_locations NAME``: the kit's ``ocpi_pull locations NAME`` (kept for its users)."""

from __future__ import annotations

from kit.management.commands import ocpi_pull


class Command(ocpi_pull.Command):
    help = (
        "Pull a partner's locations (all pages) and store them: the changes since the last "
        "successful pull, or everything with --full."
    )
    module = "locations"
