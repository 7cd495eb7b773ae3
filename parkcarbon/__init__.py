"""The top layer: the ``parkcarbon`` command, local services, the run's settings and credentials,
Airflow set-up and the demo. It wires the packages below it; nothing below imports it."""
