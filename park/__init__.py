"""parkcarbon shared core: settings, the park registry, units, the InfluxDB store and the wire contracts."""
