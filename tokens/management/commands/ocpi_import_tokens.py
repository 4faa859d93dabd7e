"""Import our own tokens (we are the eMSP) from OCPI JSON: one Token, a list, or an envelope.

Each token goes through the kit's write path for our data (validation, one of our eMSP
parties, rendered document, push to the CPOs: PUT). A bad token is reported and skipped; the
exit status is non-zero when any failed. Tokens are never deleted: import ``"valid": false``.
"""

from __future__ import annotations

import json
import sys
from argparse import ArgumentParser, BooleanOptionalAction
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

import kit
from kit import services
from ocpi_platform.ocpi.errors import OcpiError
from ocpi_platform.ocpi.fields import json_kind
from ocpi_platform.ocpi.registry import ModuleId

CREATED, UPDATED, FAILED = "created", "updated", "failed"


def tokens_in(data: Any) -> list[Any]:
    """A Token, a list of them, or an envelope whose data is either."""
    if isinstance(data, dict) and "data" in data and "uid" not in data:
        data = data["data"]
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return data
    raise ValueError(f"expected a Token, a list of Tokens or an envelope, got {json_kind(data)}")


def read_json(name: str) -> Any:
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        return json.loads(text)
    except OSError as exc:
        raise ValueError(f"cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError("is not UTF-8 text, so not JSON") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not JSON: {exc.msg} (line {exc.lineno})") from None


def import_one(item: Any, *, keep: bool) -> tuple[str, str, str]:
    """(token, result, error) of one item."""
    spec = kit.spec_of(ModuleId.TOKENS)
    if not isinstance(item, dict):
        return "?", FAILED, f"expected a Token object, got {json_kind(item)}"
    if not all(
        isinstance(item.get(k), str) and item[k] for k in ("country_code", "party_id", "uid")
    ):
        return "?", FAILED, "country_code, party_id and uid are required (strings)"
    key = spec.key_of(item)
    try:
        outcome = services.put(spec, key, item, owner=None, keep_timestamp=keep)
    except OcpiError as exc:
        return str(key), FAILED, exc.message
    return str(key), CREATED if outcome.created else UPDATED, ""


class Command(BaseCommand):
    help = "Import our own tokens from OCPI JSON files and push them to the CPOs."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE", help="'-' reads standard input.")
        parser.add_argument(
            "--keep-timestamps",
            action=BooleanOptionalAction,
            default=True,
            help="Keep the file's last_updated (default); --no-keep-timestamps stamps now.",
        )
        parser.add_argument("--json", action="store_true", help="Print a JSON summary.")

    def handle(self, *args: Any, **options: Any) -> None:
        results: list[dict[str, str]] = []
        for name in options["files"]:
            try:
                items = tokens_in(read_json(name))
            except ValueError as exc:
                results.append({"file": name, "token": "", "result": FAILED, "error": str(exc)})
                continue
            for item in items:
                token, result, error = import_one(item, keep=options["keep_timestamps"])
                results.append({"file": name, "token": token, "result": result, "error": error})
        counts = {k: sum(r["result"] == k for r in results) for k in (CREATED, UPDATED, FAILED)}
        if options["json"]:
            self.stdout.write(json.dumps({**counts, "tokens": results}, indent=2))
        else:
            for r in results:
                line = f"{r['result']:<8} {r['file']}: {r['token']} {r['error']}".rstrip()
                (self.stderr if r["result"] == FAILED else self.stdout).write(line)
            self.stdout.write(
                f"{counts[CREATED]} created, {counts[UPDATED]} updated, {counts[FAILED]} failed."
            )
        if counts[FAILED]:
            raise CommandError(f"{counts[FAILED]} of {len(results)} could not be imported.")
