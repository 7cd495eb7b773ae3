"""Every read and write the platform does, bound to one :class:`portal.scope.Scope`.

Routes get a :class:`View` (``portal.app``'s one dependency for data) and nothing else: no engine, no
InfluxDB store, no path. Each method that takes an enterprise id resolves it through the scope first
(404 for an enterprise the person may not see), each InfluxDB query is restricted to the scope's
enterprises with a bind parameter, and each frame is filtered by the scope before it leaves.
Downloads and the park office's reads of an enterprise's pages are written to the audit log.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import Engine, desc, select

from ledger.amounts import t_to_kg
from ledger.book import Booked, Ledger
from ledger.errors import LedgerError, UnknownEnterpriseError
from ledger.results import current_version
from park.measurements import (
    ACTIVITY_MONTHLY,
    CREDITS,
    CREDITS_ANNUAL,
    DATA_QUALITY,
    EMISSIONS_BY_SOURCE,
    EMISSIONS_MONTHLY,
    GATEWAY_QUALITY_DAILY,
    MONTH_COVERAGE,
    NEAR_ZERO_PROGRESS,
    NEARZERO_EVALUATION,
    Measurement,
)
from park.month import Month
from park.registry import ParkTarget
from park.store import InfluxStore
from portal import auth, consent, gateways, offers, workflow
from portal.audit import Actor, record
from portal.cache import ResultsCache
from portal.config import PlatformSettings
from portal.schema import BANK_ROLE, ENTERPRISE_ROLES, ROLES, audit_log
from portal.scope import ForbiddenError, NotFoundError, Scope
from reports.credit import CreditInputs, MonthPoint

PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
SCOPES = (("scope1", "Scope 1 范围一"), ("scope2", "Scope 2 范围二"), ("total", "Total 合计"))


def _float(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return number


def _plain(value: object) -> object:
    """A cell as a template or JSON wants it: NaN and pandas' missing values as None, numpy as Python."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts of plain values (a dict per row, built directly: pandas' own conversions cost more
    than the page's queries)."""
    if not len(frame):
        return []
    columns = list(frame.columns)
    return [
        {c: _plain(v) for c, v in zip(columns, row, strict=True)}
        for row in zip(*(frame[c].tolist() for c in columns), strict=True)
    ]


@dataclass
class Backend:
    """What a :class:`View` reads and writes through; made once by the application."""

    store: InfluxStore
    reader: Engine  # read-only transactions
    writer: Engine
    reports_dir: Path
    security: PlatformSettings
    timezone: str
    results: ResultsCache[tuple[str, str | None], EnterpriseResults]
    credit_validity_years: int | None = None  # the policy's banking validity, for what the platform books


@dataclass(frozen=True)
class EnterpriseResults:
    """What InfluxDB says about one enterprise's month (credits are year to date); cached by period."""

    period: str | None
    periods: list[str]
    has_data: bool | None
    credit: dict[str, Any] | None
    industry_mean: float
    emissions_month: dict[str, tuple[float, float]]  # scope → (location, market)
    emissions_ytd: dict[str, float]
    trend: dict[str, Any]
    activity: list[dict[str, Any]]
    workshops: list[dict[str, Any]]
    near_zero: list[dict[str, Any]]
    quality: list[dict[str, Any]]
    by_source: list[dict[str, Any]]  # the month's emission lines: source, quantity, factor, tonnes
    nearzero: list[dict[str, Any]]  # the year to date against the registry's near-zero profiles

    @classmethod
    def nothing(cls) -> EnterpriseResults:
        """An enterprise without any credits yet."""
        return cls(None, [], None, None, math.nan, {}, {}, {"periods": [], "series": {}}, [], [], [], [], [], [])


@dataclass(frozen=True)
class EnterpriseMonth(EnterpriseResults):
    """Everything on an enterprise's page for one month: its results and its ledger, read now."""

    enterprise_id: str
    name: str
    industry: str
    holdings: list[dict[str, Any]]
    statement: list[dict[str, Any]]
    reports: list[str]


@dataclass(frozen=True)
class TargetProgress:
    """The park's year to date against its cap for the year (``park.targets`` in the registry)."""

    year: int
    cap_t: float
    source: str
    months: int  # January to the month shown
    ytd_t: float
    cap_to_date_t: float  # the cap pro rata: cap × months / 12
    projected_t: float  # the year at this pace: year to date / months × 12
    remaining_t: float  # cap − year to date (negative: the cap is spent)
    monthly_allowance_t: float | None  # what each month left may emit to stay within; None in December

    @property
    def within(self) -> bool:
        return self.projected_t <= self.cap_t


def target_progress(target: ParkTarget | None, ytd_t: float, months: int) -> TargetProgress | None:
    """``ytd_t`` (January to month ``months``) against ``target``; None without a target for the year.

    >>> p = target_progress(ParkTarget(year=2026, emissions_cap_tco2=1200, source="x"), 330.0, 3)
    >>> (p.cap_to_date_t, p.projected_t, p.remaining_t, p.monthly_allowance_t, p.within)
    (300.0, 1320.0, 870.0, 96.66666666666667, False)
    """
    if target is None:
        return None
    if not 1 <= months <= 12:
        raise ValueError(f"months must be 1 to 12, not {months}")
    cap = target.emissions_cap_tco2
    remaining = cap - ytd_t
    return TargetProgress(
        year=target.year,
        cap_t=cap,
        source=target.source,
        months=months,
        ytd_t=ytd_t,
        cap_to_date_t=cap * months / 12,
        projected_t=ytd_t / months * 12,
        remaining_t=remaining,
        monthly_allowance_t=remaining / (12 - months) if months < 12 else None,
    )


@dataclass
class ParkMonth:
    period: str | None
    periods: list[str]
    enterprises: list[dict[str, Any]]
    industries: list[dict[str, Any]]
    grades: dict[str, int]
    total_month_t: float
    total_ytd_t: float
    credits_total_t: float
    quality: list[dict[str, Any]]
    ledger: list[dict[str, Any]]
    without_results: list[str] = field(default_factory=list)
    gateways: list[dict[str, Any]] = field(default_factory=list)
    target: TargetProgress | None = None
    nearzero: list[dict[str, Any]] = field(default_factory=list)  # the park against its park-level profiles


class View:
    """The data one person may see and the changes one person may make."""

    def __init__(self, backend: Backend, scope: Scope, actor: Actor) -> None:
        self._b = backend
        self.scope = scope
        self.actor = actor

    # -- InfluxDB -------------------------------------------------------------------------------------

    def _read(self, measurement: Measurement, enterprise_id: str | None, where: str = "") -> pd.DataFrame:
        """Points of ``measurement`` of one enterprise (resolved through the scope) or of every enterprise
        in scope, with ``period`` (the park's YYYY-MM of each point's time)."""
        return self._read_many([(measurement, where)], enterprise_id)[0]

    def _read_many(self, wanted: list[tuple[Measurement, str]], enterprise_id: str | None) -> list[pd.DataFrame]:
        """:meth:`_read` of each (measurement, condition) in one request to InfluxDB."""
        params: dict[str, str] = {}
        restrict = []
        if enterprise_id is not None:
            self.scope.enterprise(enterprise_id)
            restrict.append('"enterprise" = $enterprise')
            params["enterprise"] = enterprise_id
        elif not self.scope.is_park:
            raise ForbiddenError("an enterprise's person reads its own enterprise's data only")
        statements = []
        for measurement, where in wanted:
            clauses = [where, *restrict] if where else restrict
            statements.append(f"SELECT * FROM {measurement.q}" + (" WHERE " + " AND ".join(clauses) if clauses else ""))
        frames = self._b.store.query_many(statements, params or None)
        return [self._shaped(m, self.scope.rows(f)) for (m, _), f in zip(wanted, frames, strict=True)]

    def _shaped(self, measurement: Measurement, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with ``period`` and every tag of ``measurement`` as a column ("" where missing)."""
        if len(frame):
            periods = {t: t.tz_convert(self._b.timezone).strftime("%Y-%m") for t in frame["time"].unique()}
            frame["period"] = frame["time"].map(periods)
            for tag in measurement.tags:  # InfluxDB keeps no empty tag value: a missing tag is ""
                frame[tag] = frame[tag].fillna("") if tag in frame else ""
        return frame

    def _month(self, period: str) -> Month:
        if not PERIOD.match(period):
            raise NotFoundError(period)
        return Month.of(period, self._b.timezone)

    def _rows_many(self, wanted: list[tuple[Measurement, str]], enterprise_id: str) -> list[list[dict[str, Any]]]:
        """Like :meth:`_read_many` for one enterprise's page, without pandas: per (measurement, condition),
        its points as dicts with ``time`` (ns), ``period`` and every tag ("" where missing)."""
        self.scope.enterprise(enterprise_id)
        return self._enterprise_rows(wanted, enterprise_id, self.scope.enterprise_ids)

    def _enterprise_rows(
        self, wanted: list[tuple[Measurement, str]], enterprise_id: str, allowed: Collection[str]
    ) -> list[list[dict[str, Any]]]:
        """The points of ``enterprise_id`` per (measurement, condition); rows of an enterprise not in
        ``allowed`` are dropped behind the query's own filter."""
        statements = [
            f"SELECT * FROM {m.q} WHERE " + " AND ".join([*([where] if where else []), '"enterprise" = $enterprise'])
            for m, where in wanted
        ]
        periods: dict[int, str] = {}
        out = []
        for (measurement, _), rows in zip(
            wanted, self._b.store.query_rows_many(statements, {"enterprise": enterprise_id}), strict=True
        ):
            kept = [r for r in rows if r.get("enterprise") in allowed]
            for row in kept:
                at = row["time"]
                if at not in periods:
                    periods[at] = pd.Timestamp(at, unit="ns", tz="UTC").tz_convert(self._b.timezone).strftime("%Y-%m")
                row["period"] = periods[at]
                for tag in measurement.tags:  # InfluxDB keeps no empty tag value: a missing tag is ""
                    if row.get(tag) is None:
                        row[tag] = ""
            out.append(kept)
        return out

    def _year_condition(self, year: int) -> str:
        january = Month.of(f"{year:04d}-01", self._b.timezone)
        return f"time >= {january.start_ns} AND time < {Month.of(f'{year:04d}-12', self._b.timezone).end_ns}"

    def trend(self, enterprise_id: str, year: int | None = None) -> dict[str, Any]:
        """Per month of ``year`` (default: the latest with results): emissions by scope and the
        year-to-date credits; the enterprise's chart data."""
        if year is None:
            (credits,) = self._rows_many([(CREDITS, "")], enterprise_id)
            year = int(max(r["period"] for r in credits)[:4]) if credits else datetime.now(UTC).year
        credits, emissions = self._rows_many(
            [(CREDITS, self._year_condition(year)), (EMISSIONS_MONTHLY, self._year_condition(year))], enterprise_id
        )
        return _trend(enterprise_id, year, credits, emissions)

    def enterprise_month(self, enterprise_id: str, period: str | None = None) -> EnterpriseMonth:
        """The enterprise's page: its results (from InfluxDB, kept by the backend's results cache for at
        most ``results_ttl_s``) and, always read afresh, its ledger holdings, statement and reports."""
        enterprise = self.scope.enterprise(enterprise_id)
        if period is not None and not PERIOD.match(period):
            raise NotFoundError(period)
        results = self._b.results.get((enterprise.id, period))
        if results is None:
            results = self._enterprise_results(enterprise.id, period)
            self._b.results.put((enterprise.id, period), results)
        period = results.period
        if self.scope.is_park:
            self._audit("view", f"enterprise:{enterprise_id}", to_value=f"page {period or '-'}")
        return EnterpriseMonth(
            enterprise_id=enterprise.id,
            name=enterprise.name,
            industry=enterprise.industry,
            **vars(results),
            holdings=_records(self.holdings(enterprise_id)),
            statement=_records(self.statement(enterprise_id, int(period[:4]) if period else None)),
            reports=self.report_periods(enterprise_id),
        )

    def _enterprise_results(self, enterprise_id: str, period: str | None) -> EnterpriseResults:
        """What InfluxDB holds for the enterprise's page of ``period`` (default: its latest month):
        one request to InfluxDB (two without a period), shaped without pandas."""
        credits: list[dict[str, Any]] | None = None
        if period is None:  # the latest month with credits
            (credits,) = self._rows_many([(CREDITS, "")], enterprise_id)
            period = max((r["period"] for r in credits), default=None)
        if period is None:
            return EnterpriseResults.nothing()
        month = self._month(period)
        at = f"time = {month.start_ns}"
        reads = [
            (CREDITS, ""),
            (EMISSIONS_MONTHLY, self._year_condition(month.year)),
            (MONTH_COVERAGE, at),
            (ACTIVITY_MONTHLY, at),
            (NEAR_ZERO_PROGRESS, at),
            (DATA_QUALITY, at),
            (EMISSIONS_BY_SOURCE, at),
            (NEARZERO_EVALUATION, at),
        ]
        found = self._rows_many(reads if credits is None else reads[1:], enterprise_id)
        if credits is None:
            credits = found.pop(0)
        year_emissions, coverage, activity, near_zero, quality, by_source, nearzero = found
        credit = next((_without_time(r) for r in credits if r["period"] == period), None)
        industry_mean = math.nan
        if credit is not None:
            intensity, k = _float(credit.get("intensity_t_per_10k_cny")), _float(credit.get("k_ratio"))
            industry_mean = intensity / k if math.isfinite(intensity) and math.isfinite(k) and k else math.nan
        year = f"{month.year:04d}-"
        trend = _trend(enterprise_id, month.year, [r for r in credits if r["period"].startswith(year)], year_emissions)
        own = [r for r in year_emissions if r["workshop"] == "" and r["period"] <= period]
        months: dict[str, tuple[float, float]] = {}
        ytd: dict[str, float] = {}
        for scope, _name in SCOPES:
            this = [r for r in own if r["scope"] == scope and r["period"] == period]
            if this:
                months[scope] = (_sum(r["tco2_location"] for r in this), _sum(r["tco2_market"] for r in this))
            if own:
                ytd[scope] = _sum(r["tco2_location"] for r in own if r["scope"] == scope)
        workshops = [
            r for r in year_emissions if r["workshop"] != "" and r["period"] == period and r["scope"] == "total"
        ]
        return EnterpriseResults(
            period=period,
            periods=sorted({r["period"] for r in credits}, reverse=True),
            has_data=any(r.get("status") == "data" for r in coverage) if coverage else None,
            credit=credit,
            industry_mean=industry_mean,
            emissions_month=months,
            emissions_ytd=ytd,
            trend=trend,
            activity=[_without_time(r) for r in activity if r["workshop"] == ""],
            workshops=[_without_time(r) for r in workshops],
            near_zero=[_without_time(r) for r in near_zero],
            quality=[_without_time(r) for r in sorted(quality, key=lambda r: (r["meter"], r["register"]))],
            by_source=[
                _without_time(r)
                for r in sorted(by_source, key=lambda r: (r["workshop"], r["scope"], -_float(r.get("tco2_location"))))
                if r["workshop"] == ""
            ],
            nearzero=[_without_time(r) for r in sorted(nearzero, key=lambda r: (r["profile"], r["workshop"]))],
        )

    # -- the ledger -----------------------------------------------------------------------------------

    def _ledger(self) -> Ledger:
        return Ledger(self._b.reader, self._b.timezone)

    def holdings(self, enterprise_id: str) -> pd.DataFrame:
        """The enterprise's credits per vintage [t]."""
        self.scope.enterprise(enterprise_id)
        try:
            frame = self._ledger().balances(enterprise_id)
        except UnknownEnterpriseError:
            return pd.DataFrame(columns=["enterprise_id", "account", "vintage", "amount_t"])
        return self.scope.rows(frame, "enterprise_id")

    def statement(self, enterprise_id: str, year: int | None = None) -> pd.DataFrame:
        """The enterprise's ledger entries (booked in ``year`` if given) with the running balance [t]."""
        self.scope.enterprise(enterprise_id)
        try:
            frame = self._ledger().statement(enterprise_id, year)
        except UnknownEnterpriseError:
            frame = pd.DataFrame(columns=["booked_at", "transaction", "kind", "reference", "counterparty"])
        return frame.assign(enterprise=enterprise_id)[["enterprise", *frame.columns]]

    def statement_file(self, enterprise_id: str, year: int | None, kind: str) -> tuple[bytes, str]:
        """The statement as a download (``csv`` or ``xlsx``): (content, file name). Audited."""
        frame = self.statement(enterprise_id, year)
        name = f"statement_{enterprise_id}_{year or 'all'}.{kind}"
        if kind == "csv":
            content = frame.to_csv(index=False).encode("utf-8-sig")  # Excel opens UTF-8 with a BOM correctly
        elif kind == "xlsx":
            buffer = io.BytesIO()
            excel = frame.assign(booked_at=pd.to_datetime(frame["booked_at"]).dt.tz_localize(None))
            excel.to_excel(buffer, index=False, sheet_name=f"{enterprise_id} {year or 'all'}"[:31])
            content = buffer.getvalue()
        else:
            raise NotFoundError(kind)
        self._audit("download", f"enterprise:{enterprise_id}", to_value=name)
        return content, name

    # -- report files ---------------------------------------------------------------------------------

    def _report_path(self, enterprise_id: str, period: str) -> Path:
        self.scope.enterprise(enterprise_id)
        if not PERIOD.match(period):
            raise NotFoundError(period)
        return self._b.reports_dir / period / "enterprises" / f"{enterprise_id}.html"

    def report_periods(self, enterprise_id: str) -> list[str]:
        """The months whose report the monthly DAG wrote for this enterprise, newest first."""
        self.scope.enterprise(enterprise_id)
        if not self._b.reports_dir.is_dir():
            return []
        found = [
            p.name
            for p in self._b.reports_dir.iterdir()
            if PERIOD.match(p.name) and self._report_path(enterprise_id, p.name).is_file()
        ]
        return sorted(found, reverse=True)

    def report_file(self, enterprise_id: str, period: str) -> tuple[bytes, str]:
        """The enterprise's monthly report page: (content, file name). Audited."""
        path = self._report_path(enterprise_id, period)
        if not path.is_file():
            raise NotFoundError(period)
        name = f"report_{enterprise_id}_{period}.html"
        self._audit("download", f"enterprise:{enterprise_id}", to_value=name)
        return path.read_bytes(), name

    # -- the park -------------------------------------------------------------------------------------

    def park_periods(self) -> list[str]:
        self.scope.require_park()
        frame = self._b.store.query(f'SELECT "credits_tco2" FROM {CREDITS.q}')
        if not len(frame):
            return []
        return sorted(set(frame["time"].dt.tz_convert(self._b.timezone).dt.strftime("%Y-%m")), reverse=True)

    def park_month(self, period: str | None = None) -> ParkMonth:
        self.scope.require_park()
        periods = self.park_periods()
        if period is None:
            period = periods[0] if periods else None
        elif not PERIOD.match(period):
            raise NotFoundError(period)
        registry = self.scope.registry
        names = {e.id: e for e in self.scope.enterprises()}
        rows: list[dict[str, Any]] = []
        grades = {str(g): 0 for g in range(1, 6)} | {"–": 0}
        total_month = total_ytd = credits_total = 0.0
        quality_rows: list[dict[str, Any]] = []
        gateway_rows: list[dict[str, Any]] = []
        without: list[str] = []
        if period is not None:
            month = self._month(period)
            at = f"time = {month.start_ns}"
            credits = self._read(CREDITS, None, at)
            january = Month.of(f"{month.year:04d}-01", self._b.timezone)
            emissions = self._read(
                EMISSIONS_MONTHLY,
                None,
                "\"scope\" = 'total' AND \"workshop\" = '' "
                f"AND time >= {january.start_ns} AND time <= {month.start_ns}",
            )
            this = emissions[emissions["period"] == period] if len(emissions) else emissions
            month_t = this.groupby("enterprise")["tco2_location"].sum() if len(this) else pd.Series(dtype=float)
            total_month = float(month_t.sum())
            total_ytd = float(emissions["tco2_location"].sum()) if len(emissions) else 0.0
            by_id = {r["enterprise"]: r for r in _records(credits.drop(columns=["time"]))} if len(credits) else {}
            for enterprise in names.values():
                c = by_id.get(enterprise.id)
                if c is None:
                    without.append(enterprise.id)
                grade = c.get("grade") if c else None
                grades[str(int(grade)) if grade is not None and math.isfinite(_float(grade)) else "–"] += 1
                credits_total += (
                    _float(c.get("credits_tco2")) if c and math.isfinite(_float(c.get("credits_tco2"))) else 0
                )
                rows.append(
                    {
                        "enterprise": enterprise.id,
                        "name": enterprise.name,
                        "industry": enterprise.industry,
                        "tco2_month": _none(month_t.get(enterprise.id)),
                        "credit": c,
                    }
                )
            quality = self._read(DATA_QUALITY, None, at)
            if len(quality):
                grouped = quality.groupby("enterprise").agg(
                    meters=("meter", "nunique"),
                    completeness=("completeness", "mean"),
                    gaps=("gaps", "sum"),
                    resets=("resets", "sum"),
                )
                quality_rows = _records(grouped.reset_index())
            gateways = self._read(GATEWAY_QUALITY_DAILY, None, f"time >= {month.start_ns} AND time < {month.end_ns}")
            if len(gateways):
                gateways["offline"] = gateways["offline"].fillna(False).astype(bool)
                daily = gateways.sort_values("time").groupby(["enterprise", "gateway"])
                gateway_rows = _records(
                    daily.agg(
                        days=("time", "count"),
                        days_offline=("offline", "sum"),
                        readings=("readings", "sum"),
                        meters_silent_last_day=("meters_silent", "last"),
                    ).reset_index()
                )
        industries = []
        for industry in sorted({r["industry"] for r in rows}):
            members = [r for r in rows if r["industry"] == industry]
            scored = [r["credit"] for r in members if r["credit"]]
            industries.append(
                {
                    "industry": industry,
                    "enterprises": len(members),
                    "scored": len(scored),
                    "credits_tco2": sum(
                        _float(c.get("credits_tco2")) for c in scored if _finite(c.get("credits_tco2"))
                    ),
                    "emissions_tco2": sum(
                        _float(c.get("emissions_tco2")) for c in scored if _finite(c.get("emissions_tco2"))
                    ),
                }
            )
        _ = registry
        return ParkMonth(
            period=period,
            periods=periods,
            enterprises=rows,
            industries=industries,
            grades=grades,
            total_month_t=total_month,
            total_ytd_t=total_ytd,
            credits_total_t=credits_total,
            quality=quality_rows,
            ledger=self.ledger_totals(),
            target=target_progress(registry.park.target_of(int(period[:4])), total_ytd, int(period[5:]))
            if period
            else None,
            without_results=without,
            gateways=gateway_rows,
            nearzero=self.park_evaluation(period) if period else [],
        )

    def park_evaluation(self, period: str) -> list[dict[str, Any]]:
        """The park itself (no enterprise's rows) against its park-level near-zero profiles in ``period``."""
        self.scope.require_park()
        at = self._month(period).start_ns
        frame = self._b.store.query(f"SELECT * FROM {NEARZERO_EVALUATION.q} WHERE \"enterprise\" = '' AND time = {at}")
        return _records(frame.drop(columns=["time"]).sort_values(["profile", "indicator"])) if len(frame) else []

    def grade_counts(self, period: str | None = None) -> dict[str, Any]:
        """The park's grade distribution (chart data)."""
        park = self.park_month(period)
        return {"period": park.period, "grades": park.grades}

    def ledger_totals(self) -> list[dict[str, Any]]:
        """Per vintage: issued, held by enterprises, surrendered, retired [t]."""
        self.scope.require_park()
        frame = self._ledger().balances()
        if not len(frame):
            return []
        park = frame[frame["enterprise_id"] == ""]
        held = self.scope.rows(frame[frame["enterprise_id"] != ""], "enterprise_id")
        out = []
        for vintage in sorted(set(frame["vintage"])):
            accounts = park[park["vintage"] == vintage].set_index("account")["amount_t"]
            out.append(
                {
                    "vintage": int(vintage),
                    "issued_t": -float(accounts.get("park:issuing", 0.0)),
                    "held_t": float(held.loc[held["vintage"] == vintage, "amount_t"].sum()),
                    "surrendered_t": float(accounts.get("park:surrendered", 0.0)),
                    "retired_t": float(accounts.get("park:retired", 0.0)),
                }
            )
        return out

    # -- people ---------------------------------------------------------------------------------------

    def users(self, enterprise_id: str | None) -> list[auth.User]:
        """The users of an enterprise (None: every user, for the park admin)."""
        if enterprise_id is not None:
            self.scope.enterprise(enterprise_id)
        self.scope.require_user_admin(enterprise_id)
        with self._b.reader.connect() as conn:
            return auth.list_users(conn, enterprise_id, every=enterprise_id is None)

    def roles_for(self, enterprise_id: str | None) -> tuple[str, ...]:
        """The roles this person may give a new user of ``enterprise_id`` (None: a park user)."""
        if enterprise_id is None:
            return tuple(r for r in ROLES if r not in ENTERPRISE_ROLES)
        return ENTERPRISE_ROLES

    def create_user(
        self, enterprise_id: str | None, username: str, role: str, bank_id: str = ""
    ) -> tuple[auth.User, str]:
        """A new user of ``enterprise_id`` (None: of the park, or of the bank ``bank_id`` for a bank's
        user) with a generated password, shown once."""
        if enterprise_id is not None:
            self.scope.enterprise(enterprise_id)
        self.scope.require_user_admin(enterprise_id)
        if role not in self.roles_for(enterprise_id):
            raise auth.AuthError(f"role {role!r} cannot be given here")
        if (role == BANK_ROLE) != bool(bank_id.strip()):
            raise auth.AuthError(f"role {role} {'needs' if role == BANK_ROLE else 'takes no'} bank")
        password = auth.generate_password()
        with self._b.writer.begin() as conn:
            user = auth.create_user(
                conn, username, role, enterprise_id, password, self.actor, set(self.scope.registry.enterprise_by_id)
            )
            if role == BANK_ROLE:
                consent.join_bank(conn, self.actor, user.id, user.username, bank_id.strip())
        return user, password

    def _managed_user(self, conn: Any, enterprise_id: str | None, username: str) -> auth.User:
        """A user this person manages; 404 for anyone else (another enterprise's users included)."""
        if enterprise_id is not None:
            self.scope.enterprise(enterprise_id)
        self.scope.require_user_admin(enterprise_id)
        user = auth.find_user(conn, username)
        if user is None or (enterprise_id is not None and user.enterprise_id != enterprise_id):
            raise NotFoundError(username)
        return user

    def set_user_active(self, enterprise_id: str | None, username: str, active: bool) -> None:
        with self._b.writer.begin() as conn:
            user = self._managed_user(conn, enterprise_id, username)
            if user.username == self.actor.name:
                raise auth.AuthError("you cannot disable yourself")
            auth.set_active(conn, user, active, self.actor)

    def reset_password(self, enterprise_id: str | None, username: str) -> str:
        """A new generated password for a managed user (its sessions end); shown once."""
        password = auth.generate_password()
        with self._b.writer.begin() as conn:
            user = self._managed_user(conn, enterprise_id, username)
            auth.set_password(conn, user, password, self.actor)
        return password

    # -- data requests and submissions (portal/workflow.py) ------------------------------------------

    # -- gateways' broker credentials (portal/gateways.py: the park admin's; the password returned once)

    def gateway_credentials(self) -> list[gateways.GatewayCredential]:
        with self._b.reader.connect() as conn:
            return gateways.listing(conn, self.actor, self.scope.registry)

    def issue_gateway_credentials(self, gateway_id: str) -> str:
        with self._b.writer.begin() as conn:
            return gateways.issue(conn, self.actor, self.scope.registry, gateway_id, datetime.now(UTC))

    def rotate_gateway_credentials(self, gateway_id: str, generation_seen: int) -> str:
        with self._b.writer.begin() as conn:
            return gateways.rotate(
                conn, self.actor, self.scope.registry, gateway_id, generation_seen, datetime.now(UTC)
            )

    def revoke_gateway_credentials(self, gateway_id: str) -> None:
        with self._b.writer.begin() as conn:
            gateways.revoke(conn, self.actor, self.scope.registry, gateway_id, datetime.now(UTC))

    def today(self) -> date:
        """Today in the park's time zone: what due dates are compared with."""
        return datetime.now(ZoneInfo(self._b.timezone)).date()

    def data_requests(self, enterprise_id: str) -> list[workflow.Request]:
        """The enterprise's requests, each with every version, newest first."""
        enterprise = self.scope.enterprise(enterprise_id)
        with self._b.reader.connect() as conn:
            found = list(reversed(workflow.load_requests(conn, [enterprise.id])))
        if self.scope.is_park:
            self._audit("view", f"enterprise:{enterprise.id}", to_value="data requests")
        return found

    def data_request(self, enterprise_id: str, request_id: int) -> workflow.Request:
        enterprise = self.scope.enterprise(enterprise_id)
        with self._b.reader.connect() as conn:
            found = workflow.load_request(conn, enterprise.id, request_id)
        if self.scope.is_park:
            self._audit("view", f"enterprise:{enterprise.id}", to_value=f"data request {request_id}")
        return found

    def review_queue(self) -> tuple[list[workflow.Request], list[workflow.Request]]:
        """The park office's queue: (requests with a version awaiting review, overdue requests)."""
        self.scope.require_park()
        with self._b.reader.connect() as conn:
            found = workflow.load_requests(conn, self.scope.enterprise_ids)
        today = self.today()
        return [r for r in found if r.awaiting_review], [r for r in found if r.overdue(today)]

    def open_request(self, enterprise_id: str, kind: str, period: str, due_on: str, note: str) -> int:
        enterprise = self.scope.enterprise(enterprise_id)
        with self._b.writer.begin() as conn:
            return workflow.open_request(conn, self.actor, enterprise.id, kind, period, due_on, note, datetime.now(UTC))

    def close_request(self, enterprise_id: str, request_id: int) -> None:
        enterprise = self.scope.enterprise(enterprise_id)
        with self._b.writer.begin() as conn:
            workflow.close_request(conn, self.actor, enterprise.id, request_id, datetime.now(UTC))

    def submit(
        self, enterprise_id: str, request_id: int, quantity: str, unit: str, files: list[tuple[str, bytes]]
    ) -> int:
        """A new version of the enterprise's answer with its evidence files (name, content); its number."""
        enterprise = self.scope.enterprise(enterprise_id)
        checked = [workflow.evidence(name, content) for name, content in files]
        with self._b.writer.begin() as conn:
            return workflow.submit(
                conn, self.actor, enterprise.id, request_id, quantity, unit, checked, datetime.now(UTC)
            )

    def approve(self, enterprise_id: str, request_id: int, version: int) -> None:
        enterprise = self.scope.enterprise(enterprise_id)
        with self._b.writer.begin() as conn:
            workflow.approve(conn, self.actor, enterprise.id, request_id, version, datetime.now(UTC))

    def reject(self, enterprise_id: str, request_id: int, version: int, reason: str) -> None:
        enterprise = self.scope.enterprise(enterprise_id)
        with self._b.writer.begin() as conn:
            workflow.reject(conn, self.actor, enterprise.id, request_id, version, reason, datetime.now(UTC))

    def evidence_file(self, enterprise_id: str, request_id: int, evidence_id: int) -> tuple[bytes, str, str]:
        """An evidence file of one of the enterprise's submissions: (content, file name, media type).
        Audited, whoever downloads it."""
        enterprise = self.scope.enterprise(enterprise_id)
        with self._b.reader.connect() as conn:
            info, content = workflow.evidence_content(conn, enterprise.id, request_id, evidence_id)
        self._audit(
            "download",
            f"enterprise:{enterprise.id} request:{request_id} evidence:{evidence_id}",
            to_value=f"{info.file_name} sha256:{info.sha256}",
        )
        return content, info.file_name, info.media_type

    # -- offers and surrender (portal/offers.py) -------------------------------------------------------

    def _book(self) -> Ledger:
        """The ledger on the writer, for this person's bookings (transfers of offers, surrenders)."""
        return Ledger(self._b.writer, self._b.timezone, credit_validity_years=self._b.credit_validity_years)

    def offers_of(self, enterprise_id: str) -> list[offers.Offer]:
        """The offers the enterprise made or received, newest first."""
        enterprise = self.scope.enterprise(enterprise_id)
        with self._b.reader.connect() as conn:
            found = offers.load_offers(conn, [enterprise.id])
        if self.scope.is_park:
            self._audit("view", f"enterprise:{enterprise.id}", to_value="offers")
        return found

    def park_offers(self) -> list[offers.Offer]:
        """Every offer of the park, for the park office (read-only)."""
        self.scope.require_park()
        with self._b.reader.connect() as conn:
            return offers.load_offers(conn, self.scope.enterprise_ids)

    def _held_kg(self, enterprise_id: str, vintage: int) -> int:
        frame = self.holdings(enterprise_id)
        held = [float(r["amount_t"]) for r in frame.to_dict("records") if int(r["vintage"]) == vintage]
        return t_to_kg(str(held[0])) if held and held[0] > 0 else 0

    def make_offer(self, enterprise_id: str, buyer_id: str, amount: str, price: str, vintage: str, expires: str) -> int:
        enterprise = self.scope.enterprise(enterprise_id)
        terms = offers.parse_terms(amount, price, vintage, expires, self._b.timezone)
        held = self._held_kg(enterprise.id, terms[2])
        with self._b.writer.begin() as conn:
            return offers.make(
                conn,
                self.actor,
                enterprise.id,
                buyer_id,
                terms,
                held,
                set(self.scope.registry.enterprise_by_id),
                datetime.now(UTC),
            )

    def accept_offer(self, enterprise_id: str, offer_id: int) -> Booked:
        enterprise = self.scope.enterprise(enterprise_id)
        return offers.accept(self._book(), self.actor, enterprise.id, offer_id, datetime.now(UTC))

    def decide_offer(self, enterprise_id: str, offer_id: int, to_state: str) -> None:
        """Decline (the buyer) or withdraw (the seller); 409 for an offer past its expiry (marked expired)."""
        enterprise = self.scope.enterprise(enterprise_id)
        with self._b.writer.begin() as conn:
            done = offers.decide(conn, self.actor, enterprise.id, offer_id, to_state, datetime.now(UTC))
        if not done:
            raise workflow.IllegalTransitionError(f"offer {offer_id}", "expired", to_state, "it is past its expiry")

    def obligation(self, enterprise_id: str, year: int) -> dict[str, Any]:
        """The enterprise's obligation for ``year``: due, covered (surrendered and external units), open [t]."""
        enterprise = self.scope.enterprise(enterprise_id)
        due: Decimal
        covered: Decimal
        try:
            due, covered = self._ledger().obligation(enterprise.id, year)
        except UnknownEnterpriseError:
            due = covered = Decimal(0)  # no account: nothing owed
        return {
            "year": year,
            "due_t": float(due),
            "covered_t": float(covered),
            "open_t": float(max(due - covered, Decimal(0))),
        }

    def surrender(self, enterprise_id: str, year: int, amount: str, vintage: int, token: str) -> Booked:
        """Surrender credits against the year's obligation: the enterprise's admin only. ``token`` (a
        random one per form) makes the reference, so a form sent twice books once. Audited."""
        enterprise = self.scope.enterprise(enterprise_id)
        if self.scope.role != "enterprise_admin":
            raise ForbiddenError("credits are surrendered by the enterprise's own admin")
        if not re.fullmatch(r"[0-9a-f]{16,64}", token):
            raise workflow.InvalidInputError("the form has no valid surrender token: reload the page")
        reference = f"surrender:{enterprise.id}:{token}"
        try:
            booked = self._book().surrender(
                enterprise.id, year, amount.strip().replace(",", ""), vintage, reference, self.actor.name
            )
        except LedgerError as exc:
            raise offers.LedgerRefusedError(f"the ledger refused the surrender: {exc}") from None
        if not booked.replayed:
            self._audit(
                "ledger.surrender",
                f"enterprise:{enterprise.id} year:{year}",
                to_value=f"{amount.strip()} t of vintage {vintage}: transaction {booked.transaction_id} ({reference})",
            )
        return booked

    # -- banks, consents and credit reports (portal/consent.py, reports/credit.py) ---------------------

    def banks(self) -> list[consent.Bank]:
        """The banks on the platform (the names an enterprise's admin chooses from, the park admin's list)."""
        if self.scope.is_bank:
            raise ForbiddenError("a bank sees its reports only")
        with self._b.reader.connect() as conn:
            return consent.list_banks(conn)

    def bank_members(self) -> dict[int, str]:
        """Every bank user's bank by user id: the park admin's users page."""
        self.scope.require_user_admin(None)
        with self._b.reader.connect() as conn:
            return consent.bank_members(conn)

    def create_bank(self, bank_id: str, name: str) -> consent.Bank:
        with self._b.writer.begin() as conn:
            return consent.create_bank(conn, self.actor, bank_id, name, datetime.now(UTC))

    def consents_of(self, enterprise_id: str) -> list[consent.Consent]:
        """The enterprise's consents, every one it ever gave, newest first."""
        enterprise = self.scope.enterprise(enterprise_id)
        with self._b.reader.connect() as conn:
            found = consent.load_consents(conn, enterprise.id)
        if self.scope.is_park:
            self._audit("view", f"enterprise:{enterprise.id}", to_value="consents")
        return found

    def grant_consent(self, enterprise_id: str, bank_id: str, until: str) -> int:
        enterprise = self.scope.enterprise(enterprise_id)
        with self._b.writer.begin() as conn:
            return consent.grant(conn, self.actor, enterprise.id, bank_id, until, self.today(), datetime.now(UTC))

    def revoke_consent(self, enterprise_id: str, consent_id: int) -> None:
        """Revoke a standing consent; 409 for one past its date (marked expired, which is committed)."""
        enterprise = self.scope.enterprise(enterprise_id)
        with self._b.writer.begin() as conn:
            done = consent.revoke(conn, self.actor, enterprise.id, consent_id, self.today(), datetime.now(UTC))
        if not done:
            raise workflow.IllegalTransitionError(f"consent {consent_id}", "expired", "revoked", "it is past its date")

    def _report_subject(self, enterprise_id: str) -> str:
        """The enterprise of a credit report this person may read now: a bank's user only while the
        enterprise's consent to its bank stands (asked of the database on every call), anyone else
        through the scope. 404 otherwise, as for an id that does not exist."""
        if not self.scope.is_bank:
            return self.scope.enterprise(enterprise_id).id
        bank_id = self.scope.require_bank()
        with self._b.reader.connect() as conn:
            allowed = consent.standing(conn, bank_id, self.today(), [enterprise_id])
        if enterprise_id not in allowed or enterprise_id not in self.scope.registry.enterprise_by_id:
            raise NotFoundError(enterprise_id)
        return enterprise_id

    def _subject_rows(self, enterprise_id: str, wanted: list[tuple[Measurement, str]]) -> list[list[dict[str, Any]]]:
        """:meth:`_rows_many` for a report's subject that :meth:`_report_subject` admitted (a bank's scope
        holds no enterprise): that enterprise's rows only."""
        return self._enterprise_rows(wanted, enterprise_id, {enterprise_id})

    def bank_reports(self) -> list[dict[str, Any]]:
        """The bank's home: per enterprise whose consent stands now, the years it has results of."""
        bank_id = self.scope.require_bank()
        with self._b.reader.connect() as conn:
            allowed = consent.standing(conn, bank_id, self.today(), self.scope.registry.enterprise_by_id)
        out = []
        for enterprise_id in allowed:
            credits, annual = self._subject_rows(enterprise_id, [(CREDITS, ""), (CREDITS_ANNUAL, "")])
            enterprise = self.scope.registry.enterprise_by_id[enterprise_id]
            years = sorted({int(r["period"][:4]) for r in [*credits, *annual]}, reverse=True)
            out.append({"enterprise": enterprise.id, "name": enterprise.name, "years": years})
        return out

    def credit_report(self, enterprise_id: str, year: int) -> CreditInputs:
        """The figures of the enterprise's credit report for ``year``, from the stored results; 404 for a
        year without any. A bank's read is audited (``report.read``), as is the park office's."""
        subject = self._report_subject(enterprise_id)
        this, before = self._year_condition(year), self._year_condition(year - 1)
        credits, annual, earlier, annual_before, emissions, activity, quality, coverage = self._subject_rows(
            subject,
            [
                (CREDITS, this),
                (CREDITS_ANNUAL, this),
                (CREDITS, before),
                (CREDITS_ANNUAL, before),
                (EMISSIONS_MONTHLY, f"{this} AND \"workshop\" = '' AND \"scope\" = 'total'"),
                (ACTIVITY_MONTHLY, f"{this} AND \"workshop\" = ''"),
                (DATA_QUALITY, this),
                (MONTH_COVERAGE, this),
            ],
        )
        if not credits and not annual:
            raise NotFoundError(f"{enterprise_id} {year}")
        enterprise = self.scope.registry.enterprise_by_id[subject]
        credits = sorted(credits, key=lambda r: r["period"])
        settled = bool(annual)
        row = annual[-1] if annual else credits[-1]
        previous_rows = annual_before or sorted(earlier, key=lambda r: r["period"])[-1:]
        month_t = {r["period"]: _none(r.get("tco2_location")) for r in emissions}
        sums = {
            source: _sum(r.get("quantity") for r in activity if r["source"] == source)
            for source in ("grid_electricity", "green_electricity_certified", "pv_self_consumed")
        }
        drawn = sums["grid_electricity"] + sums["pv_self_consumed"]
        green = (
            (min(sums["green_electricity_certified"], sums["grid_electricity"]) + sums["pv_self_consumed"]) / drawn
            if drawn > 0
            else None
        )
        completeness = [c for c in (_none(r.get("completeness")) for r in quality) if c is not None]
        with self._b.reader.connect() as conn:  # the settled year's result version (ledger/results.py)
            version = current_version(conn, year)
        report = CreditInputs(
            enterprise_id=enterprise.id,
            enterprise_name=enterprise.name,
            industry=enterprise.industry,
            year=year,
            settled=settled,
            latest_period=f"{year:04d}-12" if settled else str(row["period"]),
            grade=int(g) if (g := _none(row.get("grade"))) is not None else None,
            rating=str(row["rating"]) if row.get("rating") else None,
            rating_score=_none(row.get("rating_score")),
            intensity_t_per_10k_cny=_none(row.get("intensity_t_per_10k_cny")),
            benchmark_t_per_10k_cny=_none(row.get("benchmark_t_per_10k_cny")),
            emissions_tco2=_none(row.get("emissions_tco2")),
            credits_tco2=_none(row.get("credits_tco2")),
            previous_year_intensity_t_per_10k_cny=(
                _none(previous_rows[-1].get("intensity_t_per_10k_cny")) if previous_rows else None
            ),
            months=[
                MonthPoint(r["period"], _none(r.get("intensity_t_per_10k_cny")), month_t.get(r["period"]))
                for r in credits
            ],
            green_share=green,
            completeness=math.fsum(completeness) / len(completeness) if completeness else None,
            months_with_data=len({r["period"] for r in coverage if r.get("status") == "data"}),
            policy_version=row.get("policy_version") or None,
            factor_set=row.get("factor_set") or None,
            inputs_sha256=row.get("inputs_sha256") or None,
            result_version=version.version if version else None,
            result_state=version.state if version else None,
            credit_validity_years=self._b.credit_validity_years,
            issued_at=datetime.now(UTC),
        )
        if self.scope.is_bank or self.scope.is_park:
            self._audit("report.read", f"enterprise:{subject} year:{year}", to_value=f"credit report {year}")
        return report

    def audit_entries(self, limit: int = 500) -> list[dict[str, Any]]:
        """The newest audit lines: for the park admin and the auditor."""
        if self.scope.role not in ("park_admin", "auditor"):
            raise ForbiddenError("the audit log is for the park admin and the auditor")
        with self._b.reader.connect() as conn:
            rows = conn.execute(select(audit_log).order_by(desc(audit_log.c.id)).limit(limit)).mappings().all()
        return [dict(r) for r in rows]

    def _audit(self, action: str, target: str, from_value: str = "", to_value: str = "") -> None:
        with self._b.writer.begin() as conn:
            record(conn, self.actor, action, target, from_value, to_value)


def _without_time(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "time"}


def _sum(values: Iterable[object]) -> float:
    """The sum of the finite numbers among ``values`` (a missing field is None)."""
    return math.fsum(n for n in map(_float, values) if math.isfinite(n))


def _trend(
    enterprise_id: str, year: int, credits: list[dict[str, Any]], emissions: list[dict[str, Any]]
) -> dict[str, Any]:
    """The chart data of ``year``: per month, the enterprise's own emissions by scope (location-based)
    and its year-to-date credits; a month without a value is None."""
    own = [r for r in emissions if r["workshop"] == ""]
    periods = sorted({r["period"] for r in own} | {r["period"] for r in credits})
    series: dict[str, list[float | None]] = {}
    for scope, _name in SCOPES:
        by_period = {r["period"]: r.get("tco2_location") for r in own if r["scope"] == scope}
        series[f"{scope}_tco2_location"] = [_none(by_period.get(p)) for p in periods]
    credit_by_period = {r["period"]: r.get("credits_tco2") for r in credits}
    series["credits_ytd_tco2"] = [_none(credit_by_period.get(p)) for p in periods]
    return {"enterprise": enterprise_id, "year": year, "periods": periods, "series": series}


def _none(value: object) -> float | None:
    number = _float(value)
    return number if math.isfinite(number) else None


def _finite(value: object) -> bool:
    return math.isfinite(_float(value))
