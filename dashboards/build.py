"""Every dashboard as Grafana JSON, and the provisioning files that load them into a Grafana.

``parkcarbon dashboards build --out DIR`` writes::

    DIR/dashboards/<uid>.json                  one file per dashboard
    DIR/provisioning/datasources/parkcarbon.yaml   the InfluxDB datasource (InfluxQL, uid parkcarbon-influxdb)
    DIR/provisioning/dashboards/parkcarbon.yaml    a file provider reading DIR/dashboards

docker/grafana/ holds the same files, written by this module (a test checks they match).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards import enterprise, near_zero, park_overview, quality
from dashboards.common import DATASOURCE_UID
from park.registry import park_timezone
from park.settings import DEMO_REGISTRY

# Each builder takes the park's time zone (the registry's), for the dashboard and its tz() clauses.
BUILDERS: dict[str, Callable[[str], dashboard.Dashboard]] = {
    park_overview.UID: park_overview.build,
    enterprise.UID: enterprise.build,
    near_zero.UID: near_zero.build,
    quality.UID: quality.build,
}
FOLDER = "parkcarbon"


def dashboard_json(uid: str, timezone: str) -> dict[str, Any]:
    """The dashboard ``uid`` as Grafana's dashboard JSON model, in the park's ``timezone``."""
    model: dict[str, Any] = json.loads(json.dumps(BUILDERS[uid](timezone).build(), cls=JSONEncoder))
    for number, panel in enumerate(model.get("panels", []), start=1):
        panel["id"] = number  # stable ids: links to a panel survive a rebuild
    return model


def all_dashboards(timezone: str) -> dict[str, dict[str, Any]]:
    return {uid: dashboard_json(uid, timezone) for uid in BUILDERS}


def datasource_yaml(influx_url: str, database: str, user_env: str = "", password_env: str = "") -> str:
    """Grafana datasource provisioning for the InfluxDB 1.x API (InfluxQL)."""
    lines = [
        "# Written by `parkcarbon dashboards build`: the InfluxDB datasource every dashboard queries.",
        "apiVersion: 1",
        "datasources:",
        "  - name: parkcarbon InfluxDB",
        "    type: influxdb",
        f"    uid: {DATASOURCE_UID}",
        "    access: proxy",
        f"    url: {influx_url}",
        "    isDefault: true",
        "    jsonData:",
        f"      dbName: {database}",
        "      httpMode: GET",
        "      timeInterval: 15m",
    ]
    if user_env:
        lines += [f"    user: ${{{user_env}}}", "    secureJsonData:", f"      password: ${{{password_env}}}"]
    return "\n".join(lines) + "\n"


def provider_yaml(dashboards_path: str) -> str:
    """Grafana dashboard provider reading the JSON files from ``dashboards_path``."""
    return (
        "\n".join(
            [
                "# Written by `parkcarbon dashboards build`: load parkcarbon's dashboards from files.",
                "apiVersion: 1",
                "providers:",
                "  - name: parkcarbon",
                f"    folder: {FOLDER}",
                "    type: file",
                "    disableDeletion: true",
                "    allowUiUpdates: false",
                "    updateIntervalSeconds: 60",
                "    options:",
                f"      path: {dashboards_path}",
            ]
        )
        + "\n"
    )


def write_dashboards(
    out: Path,
    influx_url: str,
    database: str,
    timezone: str,
    dashboards_path: str | None = None,
    credentials_env: tuple[str, str] | None = None,
) -> list[Path]:
    """Write every dashboard, in the park's ``timezone``, and the provisioning files under ``out``;
    return the paths written.

    ``credentials_env`` names the environment variables (user, password) Grafana takes the
    datasource's InfluxDB account from, so no secret is written into the files.
    """
    written = []
    boards = out / "dashboards"
    boards.mkdir(parents=True, exist_ok=True)
    for uid, model in all_dashboards(timezone).items():
        path = boards / f"{uid}.json"
        path.write_text(json.dumps(model, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    for kind, text in (
        ("datasources", datasource_yaml(influx_url, database, *(credentials_env or ("", "")))),
        ("dashboards", provider_yaml(dashboards_path or str(boards.resolve()))),
    ):
        path = out / "provisioning" / kind / "parkcarbon.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


DOCKER_GRAFANA = Path(__file__).resolve().parent.parent / "docker" / "grafana"


def write_docker_grafana(out: Path = DOCKER_GRAFANA, timezone: str | None = None) -> list[Path]:
    """docker/grafana/: what the compose file mounts into Grafana (a test checks it is current); in
    the demo registry's time zone, the registry the compose stack runs with, unless ``timezone``."""
    return write_dashboards(
        out,
        "http://influxdb:8086",
        "carbon",
        timezone or park_timezone(DEMO_REGISTRY),
        "/var/lib/grafana/dashboards",
        ("INFLUX_USER", "INFLUX_PASSWORD"),
    )
