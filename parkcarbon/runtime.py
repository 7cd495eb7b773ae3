"""Settings as they apply to a run directory: the ports that ``services up`` chose and the passwords it
generated, handed to each process for the role it plays, and no more.

=============  ============================================  =====================================
role           who                                           credentials
=============  ============================================  =====================================
collector      ``parkcarbon collect``                        broker accounts collector-N; InfluxDB
                                                             ``collector`` (WRITE)
pipeline       Airflow's tasks, ``parkcarbon monthly``,      InfluxDB ``pipeline`` (ALL on the
               ``demo``, ``ledger``                          database); no broker password
dashboards     ``parkcarbon dashboards``, Grafana's          InfluxDB ``dashboards`` (READ)
               datasource
None           ``simulate``, ``score``, ``services``         none (the simulator reads the gateways'
                                                             broker passwords itself)
=============  ============================================  =====================================

A credential given in the environment (``PARKCARBON_INFLUX__USERNAME``/``PASSWORD``,
``PARKCARBON_MQTT__PASSWORD``) is kept as it is.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import SecretStr

from park.registry import is_service_account
from park.settings import Settings
from parkcarbon.services import CREDENTIALS_FILE, INFLUX_ROLES, Credentials, LocalServices

Role = Literal["collector", "pipeline", "dashboards"]


def settings_for_run_dir(settings: Settings, role: Role | None = "pipeline") -> Settings:
    """``settings`` with the ports of the services running from its run directory, if any, and the
    generated credentials of ``role`` where none are configured."""
    ports = LocalServices(settings.run_dir).ports()
    mqtt, influx = settings.mqtt, settings.influx
    if ports is not None:
        mqtt = mqtt.model_copy(update={"port": ports.mqtt})
        influx = influx.model_copy(update={"port": ports.influx_http, "rpc_port": ports.influx_rpc})
    path = settings.run_dir / CREDENTIALS_FILE
    if role is not None and path.exists():
        assert role in INFLUX_ROLES
        creds = Credentials.read(path)
        if influx.username is None and role in creds.influxdb:
            influx = influx.model_copy(update={"username": role, "password": SecretStr(creds.influxdb[role])})
        if role == "collector" and mqtt.password is None and not mqtt.passwords:
            replicas = {user: SecretStr(pw) for user, pw in creds.mqtt.items() if is_service_account(user)}
            mqtt = mqtt.model_copy(update={"passwords": replicas})
    return settings.model_copy(update={"mqtt": mqtt, "influx": influx})


def export_settings(settings: Settings) -> None:
    """Put ``settings`` into the environment (PARKCARBON_*), for Airflow tasks and child processes:
    the InfluxDB account it carries, never a broker password."""
    os.environ.update(settings_environ(settings))


def settings_environ(settings: Settings) -> dict[str, str]:
    """The PARKCARBON_* variables that carry ``settings`` to a child process (what
    :func:`export_settings` exports): the InfluxDB account it carries, never a broker password."""
    env = {
        "PARKCARBON_RUN_DIR": str(settings.run_dir),
        "PARKCARBON_REGISTRY": str(settings.registry),
        "PARKCARBON_ENTERPRISES": str(settings.enterprises),
        "PARKCARBON_FACTOR_SET": settings.factor_set,
        "PARKCARBON_MQTT__PORT": str(settings.mqtt.port),
        "PARKCARBON_INFLUX__PORT": str(settings.influx.port),
        "PARKCARBON_INFLUX__RPC_PORT": str(settings.influx.rpc_port),
        "PARKCARBON_INFLUX__DATABASE": settings.influx.database,
    }
    if settings.influx.username is not None and settings.influx.password is not None:
        env["PARKCARBON_INFLUX__USERNAME"] = settings.influx.username
        env["PARKCARBON_INFLUX__PASSWORD"] = settings.influx.password.get_secret_value()
    if settings.manual_activity is not None:
        env["PARKCARBON_MANUAL_ACTIVITY"] = str(settings.manual_activity)
    if settings.ledger.url is not None:
        env["PARKCARBON_LEDGER__URL"] = settings.ledger.url.get_secret_value()
    if settings.policy is not None:
        env["PARKCARBON_POLICY"] = str(settings.policy)
    # The monthly fan-out's group size (and the end-to-end test's pause), when not the default.
    for name, value in settings.monthly.model_dump(exclude_defaults=True).items():
        env[f"PARKCARBON_MONTHLY__{name.upper()}"] = str(value)
    return env


# Credentials a process may carry in its environment: a child process started for another role gets
# the environment without them and resolves its own from the run directory.
CREDENTIAL_VARIABLES = (
    "PARKCARBON_INFLUX__USERNAME",
    "PARKCARBON_INFLUX__PASSWORD",
    "PARKCARBON_MQTT__PASSWORD",
    "PARKCARBON_MQTT__PASSWORDS",
    "PARKCARBON_LEDGER__URL",
)


def environ_without_credentials() -> dict[str, str]:
    """``os.environ`` without the credentials of this process's role, for a child of another role."""
    return {key: value for key, value in os.environ.items() if key.upper() not in CREDENTIAL_VARIABLES}
