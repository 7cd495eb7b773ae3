"""``parkcarbon services`` (local Mosquitto and influxd) and ``parkcarbon registry check|import|export``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from park.settings import Settings
from parkcarbon.cli.registry_db import add_registry_db_arguments, registry_db

ACTIONS = {
    "up": "start Mosquitto and influxd (or confirm they run), generating passwords and the database",
    "down": "stop exactly what `up` started from this run directory (nothing running is fine)",
    "status": "say whether each service runs, and its ports; exit 1 if one does not",
    "rotate-password": "a new broker password for --user, which the running broker reloads",
    "docker-secrets": "the passwords and env file for docker/ into --out (default docker/secrets)",
    "tls-certs": "a CA and the broker's certificate into --out (default docker/certs) for --host names",
}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _services_parser(subparsers)
    _registry_parser(subparsers)


def _services_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "services",
        help="start, stop or show the local Mosquitto and influxd",
        description="Local Mosquitto and influxd under the run directory (PARKCARBON_RUN_DIR), stopped by PID.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="actions:\n" + "\n".join(f"  {name:16} {text}" for name, text in ACTIONS.items()),
    )
    p.add_argument("action", choices=list(ACTIONS), metavar="ACTION", help=f"one of: {', '.join(ACTIONS)} (below)")
    p.add_argument("--free-ports", action="store_true", help="pick free ports instead of the configured ones")
    p.add_argument("--user", help="rotate-password: the broker user (a gateway id, or collector-N)")
    p.add_argument(
        "--out", type=Path, help="docker-secrets: where to write them (docker/secrets); tls-certs: (docker/certs)"
    )
    p.add_argument(
        "--host",
        action="append",
        default=[],
        help="tls-certs: a name or address gateways reach the broker by (repeatable; mosquitto, localhost added)",
    )
    p.set_defaults(handler=_services)


def _services(args: argparse.Namespace, settings: Settings) -> int:
    from park.registry import load_registry
    from parkcarbon.services import (
        LocalServices,
        Ports,
        free_ports,
        rotate_password,
        write_docker_secrets,
        write_tls_certs,
    )

    services = LocalServices(settings.run_dir)
    if args.action == "up":
        wanted = (
            free_ports()
            if args.free_ports
            else Ports(settings.mqtt.port, settings.influx.port, settings.influx.rpc_port)
        )
        registry = load_registry(settings.registry)
        print(f"starting mosquitto and influxd under {services.run_dir} ...", flush=True)
        ports = services.up(registry, wanted, settings.influx.database, settings.collector.max_replicas)
        print(f"mosquitto  mqtt://127.0.0.1:{ports.mqtt}   (users and passwords: {services.run_dir}/credentials.json)")
        print(
            f"influxd    http://127.0.0.1:{ports.influx_http}   (database {settings.influx.database};"
            " accounts admin, collector, pipeline, dashboards)"
        )
        print(f"run dir    {services.run_dir}   stop with: parkcarbon services down")
    elif args.action == "rotate-password":
        if not args.user:
            print(
                "parkcarbon services rotate-password: --user GATEWAY_ID (or collector-N) is required",
                file=sys.stderr,
            )
            return 2
        rotate_password(services.run_dir, args.user)
        print(f"new password for {args.user} in {services.run_dir}/credentials.json; the broker reloaded it")
    elif args.action == "docker-secrets":
        written = write_docker_secrets(args.out or Path("docker/secrets"), load_registry(settings.registry))
        print(f"{written.credentials}\n{written.mosquitto_passwd}\n{written.gateways}\n{written.compose_env}")
        print(f"start the stack with: docker-compose -f docker/compose.yaml --env-file {written.compose_env} up -d")
        print(
            "or with Celery workers: docker-compose -f docker/compose.yaml -f docker/compose.celery.yaml"
            f" --env-file {written.compose_env} up -d --scale airflow-worker=2"
        )
    elif args.action == "tls-certs":
        files = write_tls_certs(args.out or Path("docker/certs"), args.host)
        print(f"{files.ca_cert}   (give it to every gateway: it verifies the broker with it)")
        print(f"{files.ca_key}   (the CA's key: keep it offline)")
        print(f"{files.server_cert}\n{files.server_key}")
    elif args.action == "down":
        stopped = services.down()
        print(f"stopped: {', '.join(stopped) or 'nothing was running'} ({services.run_dir})")
    else:
        status = services.status()
        if not status:
            print(
                f"parkcarbon services status: nothing started from {services.run_dir};"
                " start it with `parkcarbon services up`",
                file=sys.stderr,
            )
            return 1
        for name, running in status.items():
            print(f"{name:10} {'running' if running else 'STOPPED'}")
        print(f"ports      {services.ports()}")
        return 0 if all(status.values()) else 1
    return 0


def _registry_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("registry", help="check the park registry (enterprises, workshops, gateways, meters)")
    p.add_argument(
        "action",
        choices=["check", "import", "export"],
        help=(
            "check: validate the file; each error names entry and field. import: the file and the enterprises"
            " file into the platform's database, from --as-of. export: the database's registry as of --as-of"
            " into --out"
        ),
    )
    p.add_argument("file", nargs="?", type=Path, help="the registry YAML (default: PARKCARBON_REGISTRY)")
    add_registry_db_arguments(p)
    p.set_defaults(handler=_registry)


def _registry(args: argparse.Namespace, settings: Settings) -> int:
    from park.registry import RegistryError, load_registry

    if args.action != "check":
        return registry_db(args, settings)

    path = args.file or settings.registry
    try:
        registry = load_registry(path)
    except RegistryError as exc:
        print(f"parkcarbon registry check: {exc}", file=sys.stderr)
        return 1
    replacements = sum(len(m.replacements) for m in registry.meters)
    print(
        f"{path}: version {registry.version}, {len(registry.enterprises)} enterprises, {len(registry.workshops)} "
        f"workshops, {len(registry.gateways)} gateways, {len(registry.meters)} meters, {replacements} meter "
        "replacements: valid"
    )
    return 0
