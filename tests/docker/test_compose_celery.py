"""docker/compose.celery.yaml's Redis and Celery worker, run on this machine as the compose file writes
them (there is no Docker engine here: Debian's redis-server 7.0 stands in for the redis:7.2 image, the
project's own Airflow for the parkcarbon image, the session's PostgreSQL for the postgres service,
127.0.0.1 and free ports for the stack's network).

Redis starts from the service's own command (the configuration written from REDISCLI_AUTH into /data,
here a temporary directory) and the healthcheck runs as written; a Celery worker started as
``airflow celery worker`` with the worker service's Celery settings (its result backend in PostgreSQL)
answers the worker's healthcheck, and its log server hands a task's log to a request signed with the
stack's AIRFLOW_API_SECRET_KEY (what the API server does) and refuses one signed with another key.
About 20 s.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis as redis_client
import yaml

from parkcarbon.processes import wait_for_port
from parkcarbon.services import free_port
from tests.docker.test_compose import SECRETS, compose
from tests.postgres import PostgresServer

# Debian's redis-server (as `parkcarbon airflow up --executor celery` uses it) and PostgreSQL.
pytestmark = [pytest.mark.services, pytest.mark.postgres]

BIN = Path(sys.executable).parent  # airflow and celery, as on the image's PATH
HOSTNAME = socket.gethostname()  # a container's hostname: its short id, which Docker's DNS resolves
REDIS_PASSWORD = "redis-Pass_word-0123456789abcdef"  # what `docker-secrets` writes: token_urlsafe(24)


@dataclass(frozen=True)
class Stack:
    config: dict[str, Any]
    redis_port: int
    redis_conf: Path
    redis_pid: int
    broker_url: str  # the worker's AIRFLOW__CELERY__BROKER_URL with redis:6379 made 127.0.0.1:PORT


def _start(argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group, SIGKILL after 30 s (the worker's warm shutdown has no task to wait for)."""
    for sig, wait_s in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(wait_s)
            break
        except subprocess.TimeoutExpired:
            continue


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, f"the compose file's command no longer has {old!r}"
    return text.replace(old, new)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("celery")
    env_file = tmp / "compose.env"
    env_file.write_text(
        "".join(
            f"{name}={REDIS_PASSWORD if name == 'REDIS_PASSWORD' else f'test-{i:02d}'}\n"
            for i, name in enumerate(SECRETS)
        )
    )
    result = compose(env_file, "config", celery=True)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    redis = config["services"]["redis"]
    argv = shlex.split(redis["command"].replace("$$", "$"))  # compose's config writes $ as $$
    assert argv[:2] == ["sh", "-c"] and len(argv) == 3
    port, data = free_port(), tmp / "data"
    data.mkdir()
    script = _replace(argv[2], "/data", str(data))
    script = _replace(script, "port 6379", f"port {port}")
    script = _replace(script, "bind 0.0.0.0", "bind 127.0.0.1")
    script = _replace(script, "exec docker-entrypoint.sh redis-server", "exec redis-server")
    process = _start(
        ["sh", "-c", script], {"PATH": os.environ["PATH"], **redis["environment"]}, tmp / "redis.log", data
    )
    try:
        assert wait_for_port(port, 30.0), (tmp / "redis.log").read_text()
        broker = config["services"]["airflow-worker"]["environment"]["AIRFLOW__CELERY__BROKER_URL"]
        yield Stack(
            config, port, data / "redis.conf", process.pid, _replace(broker, "@redis:6379/", f"@127.0.0.1:{port}/")
        )
    finally:
        _stop(process)


def healthcheck(stack: Stack, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Redis's healthcheck as the container runs it, pointed at this port."""
    test = stack.config["services"]["redis"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    command = _replace(test[1], "redis-cli -h 127.0.0.1", f"redis-cli -h 127.0.0.1 -p {stack.redis_port}")
    return subprocess.run(
        ["sh", "-c", command],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_redis_starts_from_its_command_with_the_password_in_a_private_file_only(stack: Stack):
    """The configuration is 0600 and holds the password; the server's command line does not; nothing is
    saved; the healthcheck passes with REDISCLI_AUTH only, and the broker's URL logs in."""
    assert stack.redis_conf.stat().st_mode & 0o777 == 0o600
    assert f'requirepass "{REDIS_PASSWORD}"' in stack.redis_conf.read_text().splitlines()
    cmdline = Path(f"/proc/{stack.redis_pid}/cmdline").read_bytes().decode()
    assert "redis-server" in cmdline and REDIS_PASSWORD not in cmdline  # exec'd: the shell's PID is the server's
    assert healthcheck(stack, {"REDISCLI_AUTH": REDIS_PASSWORD}).returncode == 0
    assert healthcheck(stack, {}).returncode != 0  # NOAUTH, exit status 0 from redis-cli: the grep fails
    assert healthcheck(stack, {"REDISCLI_AUTH": "wrong"}).returncode != 0
    with redis_client.Redis.from_url(stack.broker_url) as client:
        assert client.ping()
        assert client.config_get("save") == {"save": ""} and client.config_get("appendonly") == {"appendonly": "no"}
    with pytest.raises(redis_client.AuthenticationError), redis_client.Redis(port=stack.redis_port) as anonymous:
        anonymous.set("k", "v")


def test_a_worker_answers_its_healthcheck_and_serves_logs_to_the_api_servers_key(
    stack: Stack, postgres: PostgresServer, tmp_path: Path
):
    """`airflow celery worker` with the worker service's Celery settings (Redis and the result backend
    in a database of the session's PostgreSQL, reached as the compose file names it): the healthcheck's ping of
    celery@$HOSTNAME succeeds (and fails for another node name); its log server on the log port returns
    a task's log to a request signed with AIRFLOW__API__SECRET_KEY, and 403 to another key."""
    service = stack.config["services"]["airflow-worker"]
    compose_env = service["environment"]
    home, log_port = tmp_path / "airflow", free_port()
    env = {
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "HOSTNAME": HOSTNAME,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),  # 8793 in the container
        **{k: v for k, v in compose_env.items() if k.startswith(("AIRFLOW__CELERY__", "AIRFLOW__CORE__EXECUTOR"))},
        "AIRFLOW__CELERY__BROKER_URL": stack.broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": _replace(
            compose_env["AIRFLOW__CELERY__RESULT_BACKEND"],
            f"parkcarbon:{compose_env['AIRFLOW__CELERY__RESULT_BACKEND'].split(':')[2].split('@')[0]}@postgres:5432/airflow",
            postgres.create_database("celery_results").removeprefix("postgresql+psycopg://"),
        ),
        "AIRFLOW__API__SECRET_KEY": compose_env["AIRFLOW__API__SECRET_KEY"],
    }
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor" and env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "1"
    argv = shlex.split(service["command"])
    assert argv[:3] == ["airflow", "celery", "worker"]
    log = tmp_path / "worker.log"
    worker = _start([str(BIN / "airflow"), *argv[1:]], env, log, tmp_path)
    try:
        deadline = time.monotonic() + 120
        while f"celery@{HOSTNAME} ready." not in log.read_text(errors="replace"):
            assert worker.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.5)
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD-SHELL"
        command = test[1].replace("$$", "$")

        def ping(hostname: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["sh", "-c", command],
                env=env | {"HOSTNAME": hostname},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        answered = ping(HOSTNAME)
        assert answered.returncode == 0, answered.stdout + answered.stderr
        assert f"celery@{HOSTNAME}: OK" in answered.stdout and "pong" in answered.stdout
        assert ping("gone-worker").returncode != 0

        relative = "dag_id=carbon_monthly/run_id=manual/task_id=activity/map_index=0/attempt=1.log"
        (home / "logs" / relative).parent.mkdir(parents=True)
        (home / "logs" / relative).write_text("activity of group 0\n")
        assert wait_for_port(log_port, 30.0), log.read_text()[-2000:]
        fetch = (
            "import os, sys\n"
            "from airflow.configuration import conf\n"
            "from airflow.utils.log.file_task_handler import _fetch_logs_from_service\n"
            "url, path = sys.argv[1:]\n"
            "right = _fetch_logs_from_service(url, path)\n"
            "os.environ.pop('AIRFLOW__API__SECRET_KEY')\n"  # the variable wins over conf.set
            "conf.set('api', 'secret_key', 'another-key')\n"
            "wrong = _fetch_logs_from_service(url, path)\n"
            "print(right.status_code, wrong.status_code, repr(right.text))\n"
        )
        url = f"http://{HOSTNAME}:{log_port}/log/{relative}"
        api_server = {k: v for k, v in env.items() if k != "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"}
        api_server["AIRFLOW_HOME"] = str(tmp_path / "api-server")
        fetched = subprocess.run(
            [sys.executable, "-c", fetch, url, relative],
            env=api_server,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert fetched.returncode == 0, fetched.stderr[-2000:]
        assert fetched.stdout.splitlines()[-1] == "200 403 'activity of group 0\\n'"
    finally:
        _stop(worker)
