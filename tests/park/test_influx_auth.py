"""InfluxDB with authentication and one account per role, least privilege (the local stack as
``parkcarbon services up`` configures it; docker/compose.yaml creates the same accounts).

Before: the local influxd had no authentication: anyone on the host could SELECT, write, DROP DATABASE
and CREATE USER … WITH ALL PRIVILEGES without credentials, and /debug/pprof answered.
"""

from __future__ import annotations

import socket

import httpx
import pytest

from park.measurements import ACTIVITY_MONTHLY
from park.store import InfluxError, InfluxStore
from parkcarbon.runtime import settings_for_run_dir
from parkcarbon.services import INFLUX_ROLES, influxdb_conf, load_influx_credentials

pytestmark = pytest.mark.services

POINT = "activity_monthly,enterprise=E01 quantity=1 1700000000000000000"


def _as(settings, role: str | None) -> InfluxStore:
    """An InfluxDB client with ``role``'s account from the run directory (None: anonymous)."""
    influx = settings.influx.model_copy(update={"username": None, "password": None})
    if role is not None:
        influx = settings_for_run_dir(settings.model_copy(update={"influx": influx}), role).influx
    return InfluxStore(influx)


def _status(store: InfluxStore, method: str, path: str, **kwargs) -> int:
    try:
        store._request(method, path, **kwargs)
    except InfluxError as exc:
        return exc.status
    return 200


def test_anonymous_requests_are_refused(settings, store):
    """No credentials: /query and /write answer 401, also for DROP DATABASE and CREATE USER; pprof is off."""
    db = settings.influx.database
    with _as(settings, None) as anonymous:
        assert _status(anonymous, "GET", "/query", params={"q": "SHOW DATABASES"}) == 401
        assert _status(anonymous, "GET", "/query", params={"q": "SELECT * FROM activity_monthly", "db": db}) == 401
        assert _status(anonymous, "POST", "/write", params={"db": db}, content=POINT) == 401
        assert _status(anonymous, "POST", "/query", data={"q": f'DROP DATABASE "{db}"'}) == 401
        create_admin = "CREATE USER x WITH PASSWORD 'x' WITH ALL PRIVILEGES"
        assert _status(anonymous, "POST", "/query", data={"q": create_admin}) == 401
        assert anonymous.ping()  # /ping stays open for health checks
    assert httpx.get(f"{settings.influx.url}/debug/pprof/", timeout=5).status_code == 404


def test_each_role_can_do_its_job_and_no_more(settings, store):
    """collector: write, but neither read nor DROP; dashboards: read, but neither write nor delete;
    pipeline: read, write and replace a period's points, but neither DROP DATABASE nor manage users."""
    db = settings.influx.database
    with _as(settings, "collector") as collector:
        collector.write_lines(POINT)
        collector.create_database()  # finds the database the admin created, and leaves it
        assert _status(collector, "GET", "/query", params={"q": "SELECT * FROM activity_monthly", "db": db}) == 403
        assert _status(collector, "POST", "/query", data={"q": f'DROP DATABASE "{db}"', "db": db}) == 403
        assert _status(collector, "POST", "/query", data={"q": "DROP MEASUREMENT activity_monthly", "db": db}) == 403
        assert _status(collector, "POST", "/query", data={"q": "CREATE USER x WITH PASSWORD 'x'"}) == 403
    with _as(settings, "dashboards") as dashboards:
        assert dashboards.query('SELECT "quantity" FROM "activity_monthly"')["quantity"].tolist() == [1.0]
        assert _status(dashboards, "POST", "/write", params={"db": db}, content=POINT) == 403
        assert _status(dashboards, "POST", "/query", data={"q": "DELETE FROM activity_monthly", "db": db}) == 403
    with _as(settings, "pipeline") as pipeline:
        at = 1_700_000_000 * 10**9
        replaced = ACTIVITY_MONTHLY.point({"enterprise": "E01"}, {"quantity": 2.0}, at)
        pipeline.replace_at(ACTIVITY_MONTHLY, at, [replaced])
        assert pipeline.query('SELECT "quantity" FROM "activity_monthly"')["quantity"].tolist() == [2.0]
        assert _status(pipeline, "POST", "/query", data={"q": f'DROP DATABASE "{db}"', "db": db}) == 403
        assert _status(pipeline, "POST", "/query", data={"q": "CREATE USER x WITH PASSWORD 'x'"}) == 403
        missing = pipeline.settings.model_copy(update={"database": f"{db}_missing"})
    with InfluxStore(missing) as elsewhere, pytest.raises(InfluxError, match="only an admin may create it"):
        elsewhere.create_database()


def test_accounts_and_grants_are_as_documented(settings, local_services):
    """The admin is the only admin; each role holds exactly its privilege on the database."""
    passwords = load_influx_credentials(settings.run_dir)
    assert set(passwords) == {"admin", *INFLUX_ROLES}
    with local_services.admin_store(settings.influx.database) as admin:
        users = {row[0]: row[1] for row in admin.query("SHOW USERS")[["user", "admin"]].itertuples(index=False)}
        assert users["admin"] is True and not any(users[role] for role in INFLUX_ROLES)
        for role, privilege in INFLUX_ROLES.items():
            grants = admin.query(f'SHOW GRANTS FOR "{role}"')
            mine = dict(zip(grants["database"], grants["privilege"], strict=True))
            expected = {"ALL": "ALL PRIVILEGES", "READ": "READ", "WRITE": "WRITE"}[privilege]
            assert mine[settings.influx.database] == expected, role


def test_backup_port_and_pprof_are_local_only(tmp_path, ports):
    """The RPC port (backup, restore; no authentication of its own) listens on 127.0.0.1 only."""
    conf = influxdb_conf(tmp_path, 1, 2)
    assert 'bind-address = "127.0.0.1:2"' in conf and "auth-enabled = true" in conf and "pprof-enabled = false" in conf
    for address in _other_addresses():
        with socket.socket() as sock:
            sock.settimeout(1)
            assert sock.connect_ex((address, ports.influx_rpc)) != 0, address
            assert sock.connect_ex((address, ports.influx_http)) != 0, address


def _other_addresses() -> list[str]:
    """This host's IPv4 addresses other than loopback (none in some sandboxes)."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except socket.gaierror:
        return []
    return sorted({str(info[4][0]) for info in infos if not str(info[4][0]).startswith("127.")})
