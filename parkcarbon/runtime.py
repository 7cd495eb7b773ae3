"""Settings as they apply to a run directory: the ports and passwords that ``services up`` chose."""

from __future__ import annotations

import os

from pydantic import SecretStr

from park.settings import Settings
from park.topics import COLLECTOR_USER
from parkcarbon.services import LocalServices, load_credentials


def settings_for_run_dir(settings: Settings) -> Settings:
    """``settings`` with the ports of the services running from its run directory, if any, and the
    collector's generated password when none is configured."""
    services = LocalServices(settings.run_dir)
    ports = services.ports()
    if ports is None:
        return settings
    mqtt = settings.mqtt.model_copy(update={"port": ports.mqtt})
    if mqtt.password is None and mqtt.username == COLLECTOR_USER:
        mqtt = mqtt.model_copy(update={"password": SecretStr(load_credentials(settings.run_dir)[COLLECTOR_USER])})
    influx = settings.influx.model_copy(update={"port": ports.influx_http, "rpc_port": ports.influx_rpc})
    return settings.model_copy(update={"mqtt": mqtt, "influx": influx})


def export_settings(settings: Settings) -> None:
    """Put ``settings`` into the environment (PARKCARBON_*), for Airflow tasks and child processes."""
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
    if settings.manual_activity is not None:
        env["PARKCARBON_MANUAL_ACTIVITY"] = str(settings.manual_activity)
    if settings.ledger.url is not None:
        env["PARKCARBON_LEDGER__URL"] = settings.ledger.url.get_secret_value()
    if settings.policy is not None:
        env["PARKCARBON_POLICY"] = str(settings.policy)
    os.environ.update(env)
