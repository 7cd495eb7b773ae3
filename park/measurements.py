"""The InfluxDB contract: every measurement, its tags and its fields, spelled once.

Every writer builds its points through :meth:`Measurement.point` (or, on the collector's hot path,
with :attr:`Measurement.name` and the tag and field names listed here), and every reader names the
measurement with :attr:`Measurement.q` in its InfluxQL. ``tests/park/test_measurements.py`` holds
the README's table against this module and checks that no other module spells a measurement name.

Time stamps: readings and statuses at the meter's or gateway's own time; monthly results at local
midnight of the month's first day (the registry's park time zone); annual results at 1 January;
daily results at the local day's midnight; quarantine and collector statistics at receive time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from park.lineprotocol import FieldValue, Point


class ContractError(ValueError):
    """A point with a tag or a field its measurement does not declare."""


@dataclass(frozen=True)
class Measurement:
    name: str
    tags: tuple[str, ...]
    fields: tuple[str, ...]
    stamped: str  # what the point's time is

    @property
    def q(self) -> str:
        """The name as a quoted InfluxQL identifier, for ``FROM`` clauses."""
        return '"' + self.name + '"'

    def point(self, tags: Mapping[str, str], fields: Mapping[str, FieldValue], time_ns: int) -> Point:
        """A point of this measurement; a tag or field the contract does not declare is an error."""
        unknown = (set(tags) - set(self.tags)) | (set(fields) - set(self.fields))
        if unknown:
            raise ContractError(f"{self.name} declares no {sorted(unknown)}")
        return Point(self.name, tags, fields, time_ns)


METER_REGISTER = Measurement(
    "meter_register",
    ("enterprise", "workshop", "meter", "carrier", "register"),
    ("value", "raw_value", "gateway_seq"),
    "the meter's time",
)
QUARANTINE = Measurement(
    "quarantine",
    ("reason", "enterprise", "gateway"),
    ("payload", "payload_bytes", "payload_truncated", "detail", "topic", "meter"),
    "receive time, unique per point",
)
GATEWAY_STATUS = Measurement("gateway_status", ("enterprise", "gateway"), ("online", "state"), "the status's time")
COLLECTOR_STATS = Measurement(
    "collector_stats",
    ("replica",),
    (
        "received",
        "acked",
        "readings_spooled",
        "readings_written",
        "quarantined",
        "queue_depth",
        "spool_depth_bytes",
        "lag_s",
        "write_failures",
        "quarantine_dropped",
        "thread_restarts",
    ),
    "report time",
)
ACTIVITY_MONTHLY = Measurement(
    "activity_monthly",
    ("enterprise", "workshop", "source", "origin"),
    ("quantity", "unit", "completeness"),
    "month start",
)
EMISSIONS_MONTHLY = Measurement(
    "emissions_monthly",
    ("enterprise", "workshop", "scope"),
    ("tco2_location", "tco2_market", "factor_set", "policy_version", "inputs_sha256"),
    "month start",
)
EMISSIONS_BY_SOURCE = Measurement(
    "emissions_by_source",
    ("enterprise", "workshop", "source", "scope"),
    (
        "quantity",
        "unit",
        "factor_location_t_per_unit",
        "factor_market_t_per_unit",
        "factor_source",
        "tco2_location",
        "tco2_market",
        "factor_set",
    ),
    "month start",
)
NEARZERO_EVALUATION = Measurement(
    "nearzero_evaluation",
    ("enterprise", "workshop", "profile", "indicator"),  # enterprise "" and workshop "": the park
    (
        "subject",
        "year",
        "months",
        "provisional",
        "profile_version",
        "name_zh",
        "name_en",
        "unit",
        "comparison",
        "threshold",
        "threshold_text",
        "target_year",
        "value",
        "value_text",
        "status",
        "gap",
        "gap_tco2",
        "action",
        "source",
        "clause",
        "note",
        "factor_set",
    ),
    "month start",
)
_CREDIT_FIELDS = (
    "emissions_tco2",
    "value_added_10k_cny",
    "intensity_t_per_10k_cny",
    "benchmark_t_per_10k_cny",
    "credits_tco2",
    "k_ratio",
    "grade",
    "rating_score",
    "rating",
    "months_covered",
    "provisional",
    "value_added_used_10k_cny",
    "benchmark_scope",
    "note",
    "rating_reasons",
    "factor_set",
    "policy_version",
    "inputs_sha256",
)
CREDITS = Measurement("credits", ("enterprise", "industry"), _CREDIT_FIELDS, "month start (year to date)")
CREDITS_ANNUAL = Measurement("credits_annual", ("enterprise", "industry"), _CREDIT_FIELDS, "1 January (settled)")
NEAR_ZERO_PROGRESS = Measurement(
    "near_zero_progress",
    ("enterprise", "workshop"),
    ("offset_ratio", "target", "required_ratio", "on_track", "status", "emissions_location_tco2", "months"),
    "month start",
)
DATA_QUALITY = Measurement(
    "data_quality",
    ("enterprise", "meter", "register"),
    (
        "completeness",
        "readings",
        "expected",
        "gaps",
        "estimated_intervals",
        "rollovers",
        "resets",
        "replacements",
        "spikes",
        "apportioned",
        "has_start",
    ),
    "month start",
)
MONTH_COVERAGE = Measurement(
    "month_coverage",
    ("enterprise",),
    ("status", "meters", "meters_with_data", "readings"),
    "month start; status is data or no_data: a month without readings is no data, never zeros",
)
LATE_DATA = Measurement(
    "late_data",
    ("enterprise", "meter", "register"),
    ("late_readings", "readings_at_run", "readings_now"),
    "month start",
)
COMPLIANCE = Measurement(
    "compliance",
    ("enterprise",),
    ("due_tco2", "surrendered_tco2", "status", "score", "deadline"),
    "1 January of the obligation's year",
)
METER_QUALITY_DAILY = Measurement(
    "meter_quality_daily",
    ("enterprise", "gateway", "meter", "register"),
    ("readings", "expected", "completeness", "last_seen_age_h", "stale"),
    "day start",
)
GATEWAY_QUALITY_DAILY = Measurement(
    "gateway_quality_daily",
    ("enterprise", "gateway"),
    ("readings", "meters_silent", "announced_online", "offline", "registers", "completeness_sum"),
    "day start",
)
METER_DAILY = Measurement(
    "meter_daily",
    ("enterprise", "meter", "register"),
    (
        "quantity",
        "unit",
        "readings",
        "expected",
        "gaps",
        "estimated_intervals",
        "rollovers",
        "resets",
        "replacements",
        "spikes",
        "apportioned",
        "has_start",
        "rules_sha256",
    ),
    "day start; quantity is the day's share, the flags of a pair of readings are on the day it ends",
)

ALL: tuple[Measurement, ...] = (
    METER_REGISTER,
    QUARANTINE,
    GATEWAY_STATUS,
    COLLECTOR_STATS,
    ACTIVITY_MONTHLY,
    EMISSIONS_MONTHLY,
    EMISSIONS_BY_SOURCE,
    CREDITS,
    NEAR_ZERO_PROGRESS,
    NEARZERO_EVALUATION,
    DATA_QUALITY,
    MONTH_COVERAGE,
    LATE_DATA,
    CREDITS_ANNUAL,
    COMPLIANCE,
    METER_QUALITY_DAILY,
    GATEWAY_QUALITY_DAILY,
    METER_DAILY,
)
# The monthly results the report and the demo read back, in the order the report files list them.
MONTHLY_RESULTS: tuple[Measurement, ...] = (
    MONTH_COVERAGE,
    ACTIVITY_MONTHLY,
    EMISSIONS_MONTHLY,
    EMISSIONS_BY_SOURCE,
    CREDITS,
    NEAR_ZERO_PROGRESS,
    NEARZERO_EVALUATION,
    DATA_QUALITY,
)
