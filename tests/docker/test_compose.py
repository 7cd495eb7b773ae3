"""docker/compose.yaml validated without a Docker engine by ``docker-compose config`` (Debian's
docker-compose 1.29), and every file it mounts checked against the code the tests run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from dashboards.build import write_docker_grafana
from park.settings import PROJECT_ROOT
from parkcarbon.services import COMPOSE_SECRETS

DOCKER = PROJECT_ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
SECRETS = COMPOSE_SECRETS
LONG_RUNNING = [
    "mosquitto",
    "influxdb",
    "postgres",
    "grafana",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "collector-0",
    "collector-1",
    "platform",
]


def compose(env_file: Path, *args: str, compose_file: Path = COMPOSE) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        raise RuntimeError("docker-compose is not installed: run `make bootstrap`")
    return subprocess.run(
        [binary, "-f", str(compose_file), "--env-file", str(env_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def env_file(tmp_path) -> Path:
    path = tmp_path / ".env"
    path.write_text("".join(f"{name}=test-{i:02d}\n" for i, name in enumerate(SECRETS)))
    return path


@pytest.fixture
def config(env_file) -> dict:
    result = compose(env_file, "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_env_example_names_every_secret_and_sets_none():
    """Every secret the compose file needs is in .env.example, and none has a value there."""
    lines = [line for line in (DOCKER / ".env.example").read_text().splitlines() if "=" in line and line[0] != "#"]
    assert {line.split("=", 1)[0] for line in lines} == set(SECRETS)
    assert all(line.endswith("=") for line in lines)
    needed = {name for name in SECRETS if f"${{{name}:?" in COMPOSE.read_text()}
    assert needed == set(SECRETS)


def test_missing_secret_refuses_to_start():
    """With the .env.example as it is (no values), compose refuses and names the missing secret."""
    result = compose(DOCKER / ".env.example", "config")
    assert result.returncode != 0 and "set " in result.stderr and "in docker/secrets/compose.env" in result.stderr


def test_a_bad_key_is_rejected(env_file, tmp_path):
    """The validation is real: a misspelt key makes docker-compose config fail."""
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("    restart: unless-stopped\n", "    restartt: unless-stopped\n", 1))
    result = compose(env_file, "config", compose_file=broken)
    assert result.returncode != 0 and "restartt" in result.stderr


def test_services_are_pinned_healthy_and_persistent(config):
    services = config["services"]
    assert set(LONG_RUNNING) <= set(services)
    for name, service in services.items():
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), name
    for name in LONG_RUNNING:
        assert "healthcheck" in services[name], name
    assert set(config["volumes"]) >= {"mosquitto-data", "influxdb-data", "postgres-data", "grafana-data"}
    assert services["simulator"]["profiles"] == ["simulator"]
    for replica in ("collector-0", "collector-1"):
        assert services[replica]["environment"]["PARKCARBON_COLLECTOR__SHARE_GROUP"] == "collectors"
    assert services["collector-0"]["command"].endswith("--first-replica 0")
    assert services["collector-1"]["command"].endswith("--first-replica 1")
    airflow = services["airflow-scheduler"]
    assert airflow["volumes"][0].endswith(":/opt/airflow/dags:ro") and airflow["volumes"][0].startswith(
        str(PROJECT_ROOT / "dags")
    )
    assert airflow["environment"]["PARKCARBON_LEDGER__URL"].startswith("postgresql+psycopg://")


def test_every_mounted_file_exists_and_is_the_tested_one(config, tmp_path):
    """Bind mounts point at files in the repository; Grafana's are what `dashboards build --docker` writes."""
    mounted = []
    for name, service in config["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("/"):
                mounted.append((name, Path(source)))
    for name, source in mounted:
        if "secrets" in source.parts or "certs" in source.parts:
            continue  # written by `parkcarbon services docker-secrets` / `tls-certs` on the host, never committed
        assert source.exists(), (name, source)
    fresh = tmp_path / "grafana"
    write_docker_grafana(fresh)
    for path in fresh.rglob("*"):
        if path.is_file():
            committed = DOCKER / "grafana" / path.relative_to(fresh)
            assert committed.read_text() == path.read_text(), (
                f"{committed} is stale: parkcarbon dashboards build --docker"
            )
    # Mosquitto's files are checked against the local stack's code in tests/park/test_services.py.
    assert (DOCKER / "mosquitto" / "mosquitto.conf").exists() and (DOCKER / "mosquitto" / "acl").exists()


def test_the_image_copies_every_package():
    """The image installs the project: every package that pyproject.toml ships is copied into it."""
    import tomllib

    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    dockerfile = (PROJECT_ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")
    assert {p for p in packages if f"COPY --chown=airflow:root {p} /opt/parkcarbon/{p}" not in dockerfile} == set()


# Which services may see each secret: least privilege, each role its own account.
WHO_SEES = {
    "MQTT_COLLECTOR_0_PASSWORD": {"collector-0"},
    "MQTT_COLLECTOR_1_PASSWORD": {"collector-1"},
    "INFLUX_ADMIN_PASSWORD": {"influxdb"},
    "INFLUX_COLLECTOR_PASSWORD": {"influxdb", "collector-0", "collector-1"},
    "INFLUX_PIPELINE_PASSWORD": {"influxdb", "airflow-scheduler"},
    "INFLUX_DASHBOARDS_PASSWORD": {"influxdb", "grafana", "platform"},
    "POSTGRES_PASSWORD": {
        "postgres",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "platform-init",
    },
    "GRAFANA_ADMIN_PASSWORD": {"grafana"},
    "AIRFLOW_JWT_SECRET": {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"},
    "AIRFLOW_ADMIN_PASSWORD": {"airflow-init"},
    "PLATFORM_DB_PASSWORD": {"platform-init", "platform", "broker-sync"},  # broker-sync only reads
}


def test_each_secret_reaches_only_the_services_that_need_it(config):
    """Collectors get their own broker account and InfluxDB's collector account, never the PostgreSQL
    password; Airflow never a broker password; Grafana only the dashboards account; the simulator
    only the gateways' passwords (a file), no secret in its environment."""
    assert set(WHO_SEES) == set(SECRETS)
    for index, name in enumerate(SECRETS):
        value = f"test-{index:02d}"
        seen = {
            service
            for service, spec in config["services"].items()
            if any(value in str(v) for v in (spec.get("environment") or {}).values())
        }
        assert seen == WHO_SEES[name], name
    users = {n: (s.get("environment") or {}).get("PARKCARBON_INFLUX__USERNAME") for n, s in config["services"].items()}
    assert users["collector-0"] == users["collector-1"] == "collector"
    assert users["airflow-scheduler"] == "pipeline"
    assert config["services"]["grafana"]["environment"]["INFLUX_USER"] == "dashboards"
    assert users["platform"] == "dashboards"  # the platform only reads InfluxDB
    platform = config["services"]["platform"]["environment"]
    assert platform["PARKCARBON_LEDGER__URL"].startswith("postgresql+psycopg://platform:")  # not the owner
    assert platform["PARKCARBON_PLATFORM_COOKIE_SECURE"] == "always"
    assert config["services"]["platform-init"]["command"].startswith("parkcarbon platform grant-role --role platform")
    influx = config["services"]["influxdb"]["environment"]
    assert (influx["INFLUXDB_USER"], influx["INFLUXDB_WRITE_USER"], influx["INFLUXDB_READ_USER"]) == (
        "pipeline",
        "collector",
        "dashboards",
    )
    assert influx["INFLUXDB_HTTP_AUTH_ENABLED"] == "true" and influx["INFLUXDB_HTTP_PPROF_ENABLED"] == "false"
    assert influx["INFLUXDB_BIND_ADDRESS"] == "127.0.0.1:8088"


def test_only_mqtt_over_tls_leaves_the_host(config):
    """The broker publishes 8883 (TLS) and not 1883; Grafana and Airflow listen on 127.0.0.1 only;
    InfluxDB and PostgreSQL publish nothing."""
    published = {}
    for name, spec in config["services"].items():
        for port in spec.get("ports", []):
            if isinstance(port, dict):
                published.setdefault(name, []).append((port.get("host_ip", "0.0.0.0"), port["published"]))
            else:
                host, _, rest = str(port).rpartition(":")[0].rpartition(":")
                published.setdefault(name, []).append((host or "0.0.0.0", int(rest)))
    assert published == {
        "mosquitto": [("0.0.0.0", 8883)],
        "grafana": [("127.0.0.1", 3000)],
        "airflow-apiserver": [("127.0.0.1", 8080)],
        "platform": [("127.0.0.1", 8000)],
    }
    conf = (DOCKER / "mosquitto" / "mosquitto.conf").read_text()
    assert "listener 8883\n" in conf and "certfile /mosquitto/certs/server.crt" in conf
    mounts = [v.split(":")[1] for v in config["services"]["mosquitto"]["volumes"] if isinstance(v, str)]
    assert {"/run/certs-in/server.crt", "/run/certs-in/server.key", "/run/certs-in/ca.crt"} <= set(mounts)


def test_docker_secrets_fill_every_compose_secret(tmp_path):
    """`parkcarbon services docker-secrets` writes a compose.env with every secret compose needs, all
    private; compose accepts it; a second run keeps every value."""
    from park.registry import load_registry
    from park.settings import DEMO_REGISTRY
    from parkcarbon.services import write_docker_secrets

    written = write_docker_secrets(tmp_path / "secrets", load_registry(DEMO_REGISTRY))
    assert (tmp_path / "secrets").stat().st_mode & 0o777 == 0o700
    for path in (written.credentials, written.mosquitto_passwd, written.gateways, written.compose_env):
        assert path.stat().st_mode & 0o777 == 0o600, path
    env = dict(line.split("=", 1) for line in written.compose_env.read_text().splitlines() if "=" in line)
    assert set(env) == set(SECRETS) and all(env.values())
    result = compose(written.compose_env, "config")
    assert result.returncode == 0, result.stderr
    again = write_docker_secrets(tmp_path / "secrets", load_registry(DEMO_REGISTRY))
    assert again.compose_env.read_text() == written.compose_env.read_text()
