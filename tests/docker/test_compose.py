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

DOCKER = PROJECT_ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
SECRETS = [
    "MQTT_COLLECTOR_PASSWORD",
    "INFLUX_ADMIN_PASSWORD",
    "INFLUX_PASSWORD",
    "POSTGRES_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_ADMIN_PASSWORD",
]
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
    path.write_text("".join(f"{name}=test-{i}\n" for i, name in enumerate(SECRETS)))
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
    assert result.returncode != 0 and "set " in result.stderr and "in docker/.env" in result.stderr


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
        if "secrets" in source.parts:
            continue  # written by `parkcarbon services docker-secrets` on the host, never committed
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
