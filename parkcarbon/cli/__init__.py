"""The ``parkcarbon`` command. Each subcommand's module registers itself with ``add_parser(subparsers)``
and handles ``(args, settings)``: the run's settings (environment, ``.env``, and the ports and
credentials of the services running from the run directory) are resolved once, here, with the
credentials of the subcommand's role only (``parkcarbon.runtime``).

Everything the command writes (credentials, the collector's spool, the SQLite ledger, reports) is
created readable by its owner only: the process's umask is 077 from the start."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from park.settings import Settings

if TYPE_CHECKING:
    from parkcarbon.runtime import Role

# Whose credentials each subcommand gets (parkcarbon/runtime.py); the rest get the pipeline's.
ROLES: dict[str, Role | None] = {
    "collect": "collector",
    "dashboards": "dashboards",
    "nearzero": None,
    "simulate": None,
    "score": None,
    "services": None,
    "broker": None,
}


def build_parser() -> argparse.ArgumentParser:
    from parkcarbon.cli import (
        airflow,
        broker,
        collect,
        dashboards,
        ledger,
        nearzero,
        pipeline,
        platform,
        score,
        services,
        simulate,
    )

    parser = OneLineParser(
        prog="parkcarbon",
        description="Industrial-park carbon credits: meters over MQTT → InfluxDB → monthly accounting → credits.",
    )
    parser.add_argument("--debug", action="store_true", help="on a failure, show the traceback too")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        services,
        simulate,
        collect,
        score,
        nearzero,
        pipeline,
        airflow,
        ledger,
        dashboards,
        platform,
        broker,
    ):
        module.add_parser(subparsers)
    return parser


class OneLineParser(argparse.ArgumentParser):
    """A usage error is one line naming the command, the argument and the value, not the usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def command_name(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The words of the command that ran, e.g. ``ledger settle`` or ``services up``."""
    words: list[str] = []
    current: argparse.ArgumentParser | None = parser
    while current is not None:
        found = next((a for a in current._actions if isinstance(a, argparse._SubParsersAction)), None)
        chosen = getattr(args, found.dest, None) if found is not None else None
        if found is None or chosen is None:
            break
        words.append(chosen)
        current = found.choices.get(chosen)
    action = getattr(args, "action", None)  # services up|down|…, registry check
    if isinstance(action, str):
        words.append(action)
    return " ".join(words)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subcommand. Every failure is one line on stderr, ``parkcarbon <command>: <reason>``, and
    exit code 1 (2 for a usage error); ``--debug`` shows the traceback as well."""
    from parkcarbon.cli.errors import one_line

    parser = build_parser()
    args = parser.parse_args(argv)
    name = command_name(parser, args)
    previous = os.umask(0o077)
    settings: Settings | None = None
    try:
        from parkcarbon.runtime import settings_for_run_dir

        settings = Settings()
        code: int = args.handler(args, settings_for_run_dir(settings, ROLES.get(args.command, "pipeline")))
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"parkcarbon {name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        sys.stdout.flush()
        print(f"parkcarbon {name}: {one_line(exc, settings)}", file=sys.stderr)
        return 1
    finally:
        os.umask(previous)
    return code


if __name__ == "__main__":
    sys.exit(main())
