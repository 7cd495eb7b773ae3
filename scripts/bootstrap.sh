#!/usr/bin/env bash
# Installs what parkcarbon needs on a fresh Debian machine, and nothing that is already there:
#   - the Debian packages mosquitto, influxdb, postgresql, chromium, fonts-noto-cjk, redis-server and docker-compose (apt-get,
#     without recommends: docker-compose's would pull in the Docker engine; no service is started by apt),
#   - a virtualenv in .venv with the project and its dev tools.
# Idempotent: a second run takes about a second. Re-installs the venv when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v mosquitto_passwd >/dev/null 2>&1 || need_apt+=(mosquitto)
command -v influxd >/dev/null 2>&1 || need_apt+=(influxdb)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need_apt+=(postgresql)  # the ledger's tests
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)  # renders the HTML reports in the tests
# CJK glyphs for the reports as Chromium renders them (else every Chinese string is boxes); 4 s to install here
compgen -G "/usr/share/fonts/opentype/noto/NotoSansCJK*" >/dev/null || need_apt+=(fonts-noto-cjk)
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)  # validates docker/compose.yaml (no engine)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)  # Celery's broker: `parkcarbon airflow up --executor celery`
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bootstrap: installing Debian packages: ${need_apt[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "bootstrap: creating .venv with the project and its dev tools (about a minute the first time)"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e . --group dev 2>/dev/null \
    || .venv/bin/python -m pip install -q -e . pytest hypothesis ruff mypy types-PyYAML pandas-stubs playwright
  rm -f .venv/.installed-*
  touch "$stamp"
fi
