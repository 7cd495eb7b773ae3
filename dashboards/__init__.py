"""Grafana dashboards as code (grafana-foundation-sdk, InfluxQL on the InfluxDB datasource), their
provisioning files, and the push to an existing Grafana."""
