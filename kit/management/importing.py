"""Importing our own objects of a module from OCPI JSON: one object, a list of them, or a
response envelope (the base of ``ocpi_import_locations``, ``ocpi_import_tariffs``...).

Each object goes through the same service as an edit of ours: it is validated, must belong to
one of our parties of the module's owner role, is stored and rendered, and is pushed to the
partners (outbox). A bad object is reported and skipped; the others are imported. The exit
status is non-zero when any failed. A module's command names its object (``noun``, ``title``)
and how one is stored (``store``).
"""

from __future__ import annotations

import json
import sys
from argparse import ArgumentParser, BooleanOptionalAction
from pathlib import Path
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError

from kit.spec import ObjectKey
from ocpi_platform.ocpi.errors import OcpiError
from ocpi_platform.ocpi.fields import json_kind

CREATED, UPDATED, FAILED = "created", "updated", "failed"


class FileProblem(Exception):
    """The file cannot be read, is not JSON, or holds no objects."""


def objects_in(data: Any, title: str, id_field: str = "id") -> list[Any]:
    """The items of a file: an object, a list of them, or an envelope whose data is either."""
    if isinstance(data, dict) and "data" in data and id_field not in data:
        data = data["data"]
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return data
    raise FileProblem(
        f"expected a {title} object, a list of them or an OCPI response envelope, "
        f"got {json_kind(data)}"
    )


class ImportCommand(BaseCommand):
    """``handle`` of an import; a module's command sets the names and ``store``."""

    noun = "object"  # "location": the JSON summary's keys
    title = "Object"  # "Location": in messages
    key_fields: tuple[str, ...] = ("country_code", "party_id", "id")
    # Tests pass a stream to read '-' from.
    stealth_options = ("stdin",)

    def store(self, key: list[str], item: dict[str, Any], *, keep: bool) -> bool:
        """Store ``item`` (key: the values of the first three ``key_fields``): created?"""
        raise NotImplementedError

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "files", nargs="+", metavar="FILE", help="A JSON file; '-' reads standard input."
        )
        parser.add_argument(
            "--keep-timestamps",
            action=BooleanOptionalAction,
            default=True,
            help=f"New {self.noun}s keep the last_updated of the file (the default). With "
            f"--no-keep-timestamps they are stamped now. A {self.noun} that exists already is "
            "always stamped now.",
        )
        parser.add_argument("--json", action="store_true", help="Print a JSON summary.")

    def handle(self, *args: Any, **options: Any) -> None:
        quiet = options["json"]
        results: list[dict[str, Any]] = []
        for name in options["files"]:
            try:
                items = objects_in(
                    self._read(name, options.get("stdin")), self.title, self.key_fields[2]
                )
            except FileProblem as exc:
                error = str(exc)
                results.append({"file": name, self.noun: None, "result": FAILED, "error": error})
                if not quiet:
                    self.stderr.write(f"{name}: {exc}")
                continue
            for index, item in enumerate(items):
                result = self._import(name, index, item, keep=options["keep_timestamps"])
                results.append(result)
                if quiet:
                    continue
                if result["result"] == FAILED:
                    self.stderr.write(f"failed   {result[self.noun]}: {result['error']}")
                else:
                    self.stdout.write(f"{result['result']:<8} {result[self.noun]}")
        counts = {k: sum(r["result"] == k for r in results) for k in (CREATED, UPDATED, FAILED)}
        if quiet:
            self.stdout.write(json.dumps({**counts, f"{self.noun}s": results}, indent=2))
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
        result: dict[str, Any] = {"file": name, self.noun: f"{name}[{index}]"}
        if not isinstance(item, dict):
            error = f"expected a {self.title} object, got {json_kind(item)}"
            return {**result, "result": FAILED, "error": error}
        required = self.key_fields[:3]
        key = [item.get(k) for k in required]
        if not all(isinstance(v, str) and v for v in key):
            names = ", ".join(required[:-1]) + f" and {required[-1]}"
            error = f"{names} are required (strings)"
            return {**result, "result": FAILED, "error": error}
        result[self.noun] = ObjectKey(*(str(v) for v in key)).path
        try:
            created = self.store([str(v) for v in key], item, keep=keep)
        except OcpiError as exc:
            return {**result, "result": FAILED, "error": exc.message}
        return {**result, "result": CREATED if created else UPDATED}
