"""Import our own locations from OCPI JSON: one Location, a list of them, or a response envelope.

Each location goes through the same service as an edit of ours: it is validated, must belong to
one of our CPO parties, is stored and rendered, and is pushed to the partners (outbox). A bad
location is reported and skipped; the others are imported. The exit status is non-zero when any
failed.
"""

from __future__ import annotations

import json
import sys
from argparse import ArgumentParser, BooleanOptionalAction
from pathlib import Path
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError

from locations import services
from locations.paths import ObjectPath
from ocpi_platform.ocpi.errors import OcpiError
from ocpi_platform.ocpi.fields import json_kind

CREATED, UPDATED, FAILED = "created", "updated", "failed"


class FileProblem(Exception):
    """The file cannot be read, is not JSON, or holds no locations."""


def _locations_in(data: Any) -> list[Any]:
    """The items of a file: a Location, a list of them, or an envelope whose data is either."""
    if isinstance(data, dict) and "data" in data and "id" not in data:
        data = data["data"]
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return data
    raise FileProblem(
        "expected a Location object, a list of them or an OCPI response envelope, "
        f"got {json_kind(data)}"
    )


class Command(BaseCommand):
    help = (
        "Import our own locations from OCPI JSON files (a Location, a list of Locations or a "
        "response envelope) and push them to the partners."
    )
    # Tests pass a stream to read '-' from.
    stealth_options = ("stdin",)

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "files", nargs="+", metavar="FILE", help="A JSON file; '-' reads standard input."
        )
        parser.add_argument(
            "--keep-timestamps",
            action=BooleanOptionalAction,
            default=True,
            help="New locations keep the last_updated of the file (the default). With "
            "--no-keep-timestamps they are stamped now. A location that exists already is "
            "always stamped now.",
        )
        parser.add_argument("--json", action="store_true", help="Print a JSON summary.")

    def handle(self, *args: Any, **options: Any) -> None:
        quiet = options["json"]
        results: list[dict[str, Any]] = []
        for name in options["files"]:
            try:
                items = _locations_in(self._read(name, options.get("stdin")))
            except FileProblem as exc:
                error = str(exc)
                results.append({"file": name, "location": None, "result": FAILED, "error": error})
                if not quiet:
                    self.stderr.write(f"{name}: {exc}")
                continue
            for index, item in enumerate(items):
                result = self._import(name, index, item, keep=options["keep_timestamps"])
                results.append(result)
                if quiet:
                    continue
                if result["result"] == FAILED:
                    self.stderr.write(f"failed   {result['location']}: {result['error']}")
                else:
                    self.stdout.write(f"{result['result']:<8} {result['location']}")
        counts = {k: sum(r["result"] == k for r in results) for k in (CREATED, UPDATED, FAILED)}
        if quiet:
            self.stdout.write(json.dumps({**counts, "locations": results}, indent=2))
        else:
            self.stdout.write(
                f"{counts[CREATED]} created, {counts[UPDATED]} updated, {counts[FAILED]} failed."
            )
        if counts[FAILED]:
            total = len(results)
            raise CommandError(f"{counts[FAILED]} of {total} could not be imported.")

    def _read(self, name: str, stdin: TextIO | None) -> Any:
        try:
            if name == "-":
                text = (stdin or sys.stdin).read()
            else:
                text = Path(name).read_text(encoding="utf-8")
        except OSError as exc:
            raise FileProblem(f"cannot be read: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise FileProblem("is not UTF-8 text, so not JSON") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise FileProblem(
                f"is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from None

    def _import(self, name: str, index: int, item: Any, *, keep: bool) -> dict[str, Any]:
        result: dict[str, Any] = {"file": name, "location": f"{name}[{index}]"}
        if not isinstance(item, dict):
            error = f"expected a Location object, got {json_kind(item)}"
            return {**result, "result": FAILED, "error": error}
        key = [item.get(k) for k in ("country_code", "party_id", "id")]
        if not all(isinstance(v, str) and v for v in key):
            error = "country_code, party_id and id are required (strings)"
            return {**result, "result": FAILED, "error": error}
        path = ObjectPath(*(str(v) for v in key))
        result["location"] = path.path
        try:
            outcome = services.put(path, item, owner=None, keep_timestamps=keep)
        except OcpiError as exc:
            return {**result, "result": FAILED, "error": exc.message}
        return {**result, "result": CREATED if outcome.created else UPDATED}
