"""docker/compose.yaml, alone (the LocalExecutor) and with docker/compose.celery.yaml on top (Celery
workers on Redis), validated without a Docker engine by ``docker-compose config`` (Debian's
docker-compose 1.29; there is no engine here, so no container runs), and every file it mounts checked
against the code the tests run."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards.build import write_docker_grafana
from park.settings import PROJECT_ROOT
from parkcarbon.runtime import CREDENTIAL_VARIABLES
from parkcarbon.services import COMPOSE_SECRETS

DOCKER = PROJECT_ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
CELERY = DOCKER / "compose.celery.yaml"
GUIDE = (PROJECT_ROOT / "docs" / "operations.md").read_text()
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
AIRFLOW = ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"]
# What the Celery variant adds, and what its worker gets beyond the LocalExecutor's scheduler's settings.
CELERY_SERVICES = ["redis", "airflow-worker"]
CELERY_SETTINGS = {"AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CELERY__RESULT_BACKEND"}
WORKER_ONLY = {"AIRFLOW__CELERY__WORKER_CONCURRENCY", "DUMB_INIT_SETSID"}


def compose(
    env_file: Path,
    *args: str,
    compose_file: Path = COMPOSE,
    celery: bool = False,
    shell: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """docker-compose on ``compose_file`` (and compose.celery.yaml on top if ``celery``), from a shell
    without the PARKCARBON_* variables of the test run (compose passes a shell variable into a null
    override), plus ``shell``."""
    binary = shutil.which("docker-compose")
    if binary is None:
        raise RuntimeError("docker-compose is not installed: run `make bootstrap`")
    files = [compose_file, CELERY] if celery else [compose_file]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PARKCARBON_")} | (shell or {})
    return subprocess.run(
        [binary, *(a for f in files for a in ("-f", str(f))), "--env-file", str(env_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environ,
    )


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / ".env"
    path.write_text("".join(f"{name}=test-{i:02d}\n" for i, name in enumerate(SECRETS)))
    return path


@pytest.fixture
def config(env_file: Path) -> dict[str, Any]:
    result = compose(env_file, "config")
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = yaml.safe_load(result.stdout)
    return loaded


@pytest.fixture
def celery_config(env_file: Path) -> dict[str, Any]:
    result = compose(env_file, "config", celery=True)
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = yaml.safe_load(result.stdout)
    return loaded


def secret_value(name: str) -> str:
    """The value the env_file fixture gives secret ``name``."""
    return f"test-{SECRETS.index(name):02d}"


def test_env_example_names_every_secret_and_sets_none():
    """Every secret the compose file needs is in .env.example, and none has a value there."""
    lines = [line for line in (DOCKER / ".env.example").read_text().splitlines() if "=" in line and line[0] != "#"]
    assert {line.split("=", 1)[0] for line in lines} == set(SECRETS)
    assert all(line.endswith("=") for line in lines)
    text = COMPOSE.read_text() + CELERY.read_text()
    needed = {name for name in SECRETS if f"${{{name}:?" in text}
    assert needed == set(SECRETS)
    # REDIS_PASSWORD is the Celery variant's alone: the LocalExecutor stack does not ask for it.
    assert "REDIS_PASSWORD" not in COMPOSE.read_text()


def test_missing_secret_refuses_to_start():
    """With the .env.example as it is (no values), compose refuses and names the missing secret."""
    result = compose(DOCKER / ".env.example", "config")
    assert result.returncode != 0 and "set " in result.stderr and "in docker/secrets/compose.env" in result.stderr


def test_the_celery_variant_refuses_to_start_without_the_redis_password(tmp_path):
    """Every secret but REDIS_PASSWORD: the LocalExecutor stack starts, the Celery variant names it."""
    path = tmp_path / "no-redis.env"
    path.write_text("".join(f"{name}=test-{i:02d}\n" for i, name in enumerate(SECRETS) if name != "REDIS_PASSWORD"))
    assert compose(path, "config").returncode == 0
    result = compose(path, "config", celery=True)
    assert result.returncode != 0 and "set REDIS_PASSWORD in docker/secrets/compose.env" in result.stderr


def test_a_bad_key_is_rejected(env_file, tmp_path):
    """The validation is real: a misspelt key makes docker-compose config fail."""
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("    restart: unless-stopped\n", "    restartt: unless-stopped\n", 1))
    result = compose(env_file, "config", compose_file=broken)
    assert result.returncode != 0 and "restartt" in result.stderr


@pytest.mark.parametrize("celery", [False, True], ids=["local", "celery"])
def test_every_image_is_pinned_and_every_long_running_service_has_a_healthcheck(env_file, celery):
    result = compose(env_file, "config", celery=celery)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    long_running = LONG_RUNNING + (CELERY_SERVICES if celery else [])
    assert set(long_running) <= set(services)
    assert not set(CELERY_SERVICES) & set(services) or celery
    for name, service in services.items():
        image = service.get("image", "")
        assert re.fullmatch(r"[a-z0-9/._-]+:[0-9][A-Za-z0-9._-]*", image), (name, image)  # an exact version
    for name in long_running:
        assert services[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        assert services[name]["restart"] == "unless-stopped", name


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
    "AIRFLOW_JWT_SECRET": set(AIRFLOW),
    "AIRFLOW_API_SECRET_KEY": set(AIRFLOW),
    "AIRFLOW_ADMIN_PASSWORD": {"airflow-init"},
    "PLATFORM_DB_PASSWORD": {"platform-init", "platform", "broker-sync"},  # broker-sync only reads
    "REDIS_PASSWORD": set(),  # the LocalExecutor has no broker
}
# With Celery the workers run the tasks: InfluxDB's pipeline account leaves the scheduler for them; the
# broker's password reaches Redis and the two ends of its queue only (not the API server nor the DAG
# processor); the worker needs Airflow's secrets as the other Airflow processes do, and no broker password.
WHO_SEES_CELERY = WHO_SEES | {
    "INFLUX_PIPELINE_PASSWORD": {"influxdb", "airflow-worker"},
    "POSTGRES_PASSWORD": WHO_SEES["POSTGRES_PASSWORD"] | {"airflow-worker"},  # the ledger, Celery's results
    "AIRFLOW_JWT_SECRET": {*AIRFLOW, "airflow-worker"},
    "AIRFLOW_API_SECRET_KEY": {*AIRFLOW, "airflow-worker"},  # its log server checks the API server's requests
    "REDIS_PASSWORD": {"redis", "airflow-scheduler", "airflow-worker"},
}


def who_sees(config: dict[str, Any]) -> dict[str, set[str]]:
    """For each secret, the services whose environment holds its value."""
    return {
        name: {
            service
            for service, spec in config["services"].items()
            if any(secret_value(name) in str(v) for v in (spec.get("environment") or {}).values())
        }
        for name in SECRETS
    }


def test_each_secret_reaches_only_the_services_that_need_it_with_celery(celery_config):
    """Under Celery the pipeline's InfluxDB account is the workers' (the scheduler has none of the
    credentials: test_the_scheduler_under_celery_has_no_credential), Redis's password only Redis's, the
    scheduler's and the workers'."""
    assert set(WHO_SEES_CELERY) == set(SECRETS)
    assert who_sees(celery_config) == WHO_SEES_CELERY


def test_each_secret_reaches_only_the_services_that_need_it(config):
    """Collectors get their own broker account and InfluxDB's collector account, never the PostgreSQL
    password; Airflow never a broker password; Grafana only the dashboards account; the simulator
    only the gateways' passwords (a file), no secret in its environment."""
    assert set(WHO_SEES) == set(SECRETS)
    assert who_sees(config) == WHO_SEES
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


@pytest.mark.parametrize("celery", [False, True], ids=["local", "celery"])
def test_only_mqtt_over_tls_leaves_the_host(env_file, celery):
    """The broker publishes 8883 (TLS) and not 1883; Grafana and Airflow listen on 127.0.0.1 only;
    InfluxDB and PostgreSQL publish nothing; nor, with Celery, do Redis and the workers."""
    result = compose(env_file, "config", celery=celery)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    published: dict[str, list[tuple[str, int]]] = {}
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
    for celery in (False, True):
        result = compose(written.compose_env, "config", celery=celery)
        assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", env["REDIS_PASSWORD"])  # it goes into the broker's URL as it is
    again = write_docker_secrets(tmp_path / "secrets", load_registry(DEMO_REGISTRY))
    assert again.compose_env.read_text() == written.compose_env.read_text()


def test_the_executor_is_local_by_default_and_celery_with_the_override(config, celery_config):
    """compose.yaml alone: the LocalExecutor everywhere and no broker; with compose.celery.yaml: the
    CeleryExecutor in every Airflow process, the queue in Redis db 0 behind its password, the results
    in Airflow's PostgreSQL database."""
    for name in AIRFLOW:
        environment = config["services"][name]["environment"]
        assert environment["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name
        assert not CELERY_SETTINGS & set(environment), name
        assert celery_config["services"][name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
    redis_password, postgres_password = secret_value("REDIS_PASSWORD"), secret_value("POSTGRES_PASSWORD")
    for name in ("airflow-scheduler", "airflow-worker"):
        environment = celery_config["services"][name]["environment"]
        assert environment["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert environment["AIRFLOW__CELERY__BROKER_URL"] == f"redis://:{redis_password}@redis:6379/0", name
        assert environment["AIRFLOW__CELERY__RESULT_BACKEND"] == (
            f"db+postgresql+psycopg://parkcarbon:{postgres_password}@postgres:5432/airflow"
        ), name
    for name in ("airflow-apiserver", "airflow-dag-processor"):  # they send and run no task
        assert not CELERY_SETTINGS & set(celery_config["services"][name]["environment"]), name
    assert "AIRFLOW__CORE__EXECUTOR" not in celery_config["services"]["airflow-init"]["environment"]
    assert celery_config["services"]["airflow-scheduler"]["depends_on"]["redis"] == {"condition": "service_healthy"}


def test_the_worker_scales_with_no_name_and_no_port(celery_config):
    """`--scale airflow-worker=N` needs a service without container_name, hostname or published port;
    its log server (8793) is on the stack's network only; its healthcheck is Celery's ping of its own
    node; it starts once Redis, the databases and the execution API are up."""
    worker = celery_config["services"]["airflow-worker"]
    assert not {"container_name", "hostname", "ports", "network_mode"} & set(worker)
    assert worker["expose"] == ["8793"]
    assert worker["command"] == "airflow celery worker"
    # compose's config writes $ as $$; the container's shell sees celery@$HOSTNAME, Celery's default node name.
    assert worker["healthcheck"]["test"] == [
        "CMD-SHELL",
        'celery --app airflow.providers.celery.executors.celery_executor.app inspect ping -d "celery@$${HOSTNAME}"',
    ]
    assert {name: dep["condition"] for name, dep in worker["depends_on"].items()} == {
        "airflow-init": "service_completed_successfully",
        "airflow-apiserver": "service_healthy",
        "redis": "service_healthy",
        "postgres": "service_healthy",
        "influxdb": "service_healthy",
    }
    assert worker["environment"]["DUMB_INIT_SETSID"] == "0"  # SIGTERM to Celery alone: a warm shutdown
    assert worker["stop_grace_period"] == "2m"


def test_the_worker_has_what_the_tasks_need_and_no_more(config, celery_config):
    """The worker's environment is the LocalExecutor scheduler's (which ran the tasks), value for value,
    but for the executor, Celery's settings and the worker's own two; its volumes are the same (the
    DAGs read-only, the run directory, the shared task logs)."""
    scheduler = config["services"]["airflow-scheduler"]
    worker = celery_config["services"]["airflow-worker"]
    expected = scheduler["environment"] | {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"}
    extra = {k: v for k, v in worker["environment"].items() if k in CELERY_SETTINGS | WORKER_ONLY}
    assert set(extra) == CELERY_SETTINGS | WORKER_ONLY
    assert worker["environment"] == expected | extra
    assert worker["environment"]["PARKCARBON_INFLUX__USERNAME"] == "pipeline"
    assert worker["environment"]["PARKCARBON_LEDGER__ISSUANCE"] == "reviewed"
    assert worker["environment"]["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "1"
    assert not any("MQTT" in key and "PASSWORD" in key for key in worker["environment"])
    assert sorted(worker["volumes"]) == sorted(scheduler["volumes"])
    assert sorted(worker["volumes"]) == sorted(celery_config["services"]["airflow-dag-processor"]["volumes"])
    assert any(v.startswith("airflow-logs:/opt/airflow/logs") for v in worker["volumes"])
    assert worker["image"] == scheduler["image"]


def test_the_scheduler_under_celery_has_no_credential(config, celery_config):
    """compose.yaml gives the LocalExecutor's scheduler the pipeline's credentials; the Celery override
    unsets every one (null: no variable in the container), and nothing else changes but the executor
    and Celery's settings."""
    local = config["services"]["airflow-scheduler"]["environment"]
    celery = celery_config["services"]["airflow-scheduler"]["environment"]
    assert {k for k in CREDENTIAL_VARIABLES if local.get(k)} == {
        "PARKCARBON_INFLUX__USERNAME",
        "PARKCARBON_INFLUX__PASSWORD",
        "PARKCARBON_LEDGER__URL",
    }
    assert {k: v for k, v in celery.items() if k in CREDENTIAL_VARIABLES and v is not None} == {}
    unchanged = {k: v for k, v in celery.items() if v is not None and k not in CELERY_SETTINGS}
    assert unchanged == {k: v for k, v in local.items() if k not in CREDENTIAL_VARIABLES} | {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"
    }


def guard_script(celery_config: dict[str, Any]) -> str:
    """The scheduler's command under Celery as its container's bash receives it ($$ is compose's $)."""
    argv = shlex.split(celery_config["services"]["airflow-scheduler"]["command"].replace("$$", "$"))
    assert argv[:2] == ["bash", "-c"] and len(argv) == 3
    assert argv[2].endswith("; exec airflow scheduler")
    return argv[2]


def test_the_scheduler_under_celery_refuses_a_credential_from_the_shell(env_file, celery_config, tmp_path):
    """A variable exported in the shell that runs docker-compose fills a null override: compose then hands
    it to the scheduler. Its start (run here with bash) refuses each credential, naming it, before
    Airflow starts; without one it goes on to `exec airflow scheduler`."""
    leaked = compose(env_file, "config", celery=True, shell={"PARKCARBON_LEDGER__URL": "postgresql://leak"})
    assert yaml.safe_load(leaked.stdout)["services"]["airflow-scheduler"]["environment"]["PARKCARBON_LEDGER__URL"] == (
        "postgresql://leak"
    )
    script = guard_script(celery_config)
    guarded = re.search(r"for name in ([A-Z_ ]+); do", script)
    assert guarded is not None and guarded.group(1).split() == list(CREDENTIAL_VARIABLES)
    clean = {"PATH": os.environ["PATH"]}
    for name in CREDENTIAL_VARIABLES:
        refused = subprocess.run(
            ["bash", "-c", script], env=clean | {name: "x"}, capture_output=True, text=True, timeout=30, check=False
        )
        assert refused.returncode == 1, name
        assert f"airflow-scheduler: {name} is set" in refused.stderr, name
        assert "unset it in the shell that runs docker-compose" in refused.stderr
    # An empty value is a set variable too (compose's `KEY=` in the shell).
    assert subprocess.run(
        ["bash", "-c", script], env=clean | {"PARKCARBON_INFLUX__PASSWORD": ""}, check=False
    ).returncode
    # Without any, the loop ends and Airflow's scheduler starts: the real one, on an empty AIRFLOW_HOME,
    # where it stops at once asking for `airflow db migrate`.
    started = subprocess.run(
        ["bash", "-c", script],
        env={"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "AIRFLOW_HOME": str(tmp_path / "airflow")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert started.returncode != 0 and "Please run `airflow db migrate`" in started.stdout + started.stderr
    assert " is set" not in started.stderr


def test_redis_is_pinned_private_and_keeps_nothing(celery_config):
    """An exact Alpine tag of Redis 7.2; no port outside the stack, no volume (a tmpfs for the
    configuration it writes at start), the password on no command line but in REDISCLI_AUTH; a
    healthcheck that needs PONG (Redis answers NOAUTH to a ping without the password)."""
    redis = celery_config["services"]["redis"]
    assert re.fullmatch(r"redis:7\.2\.\d+-alpine", redis["image"])
    assert not {"ports", "volumes", "container_name"} & set(redis)
    assert redis["tmpfs"] == ["/data"]
    assert redis["environment"] == {"REDISCLI_AUTH": secret_value("REDIS_PASSWORD")}
    assert secret_value("REDIS_PASSWORD") not in redis["command"]
    assert "requirepass" in redis["command"] and 'save \\"\\"' in redis["command"]
    assert "appendonly no" in redis["command"]
    assert redis["command"].endswith("exec docker-entrypoint.sh redis-server /data/redis.conf'")
    assert redis["healthcheck"]["test"] == ["CMD-SHELL", "redis-cli -h 127.0.0.1 ping | grep -q PONG"]
    # Nothing in the stack but the Celery ends talks to it.
    talks = {n for n, s in celery_config["services"].items() if "@redis:6379" in str(s.get("environment"))}
    assert talks == {"airflow-scheduler", "airflow-worker"}


def test_the_guide_starts_celery_with_these_files(env_file):
    """docs/operations.md's command names the two files and the scale; compose accepts those files."""
    command = (
        "docker-compose -f docker/compose.yaml -f docker/compose.celery.yaml --env-file docker/secrets/compose.env"
        " up -d --scale airflow-worker=2"
    )
    assert command in GUIDE, "docs/operations.md no longer says it"
    files = re.findall(r"-f (\S+)", command)
    assert [PROJECT_ROOT / f for f in files] == [COMPOSE, CELERY]
    assert compose(env_file, "config", "--services", celery=True).stdout.split().count("airflow-worker") == 1
    back = "docker-compose -f docker/compose.yaml --env-file docker/secrets/compose.env up -d --remove-orphans"
    assert back in GUIDE
