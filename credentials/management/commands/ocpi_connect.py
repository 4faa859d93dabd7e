from __future__ import annotations

import getpass
import os
import sys
from argparse import ArgumentParser, RawDescriptionHelpFormatter
from typing import Any

from django.core.management.base import CommandError, CommandParser

from credentials import handshake
from credentials.management.base import PartnerCommand

TOKEN_ENV = "OCPI_TOKEN_A"  # noqa: S105  (the name of a variable, not a token)


class Command(PartnerCommand):
    help = (
        "Register with a partner that gave us its versions URL and token A.\n\n"
        "Give token A by --token-a-stdin (one line from standard input; on a terminal, a\n"
        f"prompt that does not echo) or by the environment variable {TOKEN_ENV}, e.g.\n"
        "  manage.py ocpi_connect NAME --versions-url URL --token-a-stdin < token-a.txt\n"
        "--token-a VALUE still works but is discouraged: the value lands in the shell\n"
        "history and in the process list (ps) that every user of the machine can read."
    )
    waits = True
    # call_command(..., stdin=io.StringIO("token\n")) in tests and scripts.
    stealth_options = ("stdin",)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("formatter_class", RawDescriptionHelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--versions-url", required=True, help="The partner's versions URL.")
        source = parser.add_mutually_exclusive_group()
        source.add_argument(
            "--token-a-stdin",
            action="store_true",
            help="Read the token A the partner gave us from standard input (one line; on a "
            "terminal, a prompt that does not echo). Recommended.",
        )
        source.add_argument(
            "--token-a",
            metavar="VALUE",
            help="The token A itself. Discouraged: visible in the shell history and in ps. "
            f"Prefer --token-a-stdin or the environment variable {TOKEN_ENV}.",
        )

    def token_a(self, options: dict[str, Any]) -> str:
        if options.get("token_a_stdin"):
            stream = options.get("stdin") or sys.stdin
            if stream is sys.stdin and stream.isatty():
                line = getpass.getpass("Token A: ")
            else:
                line = stream.readline()
            token = line.rstrip("\r\n")
            if not line:
                raise CommandError("No token A on standard input (expected one line).")
            if not token.strip():
                raise CommandError(
                    "No token A on standard input: the line is empty (expected one line with "
                    "the token)."
                )
            return token
        if options.get("token_a") is not None:
            return str(options["token_a"])
        token = os.environ.get(TOKEN_ENV, "")
        if token and not token.strip():
            raise CommandError(
                f"Token A is empty: the environment variable {TOKEN_ENV} holds only spaces."
            )
        if not token:
            raise CommandError(
                f"Token A is missing: pass --token-a-stdin (and the token on standard input) or "
                f"set the environment variable {TOKEN_ENV}."
            )
        return token

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            job = handshake.connect_partner(
                name=options["name"],
                versions_url=options["versions_url"],
                token_a=self.token_a(options),
            )
        except handshake.HandshakeFailed as exc:
            raise self.failed(exc) from None
        self.run_job(options, job, f"Registration with {options['name']} started")
