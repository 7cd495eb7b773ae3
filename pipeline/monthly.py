"""Task bodies of the ``carbon_monthly`` DAG. Each reads its inputs from InfluxDB (and the manual
data files), computes with :mod:`scoring`, and replaces exactly its month's points, so re-running
a month (Airflow clear) gives the same result as the first run, plus any late data.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from ledger.manual import ApprovedManual, read_approved
from ledger.settlement import compliance_scores
from park.lineprotocol import FieldValue, Point
from park.measurements import (
    ACTIVITY_MONTHLY,
    CREDITS,
    DATA_QUALITY,
    EMISSIONS_BY_SOURCE,
    EMISSIONS_MONTHLY,
    LATE_DATA,
    METER_REGISTER,
    MONTH_COVERAGE,
    NEAR_ZERO_PROGRESS,
    NEARZERO_EVALUATION,
    Measurement,
)
from park.month import Month, rfc3339
from park.registry import Meter, Registry
from park.settings import Settings
from park.store import InfluxStore, quote_literal
from pipeline.checks import WrongInputError, check_month
from pipeline.daily import CHUNK_METERS, MARGIN, month_consumption
from pipeline.groups import delete_enterprises, enterprise_groups, enterprises_at, replace_enterprises
from pipeline.nearzero import evaluation_points
from pipeline.registry_source import enterprises_table, registry_of_day, registry_of_period
from scoring.activity import QUALITY_COLUMNS, activity_from_meters
from scoring.credits import CREDIT_COLUMNS, EXTRA_CREDIT_COLUMNS, base_year_of
from scoring.engine import ScoreResult, score
from scoring.factors import FactorSet, factor_set
from scoring.inputs import InputError, RowError, read_activity
from scoring.policy import Policy, load_policy
from scoring.profiles import Facts, FactsError, load_facts
from scoring.registers import WindowConsumption

LOG = logging.getLogger("parkcarbon.pipeline")
PLATFORM = "platform submission"  # the name that rows approved on the platform have in errors and notes
Series = dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]
QUALITY_FIELDS = [c for c in QUALITY_COLUMNS if c in DATA_QUALITY.fields]
CREDIT_FIELDS = [
    c
    for c in (*CREDIT_COLUMNS, *EXTRA_CREDIT_COLUMNS, "factor_set", "policy_version", "inputs_sha256")
    if c in CREDITS.fields
]


def _meter_filter(meter_ids: Sequence[str]) -> str:
    """An InfluxQL condition selecting the series of these meters (tag equality uses the index)."""
    return "(" + " OR ".join(f'"meter" = {quote_literal(m)}' for m in meter_ids) + ")"


def read_registers(store: InfluxStore, month: Month, meter_ids: Sequence[str] | None = None) -> Series:
    """Each meter register's readings in the month, plus the last before it and the first after it,
    in one request of three statements (what the monthly step read before daily rollups; the
    benchmark times InfluxDB answering it).

    ``meter_ids`` limits the read to those meters (all meters when None).
    """
    start, end = rfc3339(month.start), rfc3339(month.end)
    only = f" AND {_meter_filter(meter_ids)}" if meter_ids else ""
    queries = [
        f"SELECT \"raw_value\" FROM {METER_REGISTER.q} WHERE time >= '{start}' AND time <= '{end}'{only} "
        'GROUP BY "meter", "register"',
        f'SELECT LAST("raw_value") AS "raw_value" FROM {METER_REGISTER.q} WHERE time < \'{start}\' '
        f'AND time >= \'{rfc3339(month.start - MARGIN)}\'{only} GROUP BY "meter", "register"',
        f'SELECT FIRST("raw_value") AS "raw_value" FROM {METER_REGISTER.q} WHERE time > \'{end}\' '
        f'AND time <= \'{rfc3339(month.end + MARGIN)}\'{only} GROUP BY "meter", "register"',
    ]
    frames = [store.query(q) for q in queries]
    frames = [f for f in frames if len(f)]
    if not frames:
        return {}
    data = pd.concat(frames, ignore_index=True).sort_values(["meter", "register", "time"])
    data = data.drop_duplicates(["meter", "register", "time"])
    times = data["time"].dt.as_unit("ns").astype("int64").to_numpy()  # ns since the epoch (pandas 3 defaults to us)
    series: Series = {}
    for (meter, register), index in data.groupby(["meter", "register"], sort=True).indices.items():
        series[(str(meter), str(register))] = (times[index], data["raw_value"].to_numpy(dtype=float)[index])
    return series


def meter_consumption(
    registry: Registry, store: InfluxStore, month: Month, chunk_meters: int = CHUNK_METERS
) -> dict[tuple[str, str], WindowConsumption]:
    """Every registry meter register's consumption in the month (zero and 0 % complete if silent),
    summed from its days: the days rolled up in ``METER_DAILY``, the others from raw readings
    (:func:`pipeline.daily.month_consumption`); the same figures, bit for bit, whichever days are
    rolled up, and the same rules as :func:`scoring.registers.meter_window` over the month.

    Meters are taken ``chunk_meters`` at a time, so memory depends on the chunk, not on the size of
    the park; only each register's result is kept.
    """
    return month_consumption_counted(registry, store, month, chunk_meters)[0]


def month_consumption_counted(
    registry: Registry,
    store: InfluxStore,
    month: Month,
    chunk_meters: int = CHUNK_METERS,
    meters: Sequence[Meter] | None = None,
) -> tuple[dict[tuple[str, str], WindowConsumption], int]:
    """:func:`meter_consumption` of ``meters`` (default: every registry meter), and how many
    register-days came from rollups."""
    result: dict[tuple[str, str], WindowConsumption] = {}
    from_rollups = 0
    meters = registry.meters if meters is None else meters
    for first in range(0, len(meters), chunk_meters):
        part, rolled = month_consumption(registry, store, month, meters[first : first + chunk_meters])
        result |= part
        from_rollups += rolled
    return result, from_rollups


def _fields(row: Mapping[str, object], names: Iterable[str]) -> dict[str, FieldValue]:
    """Finite numbers and non-empty texts of ``row``; NaN and missing values are left out."""
    fields: dict[str, FieldValue] = {}
    for name in names:
        value = row.get(name)
        if value is None or value is pd.NA or value is pd.NaT:
            continue
        if isinstance(value, bool | np.bool_):
            fields[name] = bool(value)
        elif isinstance(value, int | np.integer | float | np.floating):
            if math.isfinite(float(value)):
                fields[name] = float(value)
        elif str(value) != "":
            fields[name] = str(value)
    return fields


def _has_data(window: WindowConsumption) -> bool:
    """Whether two consecutive readings span part of the month, so that some of its consumption is
    known: two readings inside it, one inside with one before, or a pair around it apportioned to it.
    A lone first reading at the month's last instant measures nothing yet."""
    return window.readings >= 2 or (window.readings == 1 and window.has_start) or window.apportioned > 0


def coverage_points(
    registry: Registry,
    consumption: Mapping[tuple[str, str], WindowConsumption],
    at_ns: int,
    only: Collection[str] | None = None,
) -> tuple[list[Point], set[str]]:
    """``MONTH_COVERAGE`` per enterprise (of ``only``, when given: one group's), and the enterprises
    with data: an enterprise none of whose meters has a reading in (or around) the month has no data,
    which is not the same as zero."""
    windows_of: dict[str, list[list[WindowConsumption]]] = {
        e.id: [] for e in registry.enterprises if only is None or e.id in only
    }
    for meter in registry.meters:  # per enterprise: each meter's register windows, in one pass
        if meter.enterprise not in windows_of:
            continue
        windows_of[meter.enterprise].append(
            [consumption[(meter.id, r.value)] for r in meter.registers if (meter.id, r.value) in consumption]
        )
    points, with_data = [], set()
    for enterprise in registry.enterprises:
        if enterprise.id not in windows_of:
            continue
        meters = windows_of[enterprise.id]
        meters_with_data = sum(any(_has_data(w) for w in windows) for windows in meters)
        status = "data" if meters_with_data else "no_data"
        if meters_with_data:
            with_data.add(enterprise.id)
        fields: dict[str, FieldValue] = {
            "status": status,
            "meters": float(len(meters)),
            "meters_with_data": float(meters_with_data),
            "readings": float(sum(w.readings for windows in meters for w in windows)),
        }
        points.append(MONTH_COVERAGE.point({"enterprise": enterprise.id}, fields, at_ns))
    return points, with_data


def compute_activity(settings: Settings, period: str) -> dict[str, object]:
    """Registers → per-meter consumption → ``ACTIVITY_MONTHLY``, ``DATA_QUALITY`` and
    ``MONTH_COVERAGE`` of the month. An enterprise without any reading in the month gets no activity
    (its month is recorded as no data, not as zeros).

    The DAG's groups (:func:`month_groups`) one after another, then :func:`finish_activity`, as the
    mapped ``activity`` tasks do: each group's points are written before the next group is read, so
    memory is one group's, flat in the number of meters (the whole park at once held ~11 KB per meter:
    670 MB at 50,000). The same points as any split into groups."""
    registry = registry_of_period(settings, period)
    check_month(registry, Month.of(period, registry.park.timezone))
    groups = [
        compute_group(settings, period, members, registry)
        for members in enterprise_groups(registry, settings.monthly.group_meters)
    ]
    return finish_activity(settings, period, groups, registry)


def month_groups(settings: Settings, period: str) -> list[list[str]]:
    """The month's groups of enterprises (:func:`pipeline.groups.enterprise_groups`, sized by
    ``settings.monthly.group_meters``); a month that has not ended, or lies before the metering start, fails."""
    registry = registry_of_period(settings, period)
    check_month(registry, Month.of(period, registry.park.timezone))
    return enterprise_groups(registry, settings.monthly.group_meters)


def compute_group(
    settings: Settings, period: str, enterprises: Sequence[str], registry: Registry | None = None
) -> dict[str, object]:
    """The month's ``ACTIVITY_MONTHLY``, ``DATA_QUALITY`` and ``MONTH_COVERAGE`` of these whole
    enterprises, replacing exactly their points of the month (the other groups' stay): a group run
    again, after its worker died halfway, writes the same points. Returns the group's summary, which
    :func:`finish_activity` adds up. ``registry``: the month's, when the caller has it already
    (:func:`compute_activity` reads it once for all its groups)."""
    if registry is None:
        registry = registry_of_period(settings, period)
    month = Month.of(period, registry.park.timezone)
    check_month(registry, month)
    members = set(enterprises)
    unknown = sorted(members - set(registry.enterprise_by_id))
    if unknown:
        raise WrongInputError(f"{period}: enterprises not in the registry {settings.registry}: {unknown[:5]}")
    meters = [m for m in registry.meters if m.enterprise in members]
    with InfluxStore(settings.influx) as store:
        store.create_database()
        consumption, from_rollups = month_consumption_counted(registry, store, month, meters=meters)
        activity, quality = activity_from_meters(registry, consumption, period)
        coverage, with_data = coverage_points(registry, consumption, month.start_ns, members)
        activity = activity[activity["enterprise"].isin(with_data)]
        activity_points = [
            ACTIVITY_MONTHLY.point(
                {
                    "enterprise": r["enterprise"],
                    "workshop": r["workshop"],
                    "source": r["source"],
                    "origin": "metered",
                },
                {"quantity": float(r["quantity"])} | _fields(r, ["unit", "completeness"]),
                month.start_ns,
            )
            for r in activity.to_dict("records")
        ]
        quality_points = [
            DATA_QUALITY.point(
                {"enterprise": r["enterprise"], "meter": r["meter"], "register": r["register"]},
                _fields(r, QUALITY_FIELDS),
                month.start_ns,
            )
            for r in quality.to_dict("records")
        ]
        replace_enterprises(store, ACTIVITY_MONTHLY, month.start_ns, members, activity_points)
        _test_pause(settings, members)
        replace_enterprises(store, DATA_QUALITY, month.start_ns, members, quality_points)
        replace_enterprises(store, MONTH_COVERAGE, month.start_ns, members, coverage)
    return {
        "period": period,
        "enterprises": sorted(members),
        "enterprises_with_data": sorted(with_data),
        "meters_with_readings": int(sum(1 for w in consumption.values() if w.readings)),
        "registers": len(consumption),
        "register_days_from_rollups": from_rollups,
        "activity_rows": len(activity),
        "resets": int(quality["resets"].sum()),
        "gaps": int(quality["gaps"].sum()),
    }


def _test_pause(settings: Settings, members: Collection[str]) -> None:
    """The end-to-end test's pause (``settings.monthly.test_pause_s``, 0 in a park): the group is
    halfway written, so a worker killed now leaves it half done for its retry to replace."""
    pause_s, only, flag = (
        settings.monthly.test_pause_s,
        settings.monthly.test_pause_enterprise,
        settings.monthly.test_pause_flag,
    )
    if pause_s > 0 and (only is None or only in members) and (flag is None or flag.exists()):
        LOG.warning("test pause: %.1f s in the group of %s", pause_s, sorted(members)[:3])
        time.sleep(pause_s)


def finish_activity(
    settings: Settings, period: str, groups: Sequence[Mapping[str, object]], registry: Registry | None = None
) -> dict[str, object]:
    """The reduce step after every group: checks that the groups' enterprises are the registry's,
    each once (a group missing, or a registry changed since the groups were listed, fails with the
    difference), removes the month's points of enterprises no longer in the registry, clears the
    month's ``LATE_DATA`` (the groups counted every reading stored so far) and returns the park's summary.
    ``registry``: the month's, when the caller has it already (:func:`compute_activity`)."""
    if registry is None:
        registry = registry_of_period(settings, period)
    month = Month.of(period, registry.park.timezone)
    known = set(registry.enterprise_by_id)
    done = [str(e) for g in groups for e in _strings(g.get("enterprises"))]
    twice = sorted({e for e in done if done.count(e) > 1})
    missing, extra = sorted(known - set(done)), sorted(set(done) - known)
    if twice or missing or extra:
        raise WrongInputError(
            f"{period}: the activity groups do not cover the registry once: missing {missing[:5]}, not in the "
            f"registry {extra[:5]}, twice {twice[:5]}; run the month again"
        )
    with_data = {str(e) for g in groups for e in _strings(g.get("enterprises_with_data"))}
    with InfluxStore(settings.influx) as store:
        for measurement in (ACTIVITY_MONTHLY, DATA_QUALITY, MONTH_COVERAGE):
            stale = enterprises_at(store, measurement, month.start_ns) - known
            if stale:
                delete_enterprises(store, measurement, month.start_ns, stale)
        covered = enterprises_at(store, MONTH_COVERAGE, month.start_ns)
        if covered != known:
            raise RuntimeError(
                f"{period}: {MONTH_COVERAGE.name} lacks {sorted(known - covered)[:5]} after every group finished"
            )
        store.replace_at(LATE_DATA, month.start_ns, [])  # this run counted every reading stored so far

    def total(key: str) -> int:
        return sum(int(str(g.get(key, 0))) for g in groups)

    return {
        "period": period,
        "status": "data" if with_data else "no_data",
        "groups": len(groups),
        "enterprises_without_data": sorted(known - with_data),
        "meters_with_readings": total("meters_with_readings"),
        "registers": total("registers"),
        "register_days_from_rollups": total("register_days_from_rollups"),
        "activity_rows": total("activity_rows"),
        "resets": total("resets"),
        "gaps": total("gaps"),
    }


def _strings(value: object) -> list[str]:
    """A list of names from a group's summary (an XCom: JSON lists)."""
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def first_activity_year(store: InfluxStore, timezone: str) -> int | None:
    """The year of the earliest metered activity in the store."""
    frame = store.query(f'SELECT FIRST("quantity") FROM {ACTIVITY_MONTHLY.q}')
    if frame.empty:
        return None
    return int(frame["time"].iloc[0].tz_convert(timezone).year)


def read_activity_between(store: InfluxStore, first: Month, last: Month) -> pd.DataFrame:
    """Metered activity of the months from ``first`` to ``last``, both included."""
    frame = store.query(
        f'SELECT "quantity", "unit" FROM {ACTIVITY_MONTHLY.q} '
        f"WHERE time >= '{rfc3339(first.start)}' AND time <= '{rfc3339(last.start)}' "
        'GROUP BY "enterprise", "workshop", "source"'
    )
    if frame.empty:
        return pd.DataFrame(columns=["enterprise", "workshop", "period", "source", "quantity", "unit"])
    if "workshop" not in frame:
        frame["workshop"] = ""
    return pd.DataFrame(
        {
            "enterprise": frame["enterprise"],
            "workshop": frame["workshop"].fillna(""),
            "period": frame["time"].dt.tz_convert(str(last.start.tzinfo)).dt.strftime("%Y-%m"),
            "source": frame["source"],
            "quantity": frame["quantity"].astype(float),
            "unit": frame["unit"],
        }
    )


def year_completeness(store: InfluxStore, january: Month, month: Month) -> pd.Series | None:
    """Mean completeness of each enterprise's meters over its months with data, January to ``month``
    (the rating's data-quality dimension): a month without data enters no rating."""
    where = f"WHERE time >= {january.start_ns} AND time <= {month.start_ns}"
    quality = store.query(f'SELECT "completeness" FROM {DATA_QUALITY.q} {where} GROUP BY "enterprise", "meter"')
    coverage = store.query(f'SELECT "status" FROM {MONTH_COVERAGE.q} {where} GROUP BY "enterprise"')
    if quality.empty or coverage.empty:
        return None
    with_data = coverage.loc[coverage["status"] == "data", ["enterprise", "time"]]
    quality = quality.merge(with_data, on=["enterprise", "time"])
    return quality.groupby("enterprise")["completeness"].mean() if len(quality) else None


def approved_manual(settings: Settings) -> ApprovedManual | None:
    """What the park office approved on the platform (``ledger/manual.py``, on the ledger's database),
    in the manual-data files' shapes; None for a park without the platform (no database, or one
    without the platform's tables), which keeps its files."""
    if settings.ledger.url is None and not settings.ledger_file.exists():
        return None
    return read_approved(settings.ledger_url)


def read_manual_activity(
    settings: Settings, registry: Registry, metered: pd.DataFrame, m3_to_nm3: float | None
) -> pd.DataFrame:
    """The manual activity: the file's rows (bills, certificates) and the figures approved on the
    platform, an approved figure replacing the file's row for the same enterprise, workshop, month and
    source; checked against the metered activity: a bill for a source and month that is also metered
    is an error, unless the enterprise's registry entry says its bills win for that source
    (``bills_override``); then the metered rows give way."""
    keys = ["enterprise", "workshop", "period", "source"]
    approved = approved_manual(settings)
    platform = approved.activity if approved is not None else pd.DataFrame(columns=[*metered.columns, "_row"])
    if settings.manual_activity is None and not len(platform):
        return metered
    parts = []
    if settings.manual_activity is not None:
        table = read_activity(settings.manual_activity, set(registry.enterprise_by_id), m3_to_nm3)
        if table.errors:
            raise InputError(table.errors)
        from_file = table.frame.assign(_from=settings.manual_activity.name)
        if len(platform) and len(from_file):
            replaced = (
                from_file.merge(platform[keys], on=keys, how="left", indicator=True)["_merge"] == "both"
            ).to_numpy()
            for r in from_file[replaced].to_dict("records"):
                LOG.info(
                    "%s %s of %s in %s: the figure approved on the platform replaces %s row %s",
                    r["source"],
                    r["quantity"],
                    r["enterprise"],
                    r["period"],
                    settings.manual_activity.name,
                    r["_row"],
                )
            from_file = from_file[~replaced]
        parts.append(from_file)
    if len(platform):
        unknown = [
            RowError(
                PLATFORM, int(r["_row"]), "enterprise", f"unknown enterprise {r['enterprise']!r} (not in the registry)"
            )
            for r in platform.to_dict("records")
            if r["enterprise"] not in registry.enterprise_by_id
        ]
        if unknown:
            raise InputError(unknown)
        parts.append(platform.assign(_from=PLATFORM))
    parts = [p for p in parts if len(p)]
    if not parts:
        return metered
    manual = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    both = manual.merge(metered[keys], on=keys)
    overrides = {(e.id, source) for e in registry.enterprises for source in e.bills_override}
    clashes = [
        RowError(
            str(r["_from"]),
            int(r["_row"]),
            "source",
            f"{r['source']} of {r['enterprise']} in {r['period']} is also metered; a bill is never added to the"
            " meters: remove the row, or list the source in the enterprise's bills_override in the registry",
        )
        for r in both.to_dict("records")
        if (r["enterprise"], r["source"]) not in overrides
    ]
    if clashes:
        raise InputError(clashes)
    replaced_metered = metered.merge(both[keys], on=keys, how="left", indicator=True)["_merge"] == "both"
    return pd.concat([metered[~replaced_metered.to_numpy()], manual[metered.columns]], ignore_index=True)


def merge_value_added(
    enterprises: pd.DataFrame, approved: ApprovedManual | None, registry: Registry, file_name: str
) -> tuple[pd.DataFrame, list[str]]:
    """The enterprises file's rows with the value added approved on the platform: an approved figure
    wins over the file's for the same enterprise and year (a year the file lacks is added with the
    registry's name and industry). Each replacement or addition is said in a note."""
    if approved is None or not len(approved.value_added):
        return enterprises, []
    frame = enterprises.copy()
    notes = []
    for r in approved.value_added.to_dict("records"):
        enterprise, year, value = str(r["enterprise"]), int(r["year"]), float(r["value_added_10k_cny"])
        where = (frame["enterprise"] == enterprise) & (frame["year"] == year)
        said = f"value added of {enterprise} in {year}: {value:,.2f} (10k CNY) approved on the platform"
        said += f" ({PLATFORM} {r['_row']})"
        if where.any():
            before = frame.loc[where].iloc[0]
            was = float(before["value_added_10k_cny"])
            notes.append(
                f"{said} replaces {file_name}'s "
                + (f"{was:,.2f}" if math.isfinite(was) else "empty value")
                + f" (row {before['_row']})"
            )
            frame.loc[where, "value_added_10k_cny"] = value
            continue
        known = registry.enterprise_by_id.get(enterprise)
        if known is None:
            raise InputError([RowError(PLATFORM, int(r["_row"]), "enterprise", f"unknown enterprise {enterprise!r}")])
        notes.append(f"{said}; {file_name} has no row for it")
        row = pd.DataFrame(
            [
                {
                    "enterprise": enterprise,
                    "name": known.name,
                    "industry": known.industry,
                    "year": year,
                    "value_added_10k_cny": value,
                    "_row": 0,
                }
            ],
            columns=frame.columns,
        ).astype(frame.dtypes.to_dict())
        frame = pd.concat([frame, row], ignore_index=True) if len(frame) else row
    return frame, notes


# What compute_scores writes for a month (a month without data removes them all).
SCORED = (EMISSIONS_MONTHLY, EMISSIONS_BY_SOURCE, CREDITS, NEAR_ZERO_PROGRESS, NEARZERO_EVALUATION)


@dataclass(frozen=True)
class ScoreInputs:
    """What scoring reads besides the activity: read once per run."""

    registry: Registry
    policy: Policy
    factors: FactorSet
    enterprises: pd.DataFrame  # enterprise, year, value added …
    facts: Facts  # reviewed manual facts (settings.facts), empty without a file
    notes: tuple[str, ...] = ()  # what was decided in reading them (value added approved on the platform)


def score_inputs(settings: Settings, period: str | None = None) -> ScoreInputs:
    """What scoring month ``period`` reads: the registry of that month (the file, or the database's as of
    the month: pipeline/registry_source.py; None: today's), value added, policy, factors and facts."""
    firms = enterprises_table(settings)
    if firms.errors:
        raise InputError(firms.errors)
    try:
        facts = load_facts(settings.facts) if settings.facts is not None else Facts()
    except (FactsError, OSError) as exc:
        raise WrongInputError(f"facts file: {exc}") from None
    registry = registry_of_period(settings, period) if period else registry_of_day(settings, date.today())
    enterprises, notes = merge_value_added(firms.frame, approved_manual(settings), registry, settings.enterprises.name)
    return ScoreInputs(
        registry,
        load_policy(settings.policy),
        factor_set(settings.factor_set),
        enterprises,
        facts,
        tuple(notes),
    )


def score_through(
    settings: Settings, store: InfluxStore, month: Month, inputs: ScoreInputs | None = None
) -> ScoreResult | None:
    """Score the year of ``month`` with the activity (metered + manual) up to and including it; None
    when the park has no data for ``month`` (a month without data writes no results)."""
    inputs = inputs or score_inputs(settings, month.period)
    registry, policy, factors, enterprises = inputs.registry, inputs.policy, inputs.factors, inputs.enterprises
    timezone = registry.park.timezone
    # All activity from the first year with data: the base year's, last year's and this year's.
    first = Month.of(f"{min(first_activity_year(store, timezone) or month.year, month.year - 1)}-01", timezone)
    activity = read_manual_activity(
        settings, registry, read_activity_between(store, first, month), policy.gas_m3_to_nm3
    )
    activity = activity[(activity["period"] >= first.period) & (activity["period"] <= month.period)]
    if not (activity["period"] == month.period).any():
        return None
    base_year = base_year_of(activity, enterprises, policy.base_year)
    if base_year is None:
        raise WrongInputError(
            f"no year up to {month.period} has both activity data and value added for an enterprise: no base "
            f"year (value added comes from {settings.enterprises.name})"
        )
    completeness = year_completeness(store, Month.of(f"{month.year}-01", timezone), month)
    # Compliance with last year's obligation, as the ledger knows it at the month's end.
    compliance = compliance_scores(settings, timezone, month.year - 1, month.end.date())
    targets = {w.id: w.near_zero for w in registry.workshops if w.near_zero is not None}
    try:
        return score(
            activity,
            enterprises,
            month.year,
            factors,
            policy,
            base_year,
            completeness=completeness,
            compliance_score=compliance,
            targets=targets,
            facts=inputs.facts,
        )
    except ValueError as exc:  # a year before the base year, a base year without data
        raise WrongInputError(f"{month.period}: {exc}") from None


def credit_points(result: ScoreResult, measurement: Measurement, at_ns: int) -> list[Point]:
    return [
        measurement.point(
            {"enterprise": r["enterprise"], "industry": r["industry"]},
            _fields(r, CREDIT_FIELDS),
            at_ns,
        )
        for r in result.credits.to_dict("records")
    ]


def compute_scores(settings: Settings, period: str) -> dict[str, object]:
    """Activity (metered + manual) → ``EMISSIONS_MONTHLY`` (and its lines, ``EMISSIONS_BY_SOURCE``),
    year-to-date ``CREDITS``, ``NEAR_ZERO_PROGRESS`` and the registry's near-zero profiles
    (``NEARZERO_EVALUATION``, :mod:`pipeline.nearzero`).

    A month in which the park has no data writes none of them (and removes what an earlier run wrote).
    """
    inputs = score_inputs(settings, period)
    month = Month.of(period, inputs.registry.park.timezone)
    with InfluxStore(settings.influx) as store:
        result = score_through(settings, store, month, inputs)
        if result is None:
            for measurement in SCORED:
                store.replace_at(measurement, month.start_ns, [])
            return {"period": period, "status": "no_data", "enterprises": 0, "notes": list(inputs.notes)}
        emissions = result.emissions[result.emissions["period"] == period]
        emission_points = []
        for r in emissions.to_dict("records"):
            tags = {"enterprise": r["enterprise"], "workshop": r["workshop"]}
            meta = _fields(r, ["factor_set", "policy_version", "inputs_sha256"])
            for scope, location, market in (
                ("scope1", r["scope1_tco2"], r["scope1_tco2"]),
                ("scope2", r["scope2_location_tco2"], r["scope2_market_tco2"]),
                ("total", r["total_location_tco2"], r["total_market_tco2"]),
            ):
                emission_points.append(
                    EMISSIONS_MONTHLY.point(
                        tags | {"scope": scope},
                        {"tco2_location": float(location), "tco2_market": float(market)} | meta,
                        month.start_ns,
                    )
                )
        source_points = [
            EMISSIONS_BY_SOURCE.point(
                {"enterprise": r["enterprise"], "workshop": r["workshop"], "source": r["source"], "scope": r["scope"]},
                _fields(r, list(EMISSIONS_BY_SOURCE.fields)),
                month.start_ns,
            )
            for r in result.by_source[result.by_source["period"] == period].to_dict("records")
        ]
        progress_points = [
            NEAR_ZERO_PROGRESS.point(
                {"enterprise": r["enterprise"], "workshop": r["workshop"]},
                _fields(
                    r,
                    [
                        "offset_ratio",
                        "target",
                        "required_ratio",
                        "on_track",
                        "status",
                        "emissions_location_tco2",
                        "months",
                    ],
                ),
                month.start_ns,
            )
            for r in result.near_zero.to_dict("records")
        ]
        store.replace_at(EMISSIONS_MONTHLY, month.start_ns, emission_points)
        store.replace_at(EMISSIONS_BY_SOURCE, month.start_ns, source_points)
        store.replace_at(CREDITS, month.start_ns, credit_points(result, CREDITS, month.start_ns))
        store.replace_at(NEAR_ZERO_PROGRESS, month.start_ns, progress_points)
        evaluated = evaluation_points(
            inputs.registry, result.emissions, inputs.enterprises, inputs.factors, inputs.facts, month
        )
        store.replace_at(NEARZERO_EVALUATION, month.start_ns, evaluated)
    return {
        "period": period,
        "status": "data",
        "enterprises": len(result.credits),
        "base_year": result.base_year,
        "factor_set": str(result.credits["factor_set"].iloc[0]) if len(result.credits) else settings.factor_set,
        "policy": str(result.credits["policy_version"].iloc[0]) if len(result.credits) else "",
        "notes": list(inputs.notes),  # e.g. value added approved on the platform winning over the file
    }
