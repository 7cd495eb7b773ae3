"""Settings as they apply to a run directory: the ports and passwords that ``services up`` chose."""

from __future__ import annotations

from pydantic import SecretStr

from park.services import COLLECTOR_USER, LocalServices, load_credentials
from park.settings import Settings


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
