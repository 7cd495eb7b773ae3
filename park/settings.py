"""Runtime settings, read from the environment (prefix ``PARKCARBON_``) and an optional ``.env``.

Nested groups use ``__``: ``PARKCARBON_INFLUX__PORT=18086``. Tests pass overrides to the constructor.
No credential has a default here: broker and InfluxDB passwords are generated per run directory by
``parkcarbon services up`` and read from there for the role a process plays (``parkcarbon.runtime``),
or given in the environment.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEMO_REGISTRY = Path(__file__).resolve().parent / "data" / "demo_registry.yaml"
DEMO_ENTERPRISES = Path(__file__).resolve().parent / "data" / "demo_enterprises.csv"


class MqttSettings(BaseModel):
    """Where the broker is, and the collector's broker password. A collector replica N logs in as
    ``collector-N`` (``park.topics.collector_user``), which the broker also makes its client id."""

    host: str = "127.0.0.1"
    port: int = Field(18830, ge=1, le=65535)
    password: SecretStr | None = Field(
        None, description="the broker password of this process's collector replica (one replica per process)"
    )
    passwords: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="broker passwords by account, for a process running several replicas (from the run directory)",
    )
    keepalive_s: int = Field(30, ge=5)

    def password_for(self, user: str) -> str | None:
        """The password of broker account ``user``: its own entry in ``passwords``, else ``password``."""
        secret = self.passwords.get(user, self.password)
        return secret.get_secret_value() if secret is not None else None


class InfluxSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(18086, ge=1, le=65535)
    rpc_port: int = Field(18088, ge=1, le=65535)
    database: str = "carbon"
    username: str | None = Field(None, description="the InfluxDB account of this process's role; None: anonymous")
    password: SecretStr | None = None
    batch_points: int = Field(5000, ge=1)
    timeout_s: float = Field(30.0, gt=0)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class CollectorSettings(BaseModel):
    max_replicas: int = Field(
        4,
        ge=1,
        le=64,
        description=(
            "broker accounts collector-0 … collector-(N-1) that `services up` creates, one per replica that may"
            " run; each replica's client id is its account"
        ),
    )
    share_group: str | None = Field(
        None,
        description=(
            "unset: each replica subscribes directly (run one), and a broker restart loses nothing;"
            " set: replicas share $share/<group>/... subscriptions, which Mosquitto 2.0.11 does not"
            " restore from its persistence: what gateways publish after a broker restart and before"
            " a replica resubscribes is dropped"
        ),
    )
    session_expiry_s: int = Field(7 * 86_400, ge=0, description="how long the broker queues for an absent replica")
    receive_maximum: int = Field(1000, ge=1, le=65_535, description="unacknowledged messages in flight")
    batch_max_messages: int = Field(500, ge=1)
    flush_interval_s: float = Field(0.2, gt=0)
    stats_interval_s: float = Field(10.0, gt=0)
    spool_dir: Path | None = Field(None, description="default: RUN/spool/<client id>")
    max_reading_age_days: int = Field(
        400, ge=1, description="older readings are quarantined as too_old; raise it to import history"
    )
    registry_reload_s: float = Field(
        5.0,
        gt=0,
        le=3600,
        description=(
            "with registry_source 'database': seconds between the collector's reloads of the registry as of"
            " today (a gateway or meter added on the platform is known after at most this long)"
        ),
    )


class QualitySettings(BaseModel):
    stale_after_hours: float = Field(6.0, gt=0, description="a meter silent this long at the end of a day is stale")
    late_data_months: int = Field(13, ge=1, description="how many months back to look for readings stored late")


class MonthlySettings(BaseModel):
    """How ``carbon_monthly`` splits the month's activity into groups of whole enterprises (pipeline/groups.py)."""

    group_meters: int = Field(
        2000, ge=1, description="meters per group of enterprises in the monthly fan-out (an enterprise is never split)"
    )
    # Test only: the group holding this enterprise (every group when None) pauses this long between writing its
    # activity and its quality points, while the flag file exists (always when None), so an end-to-end test can
    # kill the worker running it, deterministically.
    test_pause_s: float = Field(0.0, ge=0)
    test_pause_enterprise: str | None = None
    test_pause_flag: Path | None = None


class LedgerSettings(BaseModel):
    url: SecretStr | None = Field(
        None,
        description=(
            "SQLAlchemy URL of the credit ledger, e.g. postgresql+psycopg://user:pw@host/db;"
            " unset: the embedded SQLite file RUN/ledger.sqlite"
        ),
    )
    # No published Hefei rule gives a compliance deadline (docs/domain.md §10): a design choice.
    deadline_month_day: str = Field(
        "06-30",
        pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$",
        description="deficits of a year are due by this day of the next year",
    )
    operator: str | None = Field(None, description="who books settlements (default: the system user)")
    issuance: Literal["on_settlement", "reviewed"] = Field(
        "on_settlement",
        description=(
            "on_settlement: settling a year books its credits at once (a park without the platform);"
            " reviewed: settlement only proposes them, and the ledger books a version's credits when a park"
            " admin approves its issuance on the platform, after publication (公示) made it final"
        ),
    )

    def deadline_for(self, year: int) -> date:
        """The day by which a deficit of ``year`` must be covered."""
        month, day = (int(p) for p in self.deadline_month_day.split("-"))
        return date(year + 1, month, day)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PARKCARBON_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    run_dir: Path = PROJECT_ROOT / ".run"
    registry: Path = DEMO_REGISTRY
    enterprises: Path = DEMO_ENTERPRISES
    registry_source: Literal["file", "database"] = Field(
        "file",
        description=(
            "where the pipeline, the collector, the platform and the ledger read the registry: 'file'"
            " (``registry`` and ``enterprises``, as a park without the platform keeps them) or 'database' (the"
            " platform's versioned registry, each month as it was on its first day, the collector and the"
            " platform as of today: ledger/registry_store.py; `parkcarbon registry import` fills it)"
        ),
    )
    manual_activity: Path | None = None
    factor_set: str = "cn-national-2023"
    policy: Path | None = None
    # Reviewed manual facts (YAML: green-factory status, accident record, offsets held ...): the rating's
    # adjustments and the near-zero profiles' fact indicators; without them those are unknown.
    facts: Path | None = None
    mqtt: MqttSettings = MqttSettings()
    influx: InfluxSettings = InfluxSettings()
    collector: CollectorSettings = CollectorSettings()
    quality: QualitySettings = QualitySettings()
    monthly: MonthlySettings = MonthlySettings()
    ledger: LedgerSettings = LedgerSettings()

    @property
    def ledger_file(self) -> Path:
        """The embedded SQLite ledger, used when no ``ledger.url`` is set."""
        return self.run_dir / "ledger.sqlite"

    @property
    def ledger_url(self) -> str:
        if self.ledger.url is not None:
            return self.ledger.url.get_secret_value()
        return f"sqlite:///{self.ledger_file}"
