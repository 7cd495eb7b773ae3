"""``parkcarbon services`` (local Mosquitto and influxd) and ``parkcarbon registry check``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from park.settings import Settings


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _services_parser(subparsers)
    _registry_parser(subparsers)


def _services_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("services", help="start, stop or show the local Mosquitto and influxd")
    p.add_argument("action", choices=["up", "down", "status", "rotate-password", "docker-secrets"])
    p.add_argument("--free-ports", action="store_true", help="pick free ports instead of the configured ones")
    p.add_argument("--user", help="rotate-password: the broker user (a gateway id, or collector)")
    p.add_argument("--out", type=Path, default=Path("docker/secrets"), help="docker-secrets: where to write them")
    p.set_defaults(handler=_services)


def _services(args: argparse.Namespace, settings: Settings) -> int:
    from park.registry import load_registry
    from parkcarbon.services import (
        LocalServices,
        Ports,
        ServiceError,
        free_ports,
        rotate_password,
        write_docker_secrets,
    )

    services = LocalServices(settings.run_dir)
    try:
        if args.action == "up":
            wanted = (
                free_ports()
                if args.free_ports
                else Ports(settings.mqtt.port, settings.influx.port, settings.influx.rpc_port)
            )
            ports = services.up(load_registry(settings.registry), wanted)
            print(
                f"mosquitto  mqtt://127.0.0.1:{ports.mqtt}   (users and passwords: {services.run_dir}/credentials.json)"
            )
            print(f"influxd    http://127.0.0.1:{ports.influx_http}   (database {settings.influx.database})")
            print(f"run dir    {services.run_dir}   stop with: parkcarbon services down")
        elif args.action == "rotate-password":
            if not args.user:
                print(
                    "parkcarbon services rotate-password: --user GATEWAY_ID (or collector) is required", file=sys.stderr
                )
                return 2
            rotate_password(services.run_dir, args.user)
            print(f"new password for {args.user} in {services.run_dir}/credentials.json; the broker reloaded it")
        elif args.action == "docker-secrets":
            credentials, plain = write_docker_secrets(args.out, load_registry(settings.registry))
            print(f"{credentials}\n{plain}\nput the collector's password into docker/.env as MQTT_COLLECTOR_PASSWORD")
        elif args.action == "down":
            stopped = services.down()
            print(f"stopped: {', '.join(stopped) or 'nothing was running'} ({services.run_dir})")
        else:
            status = services.status()
            if not status:
                print(f"nothing started from {services.run_dir}")
                return 1
            for name, running in status.items():
                print(f"{name:10} {'running' if running else 'STOPPED'}")
            print(f"ports      {services.ports()}")
            return 0 if all(status.values()) else 1
    except ServiceError as exc:
        print(f"parkcarbon services {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0


def _registry_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("registry", help="check the park registry (enterprises, workshops, gateways, meters)")
    p.add_argument("action", choices=["check"])
    p.add_argument("file", nargs="?", type=Path, help="default: PARKCARBON_REGISTRY")
    p.set_defaults(handler=_registry)


def _registry(args: argparse.Namespace, settings: Settings) -> int:
    from park.registry import RegistryError, load_registry

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
