"""The ``parkcarbon`` command. Each subcommand's module registers itself with ``add_parser(subparsers)``
and handles ``(args, settings)``: the run's settings (environment, ``.env``, and the ports and
credentials of the services running from the run directory) are resolved once, here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from park.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    from parkcarbon.cli import collect, dashboards, ledger, pipeline, score, services, simulate

    parser = argparse.ArgumentParser(
        prog="parkcarbon",
        description="Industrial-park carbon credits: meters over MQTT → InfluxDB → monthly accounting → credits.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in (services, simulate, collect, score, pipeline, ledger, dashboards):
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from parkcarbon.runtime import settings_for_run_dir

    args = build_parser().parse_args(argv)
    code: int = args.handler(args, settings_for_run_dir(Settings()))
    return code


if __name__ == "__main__":
    sys.exit(main())
