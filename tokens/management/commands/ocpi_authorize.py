"""Authorize a token at one of our charge points, as our charge point system would.

Prints the AuthorizationInfo and where the answer came from (the local copy of the eMSP's
token, or the eMSP asked in real time), following the token's whitelist rule
(``tokens.realtime``). Exit status 0 when ALLOWED, 1 otherwise (2 for bad arguments).
"""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tokens.realtime import authorize_at_charge_point
from tokens.schema import TOKEN_TYPES


def _party(text: str) -> tuple[str, str]:
    country_code, sep, party_id = text.partition("/")
    if not sep or len(country_code) != 2 or len(party_id) != 3:
        raise CommandError(f"--party must be COUNTRY/PARTY (e.g. DE/TNM), got {text!r}")
    return country_code.upper(), party_id.upper()


class Command(BaseCommand):
    help = "Authorize a token (uid) at one of our locations: local copy or the eMSP, per whitelist."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("uid", help="The token uid the charge point read.")
        parser.add_argument("--type", default="RFID", choices=TOKEN_TYPES, help="Token type.")
        parser.add_argument("--location", help="The location id (LocationReferences).")
        parser.add_argument(
            "--evse", action="append", default=[], help="An EVSE uid at the location (repeat)."
        )
        parser.add_argument(
            "--party", help="The eMSP party COUNTRY/PARTY to ask when we hold no copy."
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["evse"] and not options["location"]:
            raise CommandError("--evse needs --location.")
        location: dict[str, Any] | None = None
        if options["location"]:
            location = {"location_id": options["location"]}
            if options["evse"]:
                location["evse_uids"] = options["evse"]
        outcome = authorize_at_charge_point(
            options["uid"],
            token_type=options["type"],
            location=location,
            party=_party(options["party"]) if options["party"] else None,
        )
        if options["json"]:
            self.stdout.write(json.dumps(outcome.as_dict(), indent=2))
        else:
            self.stdout.write(f"allowed: {outcome.allowed or '-'}")
            self.stdout.write(f"source: {outcome.source.value}")
            self.stdout.write(f"whitelist: {outcome.whitelist or '-'}")
            if outcome.info and outcome.info.get("authorization_reference"):
                self.stdout.write(
                    f"authorization_reference: {outcome.info['authorization_reference']}"
                )
            if outcome.note:
                self.stdout.write(f"note: {outcome.note}")
            if outcome.info:
                self.stdout.write(json.dumps(outcome.info, indent=2))
        if outcome.allowed != "ALLOWED":
            raise SystemExit(1)
