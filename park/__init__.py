"""parkcarbon shared core: settings, the park registry, units and the InfluxDB store."""

PARK_TIMEZONE = "Asia/Shanghai"
