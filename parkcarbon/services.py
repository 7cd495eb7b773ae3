"""Local Mosquitto and influxd under one run directory: ``parkcarbon services up|down|status``.

Layout of a run directory (0700; every file holding a secret 0600 from its first byte)::

    RUN/services.json          what ``up`` started: PIDs, command lines, ports (``down`` reads it)
    RUN/credentials.json       generated passwords: broker accounts (the collector replicas
                               collector-N and each gateway) and InfluxDB accounts (admin, and one
                               per role: collector, pipeline, dashboards)
    RUN/mosquitto/             mosquitto.conf, passwd (hashed), acl, persistence, mosquitto.log
    RUN/influxdb/              influxdb.conf (authentication on), meta/, data/, wal/, influxd.log

Several run directories can be up side by side on different ports. ``down`` stops exactly the
processes that ``up`` recorded, after checking that each PID still runs the command it started.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from pydantic import SecretStr

from park.mqtt_passwords import mosquitto_password_hash
from park.registry import Registry
from park.settings import InfluxSettings
from park.store import InfluxError, InfluxStore, quote_ident, quote_literal
from park.topics import COLLECTOR_USER, acl, collector_user
from parkcarbon.processes import port_in_use, reap, spawn, wait_for_port

STATE_FILE = "services.json"
CREDENTIALS_FILE = "credentials.json"

# InfluxDB accounts: one admin (creates databases and users; only `services up` and tests' set-up use
# it) and one per role, each with the least privilege on the database that its job needs.
INFLUX_ADMIN = "admin"
INFLUX_ROLES: dict[str, str] = {
    "collector": "WRITE",  # writes readings, quarantine, status and its statistics; reads nothing
    "pipeline": "ALL",  # the Airflow tasks and `parkcarbon monthly`: reads registers, writes results
    "dashboards": "READ",  # Grafana's datasource
}

# -- broker limits (measured on Mosquitto 2.0.11 here; README "Broker limits") ----------------------------
# The collector quarantines payloads over 1,000,000 bytes (collectors/decode.py); the broker refuses
# anything past 1 MiB + 64 KiB with an MQTT 5 PUBACK "packet too large" and forwards nothing.
MESSAGE_SIZE_LIMIT = 1024 * 1024 + 64 * 1024
# A packet past 2 MiB is not even read: the broker disconnects the client at its fixed header, so no
# client can make the broker allocate more than this for one message.
MAX_PACKET_SIZE = 2 * 1024 * 1024
# What the broker holds for one absent or slow collector replica. Past either limit Mosquitto drops
# further messages for that replica silently (it logs "Outgoing messages are being dropped for client").
MAX_QUEUED_BYTES = 512 * 1024 * 1024
MAX_QUEUED_MESSAGES = 2_000_000
# Persistence: save the in-memory database (with fsync) every AUTOSAVE_S seconds, so a kill -9 loses
# at most what the broker acknowledged (PUBACK) or was subscribed in the last AUTOSAVE_S seconds (plus
# the time one save takes). Saving on every change (AUTOSAVE_CHANGES = 1) lost nothing but rewrote the
# whole database per message: a backlog's backfill ran at 690 readings/s instead of 145,000
# (bench/broker.py, README "Broker limits"). AUTOSAVE_CHANGES N saves after every N changes instead.
AUTOSAVE_S = 1
AUTOSAVE_CHANGES: int | None = None


class ServiceError(RuntimeError):
    """A service could not be started, reached or stopped."""


@dataclass(frozen=True)
class Ports:
    mqtt: int
    influx_http: int
    influx_rpc: int


@dataclass
class ServiceRecord:
    name: str
    pid: int
    argv: list[str]
    log: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports() -> Ports:
    return Ports(free_port(), free_port(), free_port())


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if not found:
        raise ServiceError(f"{name} is not installed: run `make bootstrap` (apt-get install mosquitto influxdb)")
    return found


# -- private files ------------------------------------------------------------------------------------------


def private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents readable by their owner only (each created 0700, not
    chmod'ed later); tighten ``path`` itself if it already existed wider."""
    missing, existing = [], path
    while not existing.exists():
        missing.append(existing)
        existing = existing.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)  # a directory: what it holds is protected by the files' own modes meanwhile
    return path


def write_private(path: Path, data: str | bytes) -> None:
    """Write ``path`` readable by its owner only from its first byte: a new file created 0600, written,
    fsync'd and renamed over ``path``, so no reader ever sees it half-written or with a wider mode."""
    payload = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- configuration files ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsListener:
    """An MQTT listener over TLS: the server's certificate and key, and the CA that signed it."""

    port: int
    certfile: Path
    keyfile: Path
    cafile: Path


def mosquitto_conf(
    config_dir: Path,
    data_dir: Path,
    listener: str,
    log_dest: str,
    run_as_root: bool = False,
    tls: TlsListener | None = None,
    autosave_changes: int | None = AUTOSAVE_CHANGES,
    max_queued_bytes: int = MAX_QUEUED_BYTES,
    max_queued_messages: int = MAX_QUEUED_MESSAGES,
    autosave_s: int = AUTOSAVE_S,
) -> str:
    """The broker configuration, the same for the local stack and docker/: authenticated, ACL-bound,
    client ids bound to user names, size and queue limits, and persistence saved every ``autosave_s``
    seconds (or every ``autosave_changes`` changes, if given)."""
    lines = [
        "# written by parkcarbon (parkcarbon/services.py: mosquitto_conf); the local stack and docker/ share it",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {config_dir / 'passwd'}",
        f"acl_file {config_dir / 'acl'}",
        # Size: past MESSAGE_SIZE_LIMIT a publish is refused (PUBACK "packet too large"), past
        # MAX_PACKET_SIZE the client is disconnected before the broker allocates the packet.
        f"message_size_limit {MESSAGE_SIZE_LIMIT}",
        f"max_packet_size {MAX_PACKET_SIZE}",
        # Queues for absent or slow collector replicas, bounded in bytes and in messages; at a limit
        # Mosquitto drops what comes next for that replica (and logs it), see the README.
        f"max_queued_bytes {max_queued_bytes}",
        f"max_queued_messages {max_queued_messages}",
        "persistence true",
        f"persistence_location {data_dir}/",
        # Saved (with fsync) every `autosave_s` seconds: a kill -9 loses at most what was acknowledged
        # or subscribed since the last save. With `autosave_changes` N: whenever N messages were queued
        # or acknowledged or subscriptions changed (1: nothing is lost, but every message rewrites the
        # whole database). bench/broker.py measures both.
        *(
            ["autosave_on_changes true", f"autosave_interval {autosave_changes}"]
            if autosave_changes is not None
            else ["autosave_on_changes false", f"autosave_interval {autosave_s}"]
        ),
        # Sessions of collectors that went away are kept for a week, then reaped.
        "persistent_client_expiration 7d",
        f"log_dest {log_dest}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages true",
    ]
    if run_as_root:
        # As root, mosquitto drops to the 'mosquitto' user, which cannot enter private temporary
        # directories (pytest's are 0700); keep the current user instead.
        lines.append("user root")
    # The client id is the user name, on every listener (a per-listener option: placed before any
    # listener line it would open a default listener on port 1883): no client can present another's
    # id, so none can kick a collector replica off or take (and discard) its queued session.
    lines += ["", f"listener {listener}", "use_username_as_clientid true"]
    if tls is not None:
        lines += [
            "",
            "# MQTT over TLS for everything that comes from outside the host or the stack's network",
            f"listener {tls.port}",
            "use_username_as_clientid true",
            f"certfile {tls.certfile}",
            f"keyfile {tls.keyfile}",
            f"cafile {tls.cafile}",
            "tls_version tlsv1.2",
        ]
    return "\n".join(lines) + "\n"


def local_mosquitto_conf(
    run_dir: Path, port: int, autosave_changes: int | None = AUTOSAVE_CHANGES, autosave_s: int = AUTOSAVE_S
) -> str:
    base = run_dir / "mosquitto"
    return mosquitto_conf(
        base,
        base / "data",
        f"{port} 127.0.0.1",
        f"file {base / 'mosquitto.log'}",
        run_as_root=os.geteuid() == 0,
        autosave_changes=autosave_changes,
        autosave_s=autosave_s,
    )


DOCKER_MOSQUITTO_DIR = Path("/mosquitto/config")
DOCKER_MOSQUITTO_CERTS = Path("/mosquitto/certs")
DOCKER_COLLECTOR_REPLICAS = 2  # docker/compose.yaml's collector-0 and collector-1


def docker_mosquitto_conf() -> str:
    """docker/mosquitto/mosquitto.conf: the eclipse-mosquitto image's paths; plain MQTT on 1883 for the
    stack's own network (compose does not publish it), MQTT over TLS on 8883 for the gateways."""
    certs = DOCKER_MOSQUITTO_CERTS
    tls = TlsListener(8883, certs / "server.crt", certs / "server.key", certs / "ca.crt")
    return mosquitto_conf(DOCKER_MOSQUITTO_DIR, Path("/mosquitto/data"), "1883", "stdout", tls=tls)


def mosquitto_acl(collector_replicas: int) -> str:
    """Gateways publish only under their own id, in their format's topics; collector replicas only read."""
    return acl(collector_replicas)


def influxdb_conf(run_dir: Path, http_port: int, rpc_port: int) -> str:
    base = run_dir / "influxdb"
    return f"""# written by parkcarbon services up
reporting-enabled = false
# The RPC service (backup and restore) has no authentication of its own: loopback only.
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{base / "meta"}"

[data]
  dir = "{base / "data"}"
  wal-dir = "{base / "wal"}"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = true
  pprof-enabled = false
  log-enabled = false

[logging]
  level = "warn"
"""


# -- credentials --------------------------------------------------------------------------------------------


@dataclass
class Credentials:
    """The passwords of one run directory (or of docker/secrets): broker accounts and InfluxDB accounts."""

    mqtt: dict[str, str] = field(default_factory=dict)
    influxdb: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Credentials:
        data = json.loads(path.read_text())
        if "mqtt" not in data:  # the flat file of earlier versions held the broker's accounts only
            return cls(mqtt=dict(data))
        return cls(mqtt=dict(data["mqtt"]), influxdb=dict(data.get("influxdb", {})))

    def write(self, path: Path) -> None:
        write_private(path, json.dumps({"mqtt": self.mqtt, "influxdb": self.influxdb}, indent=1, sort_keys=True))


def _new_password() -> str:
    return secrets.token_urlsafe(18)


def ensure_credentials(run_dir: Path, registry: Registry, collector_replicas: int) -> Credentials:
    """Generate a password for every account that has none yet: collector-0 … collector-(N-1), every
    registry gateway, the InfluxDB admin and each InfluxDB role. Existing passwords are kept."""
    path = run_dir / CREDENTIALS_FILE
    creds = Credentials.read(path) if path.exists() else Credentials()
    # The single 'collector' account of earlier versions: now a reserved name with no ACL rule.
    creds.mqtt.pop(COLLECTOR_USER, None)
    for user in [*(collector_user(n) for n in range(collector_replicas)), *(g.id for g in registry.gateways)]:
        creds.mqtt.setdefault(user, _new_password())
    for user in [INFLUX_ADMIN, *INFLUX_ROLES]:
        creds.influxdb.setdefault(user, _new_password())
    creds.write(path)
    return creds


def load_credentials(run_dir: Path) -> dict[str, str]:
    """The broker passwords of the run directory, by account (gateway id or collector-N)."""
    return _read_credentials(run_dir).mqtt


def load_influx_credentials(run_dir: Path) -> dict[str, str]:
    """The InfluxDB passwords of the run directory: the admin and each role (collector, pipeline, dashboards)."""
    return _read_credentials(run_dir).influxdb


def _read_credentials(run_dir: Path) -> Credentials:
    path = run_dir / CREDENTIALS_FILE
    if not path.exists():
        raise ServiceError(f"no credentials in {run_dir}: run `parkcarbon services up` first")
    return Credentials.read(path)


def mosquitto_password_file(accounts: dict[str, str]) -> str:
    """Mosquitto's password file for ``accounts``: hashed before it is written, so no clear text ever
    lands on disk there."""
    return "".join(f"{user}:{mosquitto_password_hash(pw)}\n" for user, pw in sorted(accounts.items()))


def _write_password_file(path: Path, accounts: dict[str, str]) -> None:
    write_private(path, mosquitto_password_file(accounts))


def rotate_password(run_dir: Path, user: str) -> str:
    """Give broker account ``user`` a new password in the run directory's credentials and hashed
    password file, and make the running Mosquitto reload it (SIGHUP); connected clients keep their
    session until they reconnect, when the old password is refused. Returns the new password."""
    path = run_dir / CREDENTIALS_FILE
    creds = _read_credentials(run_dir)
    if user not in creds.mqtt:
        raise ServiceError(
            f"no broker user {user!r} in {path}: known are the collector replicas and the registry's gateways"
        )
    creds.mqtt[user] = _new_password()
    creds.write(path)
    _write_password_file(run_dir / "mosquitto" / "passwd", creds.mqtt)
    LocalServices(run_dir).reload_broker()
    return creds.mqtt[user]


# -- docker/ ------------------------------------------------------------------------------------------------

# Every secret docker/compose.yaml and docker/compose.celery.yaml interpolate, each read by the services that
# need it and no other. REDIS_PASSWORD (Celery's broker) is written even for a LocalExecutor stack, so that
# switching to Celery needs no new secret.
COMPOSE_SECRETS = [
    *(f"MQTT_COLLECTOR_{n}_PASSWORD" for n in range(DOCKER_COLLECTOR_REPLICAS)),
    "INFLUX_ADMIN_PASSWORD",
    *(f"INFLUX_{role.upper()}_PASSWORD" for role in INFLUX_ROLES),
    "POSTGRES_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
    "AIRFLOW_ADMIN_PASSWORD",
    "PLATFORM_DB_PASSWORD",
    "REDIS_PASSWORD",
]


@dataclass(frozen=True)
class DockerSecrets:
    credentials: Path  # every broker and InfluxDB password (kept, new accounts added)
    mosquitto_passwd: Path  # the broker's password file, hashed
    gateways: Path  # the gateways' broker passwords only, for the simulator
    compose_env: Path  # the --env-file of docker/compose.yaml


def _read_env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and line[0] != "#")
    return {key: value for key, value in pairs if value}


def write_docker_secrets(out: Path, registry: Registry) -> DockerSecrets:
    """For docker/: the broker accounts (collector-0, collector-1 and every gateway), the InfluxDB
    accounts and the stack's other secrets, in files readable by their owner only. Existing values are
    kept, missing ones generated; ``compose.env`` holds what compose interpolates."""
    private_dir(out)
    creds = ensure_credentials(out, registry, DOCKER_COLLECTOR_REPLICAS)
    passwd = out / "mosquitto-passwd"
    _write_password_file(passwd, creds.mqtt)
    gateway_ids = {g.id for g in registry.gateways}
    gateways = out / "gateways.json"
    write_private(gateways, json.dumps({u: p for u, p in creds.mqtt.items() if u in gateway_ids}, indent=1))
    env_path = out / "compose.env"
    env = _read_env_file(env_path)
    for n in range(DOCKER_COLLECTOR_REPLICAS):
        env[f"MQTT_COLLECTOR_{n}_PASSWORD"] = creds.mqtt[collector_user(n)]
    env["INFLUX_ADMIN_PASSWORD"] = creds.influxdb[INFLUX_ADMIN]
    for role in INFLUX_ROLES:
        env[f"INFLUX_{role.upper()}_PASSWORD"] = creds.influxdb[role]
    for name in COMPOSE_SECRETS:
        env.setdefault(name, secrets.token_urlsafe(24))
    header = "# written by `parkcarbon services docker-secrets`: docker-compose --env-file docker/secrets/compose.env\n"
    write_private(env_path, header + "".join(f"{name}={env[name]}\n" for name in COMPOSE_SECRETS))
    return DockerSecrets(out / CREDENTIALS_FILE, passwd, gateways, env_path)


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path  # give it to every gateway: it verifies the broker with it
    ca_key: Path  # keep it offline once the server certificate is issued
    server_cert: Path
    server_key: Path


def write_tls_certs(out: Path, hosts: list[str], days: int = 825) -> TlsFiles:
    """A private CA (kept if ``out`` already has one, so gateways keep trusting it) and a server
    certificate it signs for ``hosts`` (names or IP addresses) plus ``mosquitto`` and ``localhost``.
    Keys are EC P-256, written 0600."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    private_dir(out)
    files = TlsFiles(out / "ca.crt", out / "ca.key", out / "server.crt", out / "server.key")
    now = datetime.now(UTC) - timedelta(minutes=5)

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    if files.ca_key.exists() and files.ca_cert.exists():
        loaded = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ServiceError(f"{files.ca_key} is not an EC key written by this command")
        ca_key = loaded
        ca_cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "parkcarbon MQTT CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        write_private(files.ca_key, pem_key(ca_key))
        files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    names: list[x509.GeneralName] = []
    for host in dict.fromkeys([*hosts, "mosquitto", "localhost", "127.0.0.1"]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0] if hosts else "mosquitto")]))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_private(files.server_key, pem_key(server_key))
    files.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    return files


# -- the service set ----------------------------------------------------------------------------------------


class LocalServices:
    """Mosquitto and influxd for one run directory."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir.resolve()

    @property
    def state_path(self) -> Path:
        return self.run_dir / STATE_FILE

    def state(self) -> dict[str, object] | None:
        if not self.state_path.exists():
            return None
        state: dict[str, object] = json.loads(self.state_path.read_text())
        return state

    def ports(self) -> Ports | None:
        state = self.state()
        if state is None:
            return None
        ports = state["ports"]
        assert isinstance(ports, dict)
        return Ports(**ports)

    def up(
        self,
        registry: Registry,
        ports: Ports,
        database: str = InfluxSettings().database,
        collector_replicas: int = 4,
        timeout_s: float = 30.0,
    ) -> Ports:
        """Start both services (or confirm they already run here); wait until both answer; make sure
        InfluxDB has its admin, the role accounts and ``database`` with each role's privilege on it."""
        if self.state() is not None:
            running = self.status()
            if all(running.values()):
                current = self.ports()
                assert current is not None
                self._provision_influx(current.influx_http, load_influx_credentials(self.run_dir))
                self.create_database(database)
                return current
            self.down()
        for port in (ports.mqtt, ports.influx_http, ports.influx_rpc):
            if port_in_use(port):
                raise ServiceError(f"port {port} is already in use: choose other ports or --free-ports")
        private_dir(self.run_dir)
        for sub in ("mosquitto/data", "influxdb/meta", "influxdb/data", "influxdb/wal"):
            private_dir(self.run_dir / sub)
        creds = ensure_credentials(self.run_dir, registry, collector_replicas)
        mosq = self.run_dir / "mosquitto"
        (mosq / "mosquitto.conf").write_text(local_mosquitto_conf(self.run_dir, ports.mqtt))
        (mosq / "acl").write_text(mosquitto_acl(collector_replicas))
        _write_password_file(mosq / "passwd", creds.mqtt)
        influx = self.run_dir / "influxdb"
        (influx / "influxdb.conf").write_text(influxdb_conf(self.run_dir, ports.influx_http, ports.influx_rpc))

        records = [
            self._spawn("mosquitto", [_binary("mosquitto"), "-c", str(mosq / "mosquitto.conf")], mosq),
            self._spawn("influxd", [_binary("influxd"), "-config", str(influx / "influxdb.conf")], influx),
        ]
        state = {"ports": asdict(ports), "services": [asdict(r) for r in records]}
        self.state_path.write_text(json.dumps(state, indent=1))
        try:
            _wait_tcp(ports.mqtt, timeout_s, Path(records[0].log))
            _wait_influx(ports.influx_http, timeout_s, Path(records[1].log))
            self._provision_influx(ports.influx_http, creds.influxdb)
            self.create_database(database)
        except ServiceError:
            self.down()
            raise
        except InfluxError as exc:
            self.down()
            raise ServiceError(f"influxd refused setting up its accounts and {database!r}: {exc}") from exc
        return ports

    # -- InfluxDB accounts ----------------------------------------------------------------------------------

    def admin_store(self, database: str = InfluxSettings().database) -> InfluxStore:
        """An InfluxDB client with the admin account (for set-up: databases and users)."""
        ports = self.ports()
        if ports is None:
            raise ServiceError(f"nothing started from {self.run_dir}")
        password = load_influx_credentials(self.run_dir)[INFLUX_ADMIN]
        settings = InfluxSettings(port=ports.influx_http, database=database, username=INFLUX_ADMIN)
        return InfluxStore(settings.model_copy(update={"password": SecretStr(password)}))

    def _provision_influx(self, http_port: int, passwords: dict[str, str]) -> None:
        """First start: create the admin (InfluxDB lets an anonymous request create the first admin
        and nothing else). Every start: create missing role accounts, set every role's password from
        the credentials (so a changed password takes effect) and take admin rights from roles."""
        with self.admin_store() as admin:
            try:
                users = {row[0]: row[1] for row in _rows(admin.execute("SHOW USERS"))}
            except InfluxError as exc:
                if exc.status not in (401, 403):
                    raise ServiceError(f"influxd refused the admin account: {exc}") from exc
                anonymous = InfluxStore(InfluxSettings(port=http_port))
                try:
                    anonymous.execute(
                        f"CREATE USER {quote_ident(INFLUX_ADMIN)} WITH PASSWORD "
                        f"{quote_literal(passwords[INFLUX_ADMIN])} WITH ALL PRIVILEGES"
                    )
                except InfluxError as again:
                    raise ServiceError(
                        f"InfluxDB in {self.run_dir / 'influxdb'} already has an admin, and the admin password in "
                        f"{self.run_dir / CREDENTIALS_FILE} is not its password: {again}"
                    ) from again
                finally:
                    anonymous.close()
                users = {row[0]: row[1] for row in _rows(admin.execute("SHOW USERS"))}
            for role in INFLUX_ROLES:
                password = quote_literal(passwords[role])
                if role in users:
                    admin.execute(f"SET PASSWORD FOR {quote_ident(role)} = {password}")
                    if users[role]:
                        admin.execute(f"REVOKE ALL PRIVILEGES FROM {quote_ident(role)}")
                else:
                    admin.execute(f"CREATE USER {quote_ident(role)} WITH PASSWORD {password}")

    def create_database(self, database: str) -> None:
        """Create ``database`` (as admin) and grant each role its privilege on it: collector WRITE,
        pipeline ALL, dashboards READ. Idempotent; a grant replaces the role's earlier one."""
        with self.admin_store(database) as admin:
            admin.execute(f"CREATE DATABASE {quote_ident(database)}")
            for role, privilege in INFLUX_ROLES.items():
                admin.execute(f"GRANT {privilege} ON {quote_ident(database)} TO {quote_ident(role)}")

    def drop_database(self, database: str) -> None:
        """Drop ``database`` (as admin: no role may)."""
        with self.admin_store(database) as admin:
            admin.drop_database()

    # -- processes --------------------------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], workdir: Path) -> ServiceRecord:
        log = workdir / f"{name}.stdout.log"
        return ServiceRecord(name=name, pid=spawn(argv, log), argv=argv, log=str(log))

    def _records(self) -> list[ServiceRecord]:
        state = self.state()
        if state is None:
            return []
        services = state["services"]
        assert isinstance(services, list)
        return [ServiceRecord(**s) for s in services]

    def stop_one(self, name: str, timeout_s: float = 15.0) -> None:
        """Stop one service (SIGTERM, so Mosquitto saves its persistence), keeping its record."""
        record = next(r for r in self._records() if r.name == name)
        if _runs(record):
            os.kill(record.pid, signal.SIGTERM)
            if not _wait_exit(record.pid, timeout_s):
                os.kill(record.pid, signal.SIGKILL)
                _wait_exit(record.pid, 5.0)

    def kill_one(self, name: str) -> None:
        """Kill one service with SIGKILL (no chance to save anything), keeping its record: a crash."""
        record = next(r for r in self._records() if r.name == name)
        if _runs(record):
            os.kill(record.pid, signal.SIGKILL)
            _wait_exit(record.pid, 10.0)

    def pid(self, name: str) -> int | None:
        """The PID of a running service, or None."""
        record = next((r for r in self._records() if r.name == name), None)
        return record.pid if record is not None and _runs(record) else None

    def start_one(self, name: str, timeout_s: float = 30.0) -> None:
        """Start a stopped service again with the same configuration and data; wait until it answers."""
        state = self.state()
        assert state is not None
        records = self._records()
        index = next(i for i, r in enumerate(records) if r.name == name)
        old = records[index]
        records[index] = self._spawn(name, old.argv, Path(old.log).parent)
        state["services"] = [asdict(r) for r in records]
        self.state_path.write_text(json.dumps(state, indent=1))
        ports = self.ports()
        assert ports is not None
        if name == "mosquitto":
            _wait_tcp(ports.mqtt, timeout_s, Path(old.log))
        else:
            _wait_influx(ports.influx_http, timeout_s, Path(old.log))

    def status(self) -> dict[str, bool]:
        return {r.name: _runs(r) for r in self._records()}

    def reload_broker(self) -> bool:
        """Make the running Mosquitto re-read its password file and ACL (SIGHUP); False if it is not running."""
        for record in self._records():
            if record.name == "mosquitto" and _runs(record):
                os.kill(record.pid, signal.SIGHUP)
                return True
        return False

    def down(self, timeout_s: float = 15.0) -> list[str]:
        """Stop what ``up`` started, by PID: SIGTERM, then SIGKILL after ``timeout_s``."""
        stopped = []
        for record in self._records():
            if _runs(record):
                os.kill(record.pid, signal.SIGTERM)
                if not _wait_exit(record.pid, timeout_s):
                    os.kill(record.pid, signal.SIGKILL)
                    _wait_exit(record.pid, 5.0)
                stopped.append(record.name)
        self.state_path.unlink(missing_ok=True)
        return stopped


def _rows(results: list[dict[str, object]]) -> list[list[object]]:
    rows: list[list[object]] = []
    for result in results:
        series = result.get("series")
        if isinstance(series, list):
            for one in series:
                rows += one.get("values", [])
    return rows


def _runs(record: ServiceRecord) -> bool:
    """True if the PID is alive and still runs the command line we started (not a reused PID)."""
    try:
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{record.pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":  # a zombie has exited
        reap(record.pid)
        return False
    return [c.decode() for c in cmdline if c] == record.argv


def _wait_exit(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reap(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            reap(pid)
            return True
        time.sleep(0.05)
    return False


def _wait_tcp(port: int, timeout_s: float, log: Path) -> None:
    if not wait_for_port(port, timeout_s, poll_s=0.02):
        raise ServiceError(f"mosquitto did not listen on {port} within {timeout_s} s; see {log}")


def _wait_influx(port: int, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1.0).status_code == 204:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise ServiceError(f"influxd did not answer /ping on {port} within {timeout_s} s; see {log}")
        time.sleep(0.05)
