"""The park registry: the baseline database of enterprises, workshops, gateways and meters.

Kept as a YAML file, validated by pydantic. Every error names the file, the entry and the field::

    registry.yaml: meters[12] (id 'E-0301'): multiplier: Input should be greater than 0

Cross-checks: ids are unique per kind; every reference points at an existing entry; a meter's
gateway, workshop and meter belong to the same enterprise; units fit the carrier.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from park.industry import normalize_industry
from park.registry_cache import cached_document
from park.units import Dimension, dimension_of, normalize_unit
from park.uscc import validate_uscc

# The park's time zone defines its days, months and years. The registry is its one source: the pipeline,
# the DAGs' timetables, the reports and the dashboards read it from there. The default is the pilot
# park's (Hefei High-tech Zone, China Standard Time).
DEFAULT_TIMEZONE = "Asia/Shanghai"

SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]

# parkcarbon's own broker accounts: collector replica N logs in as ``collector-N`` (park/topics.py), and
# the broker takes the user name as the client id. A gateway logs in with its id, so no gateway may
# be named like a service account, or it could take that service's session.
SERVICE_ACCOUNT_PREFIX = "collector"


def is_service_account(name: str) -> bool:
    """True for a name of parkcarbon's service accounts on the broker: ``collector`` or ``collector-<N>``."""
    return re.fullmatch(rf"{SERVICE_ACCOUNT_PREFIX}(-\d+)?", name, flags=re.IGNORECASE) is not None


class Carrier(StrEnum):
    GRID_ELECTRICITY = "grid_electricity"
    PV_GENERATION = "pv_generation"
    NATURAL_GAS = "natural_gas"
    HEAT = "heat"


class Register(StrEnum):
    """Cumulative registers a meter can report."""

    ACTIVE_ENERGY_IMPORT = "active_energy_import"  # A+, OBIS 1.8.0: energy drawn from the grid
    ACTIVE_ENERGY_EXPORT = "active_energy_export"  # A-, OBIS 2.8.0: energy delivered (PV output, export)
    GAS_VOLUME = "gas_volume"
    HEAT_ENERGY = "heat_energy"


class MeterRole(StrEnum):
    MAIN = "main"  # the enterprise's billing-level meter: enterprise totals come from these
    SUB = "sub"  # a sub-meter: workshop totals come from these, never added to the enterprise's


_CARRIER_DIMENSION = {
    Carrier.GRID_ELECTRICITY: {Dimension.ELECTRIC_ENERGY},
    Carrier.PV_GENERATION: {Dimension.ELECTRIC_ENERGY},
    Carrier.NATURAL_GAS: {Dimension.GAS_VOLUME, Dimension.GAS_VOLUME_METERED},
    Carrier.HEAT: {Dimension.HEAT},
}
_DEFAULT_REGISTERS = {
    Carrier.GRID_ELECTRICITY: [Register.ACTIVE_ENERGY_IMPORT],
    Carrier.PV_GENERATION: [Register.ACTIVE_ENERGY_EXPORT],
    Carrier.NATURAL_GAS: [Register.GAS_VOLUME],
    Carrier.HEAT: [Register.HEAT_ENERGY],
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ProfileId = Annotated[
    str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="a profile's id, e.g. hunan-zc-factory-2025")
]


class ParkTarget(_Model):
    """A year's cap on the park's emissions: every enterprise's Scope 1 + 2, location-based."""

    year: int = Field(ge=2000, le=2100)
    emissions_cap_tco2: float = Field(gt=0, description="the year's cap, tCO2")
    source: str = Field(
        min_length=1,
        description="where the cap comes from: the plan or document and its clause, or 'the park's own choice'",
    )


class Park(_Model):
    id: Id
    name: str
    timezone: str = DEFAULT_TIMEZONE
    metering_start: date | None = Field(
        None,
        description=(
            "the first day the park's meters are read: the DAGs start there and no month before it is computed;"
            " ingestion does not need it, the monthly computation does"
        ),
    )
    latitude_deg: float = Field(ge=-90, le=90)
    longitude_deg: float = Field(ge=-180, le=180)
    nearzero_profiles: list[ProfileId] = Field(
        default_factory=list,
        description=(
            "near-zero / zero-carbon profiles the monthly DAG evaluates (scoring/data/profile-*.yaml): factory"
            " profiles for every enterprise (unless it names its own), park profiles for the park"
        ),
    )
    targets: list[ParkTarget] = Field(default_factory=list, description="the park's emission caps, one per year")

    @model_validator(mode="after")
    def _one_target_a_year(self) -> Park:
        years = [t.year for t in self.targets]
        if len(set(years)) != len(years):
            raise ValueError(f"targets: a year has two caps ({sorted({y for y in years if years.count(y) > 1})})")
        return self

    def target_of(self, year: int) -> ParkTarget | None:
        return next((t for t in self.targets if t.year == year), None)

    @model_validator(mode="after")
    def _known_timezone(self) -> Park:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {self.timezone!r} is not an IANA time zone name") from None
        return self


def metering_start_of(park: Park) -> date:
    """``park.metering_start``, which scheduling and computing months need; ValueError saying so if missing."""
    if park.metering_start is None:
        raise ValueError(
            "the registry has no park.metering_start (the first day the park's meters are read): the DAGs start"
            " there and no month before it is computed; add it to the registry"
        )
    return park.metering_start


class PilotStatus(StrEnum):
    """Where an enterprise stands in the park's pilot (试点): a candidate in the baseline database (基础数据库)
    before it joins, a pilot enterprise from its first day, or one that has left it."""

    CANDIDATE = "candidate"
    PILOT = "pilot"
    EXITED = "exited"


class Enterprise(_Model):
    id: Id
    name: str
    industry: str = Field(description="GB/T 4754-2017 division, e.g. C39 (39 and C3911 are read as C39)")
    bills_override: list[str] = Field(
        default_factory=list,
        description=(
            "activity sources (e.g. natural_gas) whose monthly bills replace the metered figures; for any"
            " other source a bill for a metered month is an error, never added to the meters"
        ),
    )
    nearzero_profiles: list[ProfileId] | None = Field(
        None, description="the factory profiles this enterprise is evaluated against (default: the park's)"
    )
    credit_code: str | None = Field(
        None, description="unified social credit code (统一社会信用代码), its check digit checked (GB 32100-2015)"
    )
    pilot_status: PilotStatus | None = Field(
        None, description="the enterprise's place in the park's pilot: candidate, pilot (from pilot_from) or exited"
    )
    pilot_from: date | None = Field(None, validate_default=True, description="the first day of the enterprise's pilot")
    pilot_until: date | None = Field(
        None, validate_default=True, description="the last day of the enterprise's pilot (an exited one's)"
    )

    @field_validator("industry", mode="before")
    @classmethod
    def _division(cls, value: object) -> object:
        return normalize_industry(value) if isinstance(value, str) else value

    @field_validator("credit_code")
    @classmethod
    def _credit_code(cls, value: str | None) -> str | None:
        return validate_uscc(value) if value is not None else None

    # Validated in the order declared, defaults included, so that each error names its field.
    @field_validator("pilot_from")
    @classmethod
    def _pilot_from(cls, value: date | None, info: ValidationInfo) -> date | None:
        if value is None and info.data.get("pilot_status") == PilotStatus.PILOT:
            raise ValueError("pilot_status pilot needs pilot_from, the first day of the pilot")
        return value

    @field_validator("pilot_until")
    @classmethod
    def _pilot_until(cls, value: date | None, info: ValidationInfo) -> date | None:
        status, start = info.data.get("pilot_status"), info.data.get("pilot_from")
        if value is None and status == PilotStatus.EXITED:
            raise ValueError("pilot_status exited needs pilot_until, the last day of the pilot")
        if value is not None and status != PilotStatus.EXITED:
            raise ValueError("pilot_until is the last day of an exited pilot: set pilot_status exited")
        if value is not None and start is not None and value < start:
            raise ValueError(f"pilot_until {value} is before pilot_from {start}")
        return value


class NearZeroTarget(_Model):
    offset_ratio: float = Field(gt=0, le=2, description="0.80 near-zero-carbon, 1.00 zero-carbon")
    plan_start_year: int = Field(ge=2000, le=2100)
    target_year: int = Field(ge=2000, le=2100)

    @model_validator(mode="after")
    def _years_ordered(self) -> NearZeroTarget:
        if self.target_year < self.plan_start_year:
            raise ValueError("target_year must not be before plan_start_year")
        return self


class Workshop(_Model):
    id: Id
    enterprise: Id
    name: str
    near_zero: NearZeroTarget | None = None


class GatewayFormat(StrEnum):
    """How a gateway publishes: its topics are in :mod:`park.topics`, its decoder in ``collectors``."""

    NATIVE = "native"  # DESIGN.md's JSON: readings with meter ids, cumulative registers, offset timestamps
    TASMOTA = "tasmota"  # SENSOR telemetry, ENERGY.Total in kWh, local time without zone
    SHELLY_GEN2 = "shelly_gen2"  # RPC NotifyStatus, emdata/em1data counters in Wh
    DLT645_JSON = "dlt645_json"  # EdgeLogger-style batch of DL/T 645 meters


class Gateway(_Model):
    id: Id
    enterprise: Id
    model: str = ""
    format: GatewayFormat = GatewayFormat.NATIVE


class MeterReplacement(_Model):
    """A meter change: the old meter's last register and the new meter's first, at one instant."""

    at: AwareDatetime
    old_final_reading: float = Field(ge=0)
    new_initial_reading: float = Field(ge=0)
    new_multiplier: float | None = Field(default=None, gt=0)
    new_serial: str = ""


class Meter(_Model):
    id: Id
    gateway: Id
    enterprise: Id
    workshop: Id | None = None
    carrier: Carrier
    role: MeterRole
    unit: str
    registers: list[Register] = Field(default_factory=list)
    multiplier: float = Field(1.0, gt=0, description="CT x PT x internal multiplier applied to the register")
    rollover_at: float | None = Field(
        None, gt=0, description="register modulus: it wraps to 0 here (1e6 for a XXXXXX.XX kWh register)"
    )
    max_per_hour: float | None = Field(
        None,
        gt=0,
        description=(
            "physical maximum consumption per hour, in the unit, multiplier applied: the monthly step flags"
            " faster advances as spikes and judges rollovers by it; the collector does not (a rate needs the"
            " reading before, which replicas, redelivery and store-and-forward do not hand it in order)"
        ),
    )
    max_value: float | None = Field(
        None,
        gt=0,
        description=(
            "the largest register the meter can show, in the unit, before the multiplier: a larger reading is"
            " quarantined as absurd; unset: below rollover_at if the register wraps, else DEFAULT_MAX_VALUE"
        ),
    )
    interval_minutes: int = Field(15, ge=1, le=1440)
    serial: str = ""
    device_ref: str = Field(
        "", max_length=64, description="the meter's id in its gateway's payloads (channel, emdata:0, device_id)"
    )
    replacements: list[MeterReplacement] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unit_fits_carrier(self) -> Meter:
        unit = normalize_unit(self.unit)
        if dimension_of(unit) not in _CARRIER_DIMENSION[self.carrier]:
            raise ValueError(f"unit {unit!r} does not measure {self.carrier.value}")
        if not self.registers:
            object.__setattr__(self, "registers", list(_DEFAULT_REGISTERS[self.carrier]))
        object.__setattr__(self, "unit", unit)
        times = [r.at for r in self.replacements]
        if times != sorted(times):
            raise ValueError("replacements must be in time order")
        if self.max_value is not None and self.rollover_at is not None and self.max_value > self.rollover_at:
            raise ValueError(
                f"max_value {self.max_value} is above rollover_at {self.rollover_at}, where the register wraps"
            )
        return self

    # A register without rollover has this upper bound unless max_value says otherwise: a 12-digit
    # register (999,999,999,999 kWh is ~100 years of a 1 GW plant); a larger reading is a fault, and
    # 1e308 would overflow to infinity once multiplied.
    DEFAULT_MAX_VALUE: ClassVar[float] = 1e12

    @property
    def max_register(self) -> float | None:
        """The largest plausible register (before the multiplier), or None where ``rollover_at`` bounds it
        (a register at or above its modulus is refused as such)."""
        if self.max_value is not None:
            return self.max_value
        return None if self.rollover_at is not None else self.DEFAULT_MAX_VALUE

    def multiplier_at(self, when: datetime) -> float:
        """The multiplier in force at ``when`` (a replacement may bring a new CT/PT ratio)."""
        value = self.multiplier
        for change in self.replacements:
            if change.at <= when and change.new_multiplier is not None:
                value = change.new_multiplier
        return value


class Registry(_Model):
    version: str = Field(min_length=1)
    park: Park
    enterprises: list[Enterprise]
    workshops: list[Workshop] = Field(default_factory=list)
    gateways: list[Gateway]
    meters: list[Meter]

    @cached_property
    def enterprise_by_id(self) -> dict[str, Enterprise]:
        return {e.id: e for e in self.enterprises}

    @cached_property
    def workshop_by_id(self) -> dict[str, Workshop]:
        return {w.id: w for w in self.workshops}

    @cached_property
    def gateway_by_id(self) -> dict[str, Gateway]:
        return {g.id: g for g in self.gateways}

    @cached_property
    def meter_by_id(self) -> dict[str, Meter]:
        return {m.id: m for m in self.meters}

    def meters_of_gateway(self, gateway_id: str) -> list[Meter]:
        return [m for m in self.meters if m.gateway == gateway_id]

    @cached_property
    def meter_by_device(self) -> dict[tuple[str, str], Meter]:
        """(gateway, device_ref) → meter; a meter without a device_ref is known by its id."""
        return {(m.gateway, m.device_ref or m.id): m for m in self.meters}

    def cross_check(self) -> list[tuple[str, int, str, str]]:
        """Return (kind, index, field, message) for every inconsistency between entries."""
        problems: list[tuple[str, int, str, str]] = []
        kinds: tuple[tuple[str, Sequence[Enterprise | Workshop | Gateway | Meter]], ...] = (
            ("enterprises", self.enterprises),
            ("workshops", self.workshops),
            ("gateways", self.gateways),
            ("meters", self.meters),
        )
        for kind, items in kinds:
            seen: dict[str, int] = {}
            for index, item in enumerate(items):
                if item.id in seen:
                    problems.append((kind, index, "id", f"duplicate id, first at {kind}[{seen[item.id]}]"))
                seen.setdefault(item.id, index)
        enterprises = self.enterprise_by_id
        for index, ws in enumerate(self.workshops):
            if ws.enterprise not in enterprises:
                problems.append(("workshops", index, "enterprise", f"unknown enterprise {ws.enterprise!r}"))
        for index, gw in enumerate(self.gateways):
            if is_service_account(gw.id):
                reserved = f"{gw.id!r} is reserved for a collector's broker account: rename the gateway"
                problems.append(("gateways", index, "id", reserved))
            if gw.enterprise not in enterprises:
                problems.append(("gateways", index, "enterprise", f"unknown enterprise {gw.enterprise!r}"))
        devices: dict[tuple[str, str], int] = {}
        for index, meter in enumerate(self.meters):
            problems.extend(("meters", index, f, msg) for f, msg in self._meter_problems(meter))
            key = (meter.gateway, meter.device_ref or meter.id)
            if key in devices:
                problems.append(
                    (
                        "meters",
                        index,
                        "device_ref",
                        f"gateway {key[0]!r} already has device {key[1]!r} at meters[{devices[key]}]",
                    )
                )
            devices.setdefault(key, index)
        return problems

    def _meter_problems(self, meter: Meter) -> Iterable[tuple[str, str]]:
        if meter.enterprise not in self.enterprise_by_id:
            yield "enterprise", f"unknown enterprise {meter.enterprise!r}"
        gateway = self.gateway_by_id.get(meter.gateway)
        if gateway is None:
            yield "gateway", f"unknown gateway {meter.gateway!r}"
        elif gateway.enterprise != meter.enterprise:
            yield (
                "gateway",
                f"gateway {gateway.id!r} belongs to enterprise {gateway.enterprise!r}, "
                f"not to the meter's enterprise {meter.enterprise!r}",
            )
        if meter.workshop is not None:
            workshop = self.workshop_by_id.get(meter.workshop)
            if workshop is None:
                yield "workshop", f"unknown workshop {meter.workshop!r}"
            elif workshop.enterprise != meter.enterprise:
                yield (
                    "workshop",
                    f"workshop {workshop.id!r} belongs to enterprise {workshop.enterprise!r}, "
                    f"not to the meter's enterprise {meter.enterprise!r}",
                )
        if meter.role is MeterRole.SUB and meter.workshop is None:
            yield "workshop", "a sub-meter needs the workshop it measures"


class RegistryError(ValueError):
    """The registry file is invalid; ``problems`` lists every error, each naming entry and field."""

    def __init__(self, path: Path | str, problems: Sequence[str]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        super().__init__(f"{self.path}: {len(self.problems)} problem(s)\n" + "\n".join(self.problems))


def _entry_label(data: Any, loc: tuple[int | str, ...]) -> tuple[str, str]:
    """Split a pydantic error location into 'meters[3] (id 'E-1')' and the field path."""
    if len(loc) >= 2 and isinstance(loc[0], str) and isinstance(loc[1], int):
        kind, index = loc[0], loc[1]
        entry = f"{kind}[{index}]"
        try:
            entry_id = data[kind][index].get("id")
        except (KeyError, IndexError, TypeError, AttributeError):
            entry_id = None
        if entry_id is not None:
            entry += f" (id {entry_id!r})"
        field = ".".join(str(p) for p in loc[2:]) or "(entry)"
        return entry, field
    return "(top level)", ".".join(str(p) for p in loc) or "(document)"


def parse_registry(data: Any, source: Path | str = "<registry>") -> Registry:
    """Validate an already-parsed registry document; raise :class:`RegistryError` on any problem."""
    try:
        registry = Registry.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            entry, field = _entry_label(data, tuple(err["loc"]))
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{source}: {entry}: {field}: {message}")
        raise RegistryError(source, problems) from None
    cross = registry.cross_check()
    if cross:
        lines = []
        for kind, index, field, message in cross:
            entry, _ = _entry_label(data, (kind, index))
            lines.append(f"{source}: {entry}: {field}: {message}")
        raise RegistryError(source, lines)
    return registry


def _parse_yaml(content: bytes) -> Any:
    return yaml.load(content.decode("utf-8"), Loader=SAFE_LOADER)


def load_registry(path: Path | str) -> Registry:
    """Read and validate the registry YAML at ``path``."""
    path = Path(path)
    try:
        # libyaml's safe loader when PyYAML has it: ten times faster on a park of thousands of meters
        # (the pure-Python one took 1.9 s of a 4 s daily rollup at 2,000 meters); and even that took 6.9 s
        # at 50,000 meters, so a large file's parse is cached under its sha256 (park/registry_cache.py)
        data = cached_document(path.read_bytes(), _parse_yaml)
    except yaml.YAMLError as exc:
        raise RegistryError(path, [f"{path}: not valid YAML: {exc}"]) from None
    return parse_registry(data, path)


_PARKS: dict[tuple[str, int], Park] = {}


def park_of(path: Path | str) -> Park:
    """The park entry of the registry at ``path`` (read once per file version): its time zone and
    metering start, e.g. for a DAG's timetable at parse time."""
    path = Path(path)
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    if key not in _PARKS:
        _PARKS[key] = load_registry(path).park
    return _PARKS[key]


def park_timezone(path: Path | str) -> str:
    """The park's time zone as the registry at ``path`` states it."""
    return park_of(path).timezone
