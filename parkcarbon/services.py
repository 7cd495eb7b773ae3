"""Local Mosquitto and influxd under one run directory: ``parkcarbon services up|down|status``.

Layout of a run directory::

    RUN/services.json          what ``up`` started: PIDs, command lines, ports (``down`` reads it)
    RUN/credentials.json       generated MQTT passwords (mode 0600): the collector and each gateway
    RUN/mosquitto/             mosquitto.conf, passwd (hashed), acl, persistence, mosquitto.log
    RUN/influxdb/              influxdb.conf, meta/, data/, wal/, influxd.log

Several run directories can be up side by side on different ports. ``down`` stops exactly the
processes that ``up`` recorded, after checking that each PID still runs the command it started.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from park.registry import Registry
from park.topics import COLLECTOR_USER, acl

STATE_FILE = "services.json"
CREDENTIALS_FILE = "credentials.json"


# Handles of the processes this Python process started: kept so that they are reaped with wait()
# when stopped here, instead of being collected while still running.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


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


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if not found:
        raise ServiceError(f"{name} is not installed: run `make bootstrap` (apt-get install mosquitto influxdb)")
    return found


# -- configuration files ------------------------------------------------------------------------------


def mosquitto_conf(
    config_dir: Path,
    data_dir: Path,
    listener: str,
    log_dest: str,
    run_as_root: bool = False,
) -> str:
    """The broker configuration, the same for the local stack and docker/: authenticated, ACL-bound,
    persistent, and never dropping QoS 1 messages queued for a slow or absent collector."""
    lines = [
        "# written by parkcarbon (parkcarbon/services.py: mosquitto_conf); the local stack and docker/ share it",
        "per_listener_settings false",
        f"listener {listener}",
        "allow_anonymous false",
        f"password_file {config_dir / 'passwd'}",
        f"acl_file {config_dir / 'acl'}",
        "persistence true",
        f"persistence_location {data_dir}/",
        "autosave_interval 30",
        # The default (1000) silently drops QoS 1 messages queued for a slow or absent subscriber.
        "max_queued_messages 0",
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
    return "\n".join(lines) + "\n"


def local_mosquitto_conf(run_dir: Path, port: int) -> str:
    base = run_dir / "mosquitto"
    return mosquitto_conf(
        base, base / "data", f"{port} 127.0.0.1", f"file {base / 'mosquitto.log'}", run_as_root=os.geteuid() == 0
    )


DOCKER_MOSQUITTO_DIR = Path("/mosquitto/config")


def docker_mosquitto_conf() -> str:
    """docker/mosquitto/mosquitto.conf: the eclipse-mosquitto image's paths, all interfaces."""
    return mosquitto_conf(DOCKER_MOSQUITTO_DIR, Path("/mosquitto/data"), "1883", "stdout")


def mosquitto_acl() -> str:
    """Gateways publish only under their own id, in their format's topics; the collector only reads."""
    return acl()


def influxdb_conf(run_dir: Path, http_port: int, rpc_port: int) -> str:
    base = run_dir / "influxdb"
    return f"""# written by parkcarbon services up
reporting-enabled = false
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
  log-enabled = false

[logging]
  level = "warn"
"""


# -- credentials ----------------------------------------------------------------------------------------


def ensure_credentials(run_dir: Path, registry: Registry) -> dict[str, str]:
    """Generate a password for the collector and every registry gateway that has none yet."""
    path = run_dir / CREDENTIALS_FILE
    creds: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    for user in [COLLECTOR_USER, *(g.id for g in registry.gateways)]:
        creds.setdefault(user, secrets.token_urlsafe(18))
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(json.dumps(creds, indent=1, sort_keys=True))
    return creds


def write_docker_secrets(out: Path, registry: Registry) -> tuple[Path, Path]:
    """For docker/: ``credentials.json`` (kept, new users added) and ``mosquitto-passwd`` with the same
    passwords in clear, which the broker container hashes into its own config at every start."""
    out.mkdir(parents=True, exist_ok=True)
    creds = ensure_credentials(out, registry)
    plain = out / "mosquitto-passwd"
    plain.touch(mode=0o600, exist_ok=True)
    plain.write_text("".join(f"{user}:{pw}\n" for user, pw in sorted(creds.items())))
    return out / CREDENTIALS_FILE, plain


def rotate_password(run_dir: Path, user: str) -> str:
    """Give ``user`` a new broker password in the run directory's credentials and hashed password file,
    and make the running Mosquitto reload it (SIGHUP); connected clients keep their session until
    they reconnect, when the old password is refused. Returns the new password."""
    path = run_dir / CREDENTIALS_FILE
    creds = load_credentials(run_dir)
    if user not in creds:
        raise ServiceError(f"no broker user {user!r} in {path}: known are the collector and the registry's gateways")
    creds[user] = secrets.token_urlsafe(18)
    path.write_text(json.dumps(creds, indent=1, sort_keys=True))
    _write_password_file(run_dir / "mosquitto" / "passwd", creds)
    LocalServices(run_dir).reload_broker()
    return creds[user]


def load_credentials(run_dir: Path) -> dict[str, str]:
    path = run_dir / CREDENTIALS_FILE
    if not path.exists():
        raise ServiceError(f"no MQTT credentials in {run_dir}: run `parkcarbon services up` first")
    creds: dict[str, str] = json.loads(path.read_text())
    return creds


def _write_password_file(path: Path, creds: dict[str, str]) -> None:
    path.write_text("".join(f"{user}:{pw}\n" for user, pw in sorted(creds.items())))
    path.chmod(0o600)
    # -U hashes every plain-text password in place (PBKDF2-SHA512), so no clear text stays on disk.
    subprocess.run([_binary("mosquitto_passwd"), "-U", str(path)], check=True, capture_output=True)


# -- the service set ------------------------------------------------------------------------------------


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

    def up(self, registry: Registry, ports: Ports, timeout_s: float = 30.0) -> Ports:
        """Start both services (or confirm they already run here); wait until both answer."""
        if self.state() is not None:
            running = self.status()
            if all(running.values()):
                current = self.ports()
                assert current is not None
                return current
            self.down()
        for port in (ports.mqtt, ports.influx_http, ports.influx_rpc):
            if _port_in_use(port):
                raise ServiceError(f"port {port} is already in use: choose other ports or --free-ports")
        for sub in ("mosquitto/data", "influxdb/meta", "influxdb/data", "influxdb/wal"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        creds = ensure_credentials(self.run_dir, registry)
        mosq = self.run_dir / "mosquitto"
        (mosq / "mosquitto.conf").write_text(local_mosquitto_conf(self.run_dir, ports.mqtt))
        (mosq / "acl").write_text(mosquitto_acl())
        _write_password_file(mosq / "passwd", creds)
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
        except ServiceError:
            self.down()
            raise
        return ports

    def _spawn(self, name: str, argv: list[str], workdir: Path) -> ServiceRecord:
        log = workdir / f"{name}.stdout.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        _CHILDREN[proc.pid] = proc
        return ServiceRecord(name=name, pid=proc.pid, argv=argv, log=str(log))

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


def _runs(record: ServiceRecord) -> bool:
    """True if the PID is alive and still runs the command line we started (not a reused PID)."""
    try:
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{record.pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":  # a zombie has exited
        _reap(record.pid)
        return False
    return [c.decode() for c in cmdline if c] == record.argv


def _reap(pid: int) -> None:
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]


def _wait_exit(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            _reap(pid)
            return True
        time.sleep(0.05)
    return False


def _wait_tcp(port: int, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not _port_in_use(port):
        if time.monotonic() > deadline:
            raise ServiceError(f"mosquitto did not listen on {port} within {timeout_s} s; see {log}")
        time.sleep(0.02)


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
