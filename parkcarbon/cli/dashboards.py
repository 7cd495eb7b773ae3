"""``parkcarbon dashboards build --out DIR`` and ``parkcarbon dashboards push --url URL``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from park.registry import park_timezone
from park.settings import Settings

TOKEN_ENV = "GRAFANA_TOKEN"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("dashboards", help="build the Grafana dashboards, or push them to a Grafana")
    commands = p.add_subparsers(dest="dashboards_command", required=True)
    build = commands.add_parser("build", help="write dashboard JSON and provisioning files")
    build.add_argument("--out", type=Path, help="where to write (required unless --docker)")
    build.add_argument("--docker", action="store_true", help="rewrite docker/grafana/ for the compose stack")
    build.add_argument("--influx-url", default=None, help="the datasource URL (default: the configured InfluxDB)")
    build.set_defaults(handler=_build)
    push = commands.add_parser("push", help=f"create or update the dashboards in a Grafana (token in ${TOKEN_ENV})")
    push.add_argument("--url", required=True, help="Grafana's base URL, e.g. http://grafana:3000")
    push.add_argument("--folder", default="parkcarbon", help="the Grafana folder (created if missing)")
    push.add_argument("--no-overwrite", action="store_true", help="refuse to replace dashboards changed in Grafana")
    push.set_defaults(handler=_push)


def _build(args: argparse.Namespace, settings: Settings) -> int:
    from dashboards.build import write_dashboards, write_docker_grafana

    if args.docker:
        written = write_docker_grafana()
    elif args.out is None:
        print("parkcarbon dashboards build: --out DIR or --docker", file=sys.stderr)
        return 2
    else:
        # The datasource logs in with InfluxDB's dashboards account (READ), taken by Grafana from its
        # environment: INFLUX_USER=dashboards, INFLUX_PASSWORD from RUN/credentials.json.
        written = write_dashboards(
            args.out,
            args.influx_url or settings.influx.url,
            settings.influx.database,
            park_timezone(settings.registry),
            credentials_env=("INFLUX_USER", "INFLUX_PASSWORD"),
        )
    for path in written:
        print(path)
    return 0


def _push(args: argparse.Namespace, settings: Settings) -> int:
    from dashboards.push import push

    token = os.environ.get(TOKEN_ENV)
    if not token:
        print(f"parkcarbon dashboards push: set {TOKEN_ENV} to a Grafana service-account token", file=sys.stderr)
        return 2
    pushed = push(args.url, token, park_timezone(settings.registry), args.folder, overwrite=not args.no_overwrite)
    for p in pushed:
        print(f"{p.uid}: version {p.version} at {args.url.rstrip('/')}{p.url}")
    return 0
