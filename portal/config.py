"""What the platform runs on: the ledger's database, the InfluxDB results, the registry, the run
directory's reports, and its own security settings (environment ``PARKCARBON_PLATFORM_*``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from park.settings import InfluxSettings, Settings


class PlatformSettings(BaseSettings):
    """The platform's own settings: ``PARKCARBON_PLATFORM_COOKIE_SECURE=always`` and the like."""

    model_config = SettingsConfigDict(env_prefix="PARKCARBON_PLATFORM_", env_file=".env", extra="ignore")

    cookie_secure: Literal["auto", "always", "never"] = Field(
        "auto",
        description=(
            "Secure flag on the session cookie: auto sets it when the request came over TLS (directly, or"
            " through a proxy uvicorn trusts with --forwarded-allow-ips), always behind any TLS proxy"
        ),
    )
    session_hours: float = Field(12.0, gt=0, le=24 * 30, description="a session ends this long after login")
    max_failures: int = Field(10, ge=1, description="wrong passwords in a row that lock a user name or address")
    lockout_minutes: float = Field(15.0, gt=0, description="how long a locked user name or address stays locked")
    results_ttl_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description=(
            "seconds a worker keeps an enterprise page's results from InfluxDB (0: read them on every"
            " request); a re-run month shows at most this long after the DAG wrote it"
        ),
    )

    @property
    def lockout(self) -> timedelta:
        return timedelta(minutes=self.lockout_minutes)

    @property
    def session_lifetime(self) -> timedelta:
        return timedelta(hours=self.session_hours)


@dataclass(frozen=True)
class PlatformConfig:
    """Everything the application needs, resolved once by the command that starts it."""

    ledger_url: str
    influx: InfluxSettings
    registry: Path
    run_dir: Path
    security: PlatformSettings = field(default_factory=PlatformSettings)
    policy: Path | None = None  # the policy the ledger's banking validity comes from (None: the packaged one)
    # "database": the registry as of today from the platform's database (ledger/registry_live.py), the
    # file ``registry`` only until one is imported; "file": the file, read once at start
    registry_source: Literal["file", "database"] = "file"

    @classmethod
    def from_settings(cls, settings: Settings, security: PlatformSettings | None = None) -> PlatformConfig:
        return cls(
            ledger_url=settings.ledger_url,
            influx=settings.influx,
            registry=settings.registry,
            run_dir=settings.run_dir,
            security=security or PlatformSettings(),
            policy=settings.policy,
            registry_source=settings.registry_source,
        )

    @property
    def reports_dir(self) -> Path:
        return self.run_dir / "reports"
